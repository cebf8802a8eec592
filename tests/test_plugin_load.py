"""The QGIS plugin loads and unloads cleanly, with and without torch importable: toolbar
button, Raster menu entry, Processing provider; heavy imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from plugin_helpers import *  # noqa: F403 (fixtures)
from plugin_helpers import LEVELS, ROOT
from qgis.core import QgsApplication

pytestmark = pytest.mark.qgis

ALGORITHMS = {"sarclear:removeclouds", "sarclear:errormaps", "sarclear:syntheticclouds"}


def _sarclear_algorithms() -> set[str]:
    provider = QgsApplication.processingRegistry().providerById("sarclear")
    return set() if provider is None else {a.id() for a in provider.algorithms()}


def test_plugin_adds_button_menu_and_provider_and_unload_removes_them(plugin_iface):
    import qgis_plugin

    plugin = qgis_plugin.classFactory(plugin_iface)
    plugin.initGui()
    action = plugin.action
    assert action.objectName() == "sarclearRemoveClouds"
    assert not action.icon().isNull()
    assert action in plugin.toolbar.actions()
    assert action in plugin_iface.raster_menu.actions()
    assert _sarclear_algorithms() == ALGORITHMS

    plugin.unload()
    assert action not in plugin_iface.raster_menu.actions()
    assert QgsApplication.processingRegistry().providerById("sarclear") is None
    assert plugin.toolbar is None and plugin.action is None


def test_button_opens_the_dialog(plugin, sample_project):
    plugin.action.trigger()
    assert plugin.dialog is not None and plugin.dialog.isVisible()
    plugin.dialog.close()


def test_plugin_loads_without_torch_and_says_how_to_install_it(no_torch, plugin_iface, sample_project):
    import qgis_plugin

    with pytest.raises(ImportError):
        import torch  # noqa: F401
    plugin = qgis_plugin.classFactory(plugin_iface)
    plugin.initGui()
    try:
        assert _sarclear_algorithms() == ALGORITHMS
        dialog = plugin.show_dialog()
        text = dialog.dependency_label.text()
        assert dialog.dependency_label.isVisibleTo(dialog)
        assert "sarclear needs torch" in text and "-m pip install --user --break-system-packages -c" in text
        assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
        assert dialog.install_box.isVisibleTo(dialog)
        assert "restart QGIS" in text
        assert not dialog.run_button.isEnabled()
        assert "PyTorch" in dialog.band_status.text()
        # the layers are still listed: the dialog works, only the run waits for torch
        assert dialog.ms_combo.count() == len(sample_project)
        assert dialog.sar_list.count() == len(sample_project)
        assert not any(m for m in plugin_iface.messageBar().messages[LEVELS["critical"]])
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("sarclear") is None


def test_algorithm_without_torch_fails_with_the_install_instructions(no_torch, plugin_iface, qgis_processing,
                                                                     sample_project):
    import processing
    from qgis.core import QgsProcessingException

    import qgis_plugin

    plugin = qgis_plugin.classFactory(plugin_iface)
    plugin.initProcessing()
    try:
        with pytest.raises(QgsProcessingException, match=r"(?s)sarclear needs torch .* pip install"):
            processing.run("sarclear:syntheticclouds", {"INPUT": sample_project["cloudy"],
                                                        "OUTPUT": "TEMPORARY_OUTPUT"})
    finally:
        plugin.unload()


def test_loading_the_plugin_and_its_provider_imports_neither_torch_nor_the_library_engine():
    """QGIS starts every enabled plugin at launch: that must stay cheap."""
    code = ("import sys; from qgis.core import QgsApplication; app = QgsApplication([], False); app.initQgis(); "
            "import qgis_plugin; "
            "from qgis_plugin import plugin, dialog, task, layers, provider, algorithms, environment; "
            "p = provider.SarclearProvider(); assert QgsApplication.processingRegistry().addProvider(p); "
            "assert len(p.algorithms()) == 3; "
            "heavy = sorted(m for m in ('torch', 'sarclear.inference', 'sarclear.raster') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{ROOT / 'library'}:{ROOT}", "QT_QPA_PLATFORM": "offscreen",
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dialog_docks_beside_the_map_in_one_column_and_floats_again(plugin, sample_project):
    from qgis.core import QgsSettings
    from qgis.gui import QgsDockWidget
    from qgis.PyQt.QtWidgets import QBoxLayout

    dialog = plugin.show_dialog()
    try:
        dialog.dock_button.click()
        assert isinstance(plugin.dock, QgsDockWidget) and plugin.dock.widget() is dialog
        assert dialog.columns.direction() == QBoxLayout.Direction.TopToBottom and dialog.dock_button.text() == "Float"
        assert QgsSettings().value("sarclear/docked", False, type=bool)
        dialog.dock_button.click()
        assert plugin.dock is None and dialog.isWindow() and dialog.isVisible()
        assert dialog.columns.direction() == QBoxLayout.Direction.LeftToRight
        assert not QgsSettings().value("sarclear/docked", True, type=bool)
    finally:
        QgsSettings().remove("sarclear/docked")
        dialog.close()
