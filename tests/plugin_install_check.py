"""Install the plugin zip into a fresh QGIS profile the way "Install from ZIP" does, start
it, and report what a user would get, as JSON on stdout. Run by test_plugin_zip.py in a
separate Python whose ``sarclear`` is NOT importable (the zip's vendored copy must be used):

    python plugin_install_check.py PLUGIN.zip SMALL_S2.tif OUT_DIR [--no-torch]

With ``--no-torch``, ``import torch`` fails as in a QGIS without PyTorch.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import sys
import time
from pathlib import Path

# A QGIS Python without sarclear: drop every path entry that provides it (the checkout, the
# developer's editable install).
sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "sarclear" / "__init__.py").is_file()]
assert importlib.util.find_spec("sarclear") is None


class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


if "--no-torch" in sys.argv:
    sys.meta_path.insert(0, _NoTorch())

from qgis.core import QgsApplication, QgsProcessingException  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # the harness, not sarclear
from headless_iface import HeadlessIface  # noqa: E402


def main() -> dict:
    zip_path, small_s2, out_dir = (Path(a) for a in sys.argv[1:4])
    app = QgsApplication([], True)
    app.initQgis()
    report: dict = {"settings_dir": QgsApplication.qgisSettingsDirPath()}
    plugins_dir = Path(QgsApplication.qgisSettingsDirPath()) / "python" / "plugins"

    # "Install from ZIP": the installer's own unzip into the profile's plugins folder
    spec = importlib.util.spec_from_file_location(
        "qgis_unzip", Path(app.pkgDataPath()) / "python" / "pyplugin_installer" / "unzip.py")
    unzip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unzip)
    unzip.unzip(str(zip_path), str(plugins_dir))

    import qgis.utils as utils

    utils.iface = HeadlessIface()
    utils.plugin_paths = [str(plugins_dir)]
    sys.path.insert(0, str(plugins_dir))
    utils.updateAvailablePlugins()
    report["available"] = list(utils.available_plugins)
    report["metadata"] = {k: utils.pluginMetadata("sarclear_qgis", k)
                          for k in ("name", "version", "qgisMinimumVersion", "hasProcessingProvider", "icon")}
    report["loaded"] = utils.loadPlugin("sarclear_qgis") and utils.startPlugin("sarclear_qgis")
    if not report["loaded"]:
        return report

    import sarclear
    from sarclear.resources import bundled_models

    report["sarclear_file"] = sarclear.__file__
    report["bundled_models"] = [str(p) for p in bundled_models()]
    provider = QgsApplication.processingRegistry().providerById("sarclear")
    report["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []

    plugin = utils.plugins["sarclear_qgis"]
    dialog = plugin.show_dialog()
    deadline = time.monotonic() + 120
    while not dialog.ready() and time.monotonic() < deadline:  # the model header is read in a background task
        app.processEvents()
        time.sleep(0.01)
    report["dialog"] = {"dependencies": dialog.dependency_label.text(), "model": dialog.model_widget.filePath(),
                        "model_info": dialog.model_info.text(), "run_enabled": dialog.run_button.isEnabled()}

    sys.path.append(str(Path(app.pkgDataPath()) / "python" / "plugins"))
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    try:
        result = processing.run("sarclear:syntheticclouds", {"INPUT": str(small_s2), "SEED": 1,
                                                             "OUTPUT": str(out_dir / "cloudy.tif")})
        report["processing"] = {"output": result["OUTPUT"], "mean_opacity": result["MEAN_OPACITY"]}
    except QgsProcessingException as exc:
        report["processing"] = {"error": str(exc)}
    report["torch_imported"] = "torch" in sys.modules

    report["unloaded"] = utils.unloadPlugin("sarclear_qgis")
    report["provider_after_unload"] = QgsApplication.processingRegistry().providerById("sarclear") is not None
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
    sys.stdout.flush()
