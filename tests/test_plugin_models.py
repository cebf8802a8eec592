"""The dialog's models: every bundled model listed by name with its card, the demo labelled
as a demo (in the dialog and in the output layer names), an MS-only model that needs no SAR,
and no torch import in the GUI thread (the model's header is read in a background task)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from plugin_helpers import *  # noqa: F403 (fixtures)
from plugin_helpers import ROOT, wait_until

pytestmark = pytest.mark.qgis

CARD = """# Model cards

## sarclear-fill

`sarclear-fill.safetensors`: the mask-aware generator with SAR. Trained on SEN12MS-CR.

## sarclear-fill-ms

`sarclear-fill-ms.safetensors`: its MS-only twin, for scenes without Sentinel-1.
"""


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
    """A resources folder with the demo model and a SAR model and its MS-only twin, and
    their model card: what the plugin zip ships."""
    import torch

    from sarclear import checkpoint, networks

    models = tmp_path / "resources" / "models"
    models.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "models" / "sarclear-lite-demo.safetensors", models)
    torch.manual_seed(0)
    for name, preset in (("sarclear-fill", "lite"), ("sarclear-fill-ms", "lite-ms")):
        cfg = networks.preset(preset)
        checkpoint.save_model(models / f"{name}.safetensors", networks.build(cfg)[0], cfg)
    (models / "README.md").write_text(CARD)
    monkeypatch.setenv("SARCLEAR_RESOURCES", str(tmp_path / "resources"))
    return models


def test_every_bundled_model_is_listed_by_name_with_its_card(plugin, sample_project, shipped):
    dialog = plugin.show_dialog()
    wait_until(dialog.ready)
    combo = dialog.model_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["sarclear-fill", "sarclear-fill-ms, MS-only: no SAR", "sarclear-lite-demo (demo model)",
                     "Other model file…"]
    from qgis.PyQt.QtCore import Qt

    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(3)]
    assert "mask-aware generator with SAR" in tips[0] and "MS-only twin" not in tips[0]
    assert "MS-only twin, for scenes without Sentinel-1" in tips[1]
    # the real models first; the first is chosen, its card linked
    assert combo.currentIndex() == 0 and dialog.model_widget.filePath() == str(shipped / "sarclear-fill.safetensors")
    assert f'href="{(shipped / "README.md").as_uri()}"' in dialog.model_info.text()
    assert "Demo model" not in dialog.model_info.text()

    # the MS-only twin: the SAR list is not used and not required
    combo.setCurrentIndex(1)
    combo.activated.emit(1)
    wait_until(dialog.ready)
    assert not dialog.model_config.uses_sar and not dialog.sar_list.isEnabled()
    assert "MS-only model" in dialog.model_info.text()
    assert dialog.band_problems() is None and dialog.run_button.isEnabled()
    assert dialog.parameters().sar == [] and "MS-only" in dialog.parameters().model_label

    # the demo model says so, and its output layers will too
    combo.setCurrentIndex(2)
    combo.activated.emit(2)
    wait_until(dialog.ready)
    assert dialog.model_info.text().startswith("<b>Demo model</b> (trained on a few scenes")
    assert dialog.parameters().model_label == "sarclear-lite-demo (demo model)"
    from qgis_plugin.layers import result_layer_names

    assert result_layer_names("change", "sarclear-lite-demo (demo model)")["output"] == \
        "reconstruction (true colour, sarclear-lite-demo (demo model))"

    # another file: the file box takes it and the combo says so
    combo.setCurrentIndex(3)
    combo.activated.emit(3)
    assert dialog.model_widget.isEnabled()
    dialog.close()


def test_opening_the_dialog_does_not_import_torch_the_background_task_does():
    """The first torch import takes seconds: it must not happen in the GUI thread."""
    code = f"""
import sys, threading, time
sys.path[:0] = [{str(ROOT / 'scripts')!r}]
importers = []
class Spy:  # records the threads that import torch (an import statement, not a find_spec lookup)
    def find_spec(self, name, path=None, target=None):
        frame, importing = sys._getframe(1), False
        while frame is not None:
            importing = importing or frame.f_code.co_name == "_find_and_load"
            frame = frame.f_back
        if name == "torch" and importing:
            importers.append(threading.current_thread() is threading.main_thread())
        return None
sys.meta_path.insert(0, Spy())
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
app = QgsApplication([], True); app.initQgis()
from headless_iface import HeadlessIface
import qgis_plugin
from qgis_plugin.dialog import SarclearDialog
from qgis_plugin.task import STAGE_LOADING
layer = QgsRasterLayer({str(ROOT / 'resources/samples/sen12ms-cr-cloudy/ROIs1868_summer_s2_cloudy_19_p30.tif')!r}, "s2")
QgsProject.instance().addMapLayer(layer)
QgsProject.instance().addMapLayer(QgsRasterLayer(
    {str(ROOT / 'resources/samples/sen12ms-cr-cloudy/ROIs1868_summer_s1_19_p30.tif')!r}, "s1"))
iface = HeadlessIface()
dialog = SarclearDialog(iface, lambda params: None)
assert dialog.model_info.text() == STAGE_LOADING, dialog.model_info.text()  # until the task ends
assert not dialog.run_button.isEnabled()
dialog.show()
deadline = time.monotonic() + 120
while not dialog.ready() and time.monotonic() < deadline:
    app.processEvents(); time.sleep(0.01)
assert dialog.model_config is not None and "torch" in sys.modules
assert importers and not any(importers), f"torch imported in the GUI thread: {{importers}}"
assert dialog.run_button.isEnabled()
assert dialog.model_info.text().startswith("fill-guided model"), dialog.model_info.text()  # the SAR default (S1 loaded)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={"PYTHONPATH": f"{ROOT / 'library'}:{ROOT}", "QT_QPA_PLATFORM": "offscreen",
                               "PATH": "/usr/bin:/bin", "GDAL_PAM_ENABLED": "NO", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
