"""The installable zip: what it holds, and that it installs into a fresh QGIS profile and
works there with its vendored library, with and without torch (separate Python processes,
"Install from ZIP"'s own unzip)."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import SEA
from osgeo import gdal
from plugin_helpers import ROOT

from sarclear.resources import DEMO_MODEL

pytestmark = pytest.mark.qgis


def _build_module():
    spec = importlib.util.spec_from_file_location("build_plugin", ROOT / "scripts" / "build_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory, lite_model_path) -> Path:
    """The zip as `make plugin` builds it, with a (random) model standing in for the demo model."""
    folder = tmp_path_factory.mktemp("zip")
    model = folder / DEMO_MODEL
    shutil.copy(lite_model_path, model)
    return _build_module().build(folder / "dist", models=[model])


def test_zip_has_one_plugin_folder_with_library_icon_and_model(plugin_zip):
    import sarclear

    assert plugin_zip.name == f"sarclear_qgis-{sarclear.__version__}.zip"
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        metadata = zf.read("sarclear_qgis/metadata.txt").decode()
    assert {n.split("/")[0] for n in names} == {"sarclear_qgis"}
    for required in ("__init__.py", "metadata.txt", "LICENSE", "plugin.py", "dialog.py", "task.py", "layers.py",
                     "provider.py", "algorithms.py", "libs/sarclear/__init__.py", "libs/sarclear/inference.py",
                     "resources/icons/sarclear.svg", f"resources/models/{DEMO_MODEL}", "resources/models/README.md",
                     "install.py", "messages.py", "models.py", "dialog_widgets.py", "dialog_inputs.py",
                     "dialog_model.py", "dialog_bands.py", "dialog_area.py", "dialog_output.py", "buffer_option.py",
                     "level_option.py", "sun_option.py", "layer_files.py", "band_match.py", "layer_choice.py",
                     "result_layers.py",
                     "algorithm_base.py", "algorithm_removeclouds.py", "algorithm_evaluation.py"):
        assert f"sarclear_qgis/{required}" in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "tests" in n or "samples" in n]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(metadata)
    meta = parser["general"]
    assert meta["version"] == sarclear.__version__ and meta["qgisMinimumVersion"] == "3.22"
    assert meta["qgisMaximumVersion"] == "4.99" and meta["hasProcessingProvider"] == "yes"
    assert f"sarclear_qgis/{meta['icon']}" in names


def test_sources_have_no_unsafe_torch_load_and_qt_only_through_qgis_pyqt():
    build = _build_module()
    sources = [*(ROOT / "qgis_plugin").rglob("*.py"), *(ROOT / "library" / "sarclear").rglob("*.py")]
    assert build.unsafe_loads(sources) == []
    qt_import = re.compile(r"^\s*(from|import)\s+(PyQt[56]|PySide[26])\b", re.MULTILINE)
    plugin_sources = list((ROOT / "qgis_plugin").rglob("*.py"))
    assert not [p for p in plugin_sources if qt_import.search(p.read_text())]
    assert not [p for p in plugin_sources if ".exec_(" in p.read_text()]
    assert not (ROOT / "qgis_plugin" / "resources.py").exists()  # no compiled Qt resources


def test_build_refuses_an_unpickling_torch_load(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nstate = torch.load(path)\nok = torch.load(path, weights_only=True)\n")
    assert _build_module().unsafe_loads([bad]) == [f"{bad}:2"]


@pytest.mark.parametrize("torch_available", [True, False], ids=["with torch", "without torch"])
def test_zip_installs_into_a_fresh_profile_and_registers_its_provider(plugin_zip, tmp_path, torch_available):
    small = tmp_path / "small_s2.tif"
    gdal.Translate(str(small), str(sorted((SEA / "s2_cloudfree").glob("*.tif"))[0]), srcWin=[0, 0, 64, 64])
    profile = tmp_path / "profile"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SARCLEAR_RESOURCES")}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(profile), QT_QPA_PLATFORM="offscreen", GDAL_PAM_ENABLED="NO")
    args = [sys.executable, str(ROOT / "tests" / "plugin_install_check.py"), str(plugin_zip), str(small), str(tmp_path)]
    done = subprocess.run([*args, *([] if torch_available else ["--no-torch"])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    report = json.loads(lines[-1])
    plugin_dir = Path(report["settings_dir"]) / "python" / "plugins" / "sarclear_qgis"
    assert Path(report["settings_dir"]).is_relative_to(profile)
    assert "sarclear_qgis" in report["available"] and report["loaded"], done.stderr
    assert report["metadata"]["name"] == "sarclear" and report["metadata"]["hasProcessingProvider"] == "yes"
    assert Path(report["sarclear_file"]).is_relative_to(plugin_dir / "libs")  # the vendored library
    assert report["algorithms"] == ["sarclear:errormaps", "sarclear:removeclouds", "sarclear:syntheticclouds"]
    assert report["bundled_models"] == [str(plugin_dir / "resources" / "models" / DEMO_MODEL)]
    assert report["unloaded"] and not report["provider_after_unload"]
    if torch_available:
        assert report["dialog"]["dependencies"] == ""
        assert report["dialog"]["model"] == report["bundled_models"][0]  # the demo model preselected
        info = report["dialog"]["model_info"]
        assert info.startswith("<b>Demo model</b>") and "lite model" in info
        assert gdal.Open(report["processing"]["output"]).RasterCount == 13
    else:
        assert "sarclear needs torch" in report["dialog"]["dependencies"] and not report["dialog"]["run_enabled"]
        assert "pip install" in report["processing"]["error"]
        assert not report["torch_imported"]
