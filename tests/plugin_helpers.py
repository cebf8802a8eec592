"""Fixtures and helpers of the QGIS plugin tests (pytest-qgis, real QGIS, offscreen).

pytest-qgis's ``qgis_iface`` is a stub of QgisInterface without the Raster menu calls;
``plugin_iface`` adds them, backed by a real QMenu, so the tests can check the menu entry.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import BEN_S1, CR_CLOUDY_S1, CR_CLOUDY_S2
from qgis.core import Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QMenu

ROOT = Path(__file__).resolve().parent.parent

#: the fixtures, for ``from plugin_helpers import *`` in the test modules (pytest finds
#: fixtures by name in the module; importing them by name would look unused to linters)
__all__ = ["no_torch", "plugin", "plugin_iface", "sample_project"]


@pytest.fixture()
def plugin_iface(qgis_iface, monkeypatch):
    """pytest-qgis's iface with a Raster menu and an empty message bar."""
    menu = QMenu("Raster")
    monkeypatch.setattr(qgis_iface, "raster_menu", menu, raising=False)
    monkeypatch.setattr(qgis_iface, "addPluginToRasterMenu", lambda name, action: menu.addAction(action),
                        raising=False)
    monkeypatch.setattr(qgis_iface, "removePluginRasterMenu", lambda name, action: menu.removeAction(action),
                        raising=False)
    for messages in qgis_iface.messageBar().messages.values():
        messages.clear()
    yield qgis_iface
    for messages in qgis_iface.messageBar().messages.values():
        messages.clear()


def messages(iface, level) -> list[str]:
    return iface.messageBar().get_messages(level)


def add_raster(path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture()
def sample_project(qgis_new_project, qgis_iface) -> dict[str, QgsRasterLayer]:
    """A project with the real samples: the cloudy SEN12MS-CR pair (13-band S2 and 2-band S1,
    unlabelled, EPSG:32631) and BigEarthNet S1 as one file per polarisation (EPSG:32629,
    elsewhere on Earth). The canvas shows the cloudy S2 in its CRS."""
    project = {
        "cloudy": add_raster(CR_CLOUDY_S2, "cloudy S2"),
        "s1": add_raster(CR_CLOUDY_S1, "S1 VV VH"),
        "ben_vv": add_raster(next(BEN_S1.glob("*_VV.tif")), "BigEarthNet VV"),
        "ben_vh": add_raster(next(BEN_S1.glob("*_VH.tif")), "BigEarthNet VH"),
    }
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    canvas.setExtent(project["cloudy"].extent())
    yield project
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


@pytest.fixture()
def plugin(plugin_iface):
    """The plugin, loaded the way QGIS does (classFactory, initGui), unloaded afterwards."""
    import qgis_plugin

    instance = qgis_plugin.classFactory(plugin_iface)
    instance.initGui()
    yield instance
    instance.unload()


def wait_until(predicate, timeout: float = 120.0) -> None:
    """Process Qt events (task completion is delivered on the main thread) until
    ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        QgsApplication.processEvents()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.01)


def wait_for_runs(plugin, timeout: float = 120.0) -> None:
    wait_until(lambda: not plugin.tasks, timeout)
    QgsApplication.processEvents()


@pytest.fixture()
def no_torch(monkeypatch):
    """Make ``import torch`` (and safetensors' torch part) fail, and forget every cached
    module that imported torch, so lazily imported code meets a QGIS without torch. Every
    entry is restored afterwards."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    for name in list(sys.modules):
        if name.startswith(("torch.", "qgis_plugin")) or (name.startswith("sarclear.") and name not in (
                "sarclear.bands", "sarclear.errors", "sarclear.resources")):
            monkeypatch.delitem(sys.modules, name)
    yield


LEVELS = {"info": Qgis.MessageLevel.Info, "warning": Qgis.MessageLevel.Warning,
          "critical": Qgis.MessageLevel.Critical, "success": Qgis.MessageLevel.Success}
