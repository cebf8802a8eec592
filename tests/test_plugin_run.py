"""Full runs through the plugin: dialog -> background QgsTask -> library -> layers. On the
current map extent, with a reference, with SAR that does not overlap, and cancelled at
three moments (nothing may be left behind)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import BEN_S2, CR_CLOUDY_S1, CR_CLOUDY_S2, CR_MASK_FILES
from osgeo import gdal
from plugin_helpers import *  # noqa: F403 (fixtures)
from plugin_helpers import LEVELS, add_raster, messages, wait_for_runs, wait_until
from qgis.core import QgsProject, QgsRectangle
from qgis.PyQt.QtCore import Qt

from qgis_plugin.task import STAGE_LOADING, STAGE_MAPS

pytestmark = pytest.mark.qgis


@pytest.fixture()
def dialog(plugin, sample_project, lite_model_path):
    dlg = plugin.show_dialog()
    dlg.model_widget.setFilePath(str(lite_model_path))
    wait_until(dlg.ready)  # the model's header is read in a background task
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    yield dlg
    dlg.close()


def _group(name):
    group = QgsProject.instance().layerTreeRoot().findGroup(name)
    assert group is not None, f"no layer group {name!r}"
    return group


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _expected_window(layer, extent: QgsRectangle) -> QgsRectangle:
    """``extent`` snapped outward to the layer's 10 m pixels and clipped to the layer."""
    e = layer.extent()
    px = layer.rasterUnitsPerPixelX()
    x0 = e.xMinimum() + px * max(0, math.floor((extent.xMinimum() - e.xMinimum()) / px + 1e-6))
    x1 = e.xMinimum() + px * min(layer.width(), math.ceil((extent.xMaximum() - e.xMinimum()) / px - 1e-6))
    y1 = e.yMaximum() - px * max(0, math.floor((e.yMaximum() - extent.yMaximum()) / px + 1e-6))
    y0 = e.yMaximum() - px * min(layer.height(), math.ceil((e.yMaximum() - extent.yMinimum()) / px - 1e-6))
    return QgsRectangle(x0, y0, x1, y1)


def test_run_on_the_current_extent_adds_the_three_layers(plugin, dialog, sample_project, qgis_iface):
    ms = sample_project["cloudy"]
    e = ms.extent()
    canvas = qgis_iface.mapCanvas()
    # a view off the pixel grid, covering part of the layer
    canvas.setExtent(QgsRectangle(e.xMinimum() + 803, e.yMinimum() + 1207, e.xMinimum() + 1414, e.yMinimum() + 1604))
    view = canvas.extent()
    expected = _expected_window(ms, view)
    assert expected.width() < e.width() or expected.height() < e.height()  # really a part

    dialog.name_edit.setText("extent run")
    dialog.run()
    task = dialog.task
    assert task is not None and not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    wait_for_runs(plugin)

    assert task.error is None and task.result is not None
    (success,) = messages(qgis_iface, LEVELS["success"])
    assert "extent run:" in success and "change between cloudy input and output (not a quality score: no " \
        "reference given): RMSE" in success
    group = _group("extent run")
    assert QgsProject.instance().layerTreeRoot().children()[0] is group  # on top
    output, rmse, sam, mask, *probability = (node.layer() for node in group.findLayers())
    assert [p.name() for p in probability] == ["cloud probability (detector, 0-1)"] * (len(CR_MASK_FILES) - 1)
    assert output.name() == "reconstruction (true colour, lite)"  # the model's name (a demo says so)
    # the stages the dialog showed: loading (torch and the model, in the task), cloud detection, tiles, maps
    assert task.stages == [STAGE_LOADING, "1/1 cloud mask windows", "1/1 tiles", STAGE_MAPS]
    assert mask.name() == "cloud mask (detected)" and mask.renderer().type() == "paletted"
    assert rmse.name() == "RMSE change, input vs output (reflectance)"
    assert sam.name() == "SAM change, input vs output (degrees)"
    for layer in (output, rmse, sam):
        assert layer.isValid() and layer.crs().authid() == "EPSG:32631"
        assert layer.extent().toString(3) == expected.toString(3)
        assert layer.rasterUnitsPerPixelX() == pytest.approx(10.0)
    assert (output.bandCount(), rmse.bandCount(), sam.bandCount()) == (10, 1, 1)
    assert [output.bandName(i) for i in (1, 3, 10)] == ["Band 01: B2", "Band 03: B4", "Band 10: B12"]  # names kept
    # true colour B4/B3/B2 (bands 3, 2, 1 of the paper10 output) with a display stretch only
    renderer = output.renderer()
    assert renderer.type() == "multibandcolor"
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
    assert renderer.redContrastEnhancement() is not None
    # input and output drawn with one stretch: 2-98 % of the input's clear pixels (blue < 0.18) in the area
    src = gdal.Translate("", str(CR_CLOUDY_S2), format="MEM", projWin=[expected.xMinimum(), expected.yMaximum(),
                                                                       expected.xMaximum(), expected.yMinimum()])
    rgb = src.ReadAsArray()[[3, 2, 1]].astype(float)  # B4, B3, B2 of the 13-band L1C order
    clear = gdal.Open(mask.source()).ReadAsArray() == 0  # the detected mask's clear pixels
    assert 0.01 < clear.mean() < 1  # some clouds, some clear ground
    cloudy_renderer = ms.renderer()
    for get, band in zip(("redContrastEnhancement", "greenContrastEnhancement", "blueContrastEnhancement"), rgb):
        out_ce, in_ce = getattr(renderer, get)(), getattr(cloudy_renderer, get)()
        assert (out_ce.minimumValue(), out_ce.maximumValue()) == (in_ce.minimumValue(), in_ce.maximumValue())
        assert out_ce.minimumValue() == pytest.approx(np.percentile(band[clear], 2), abs=1)
        assert out_ce.maximumValue() == pytest.approx(np.percentile(band[clear], 98), abs=1)
    ds = gdal.Open(output.source())
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16  # the input's type: data not stretched
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == ["B2", "B3", "B4"]
    # the maps: pseudocolour from 0, legend with units, hidden under the reconstruction
    for layer, suffix in ((rmse, " reflectance"), (sam, "°")):
        assert layer.renderer().type() == "singlebandpseudocolor"
        function = layer.renderer().shader().rasterShaderFunction()
        assert function.minimumValue() == 0 and function.maximumValue() > 0
        assert function.legendSettings().suffix() == suffix
    nodes = group.findLayers()
    assert nodes[0].itemVisibilityChecked() and not nodes[1].itemVisibilityChecked()
    # before / after: the reconstruction hidden (the cloudy input shows through), then shown
    assert dialog.compare_button.isEnabled()
    assert dialog.flip_result() is False and not nodes[0].itemVisibilityChecked()
    assert dialog.flip_result() is True and nodes[0].itemVisibilityChecked()
    # files: the reconstruction, its two maps and the metrics, nothing half-written
    folder = task.result.output.parent
    assert _files(folder) == ["extent_run.tif", "extent_run_change_metrics.json", "extent_run_change_rmse.tif",
                              "extent_run_change_sam.tif", *(f.replace("o_", "extent_run_") for f in CR_MASK_FILES)]
    assert dialog.progress.value() == 100 and dialog.run_button.isEnabled()
    assert "extent run:" in dialog.status_label.text()
    # the next run's estimate: its tiles, at the speed this run measured
    dialog.area_layer.setChecked(True)
    rate = task.result.seconds / task.result.tiles
    assert dialog.area_info.text().endswith(f"; 1 tile of 256 px, about {max(1, round(rate))} s at the speed of "
                                            "the last run")


def test_run_with_a_reference_makes_error_maps_and_reports_metrics(plugin, dialog, sample_project, qgis_iface):
    dialog.reference_combo.setLayer(sample_project["cloudy"])  # any co-located S2 will do as a reference
    dialog.area_layer.setChecked(True)
    dialog.name_edit.setText("with reference")
    dialog.run()
    wait_for_runs(plugin)
    (success,) = messages(qgis_iface, LEVELS["success"])
    assert "error against the reference: RMSE" in success and "SSIM" in success
    names = [node.layer().name() for node in _group("with reference").findLayers()]
    assert names == ["reconstruction (true colour, lite)", "RMSE error vs reference (reflectance)",
                     "SAM error vs reference (degrees)", "cloud mask (detected)",
                     *["cloud probability (detector, 0-1)"] * (len(CR_MASK_FILES) - 1)]
    output = _group("with reference").findLayers()[0].layer()
    assert output.extent().toString(3) == sample_project["cloudy"].extent().toString(3)  # whole layer


def test_sar_that_does_not_overlap_is_a_clear_message_and_no_layer(plugin, dialog, sample_project, qgis_iface,
                                                                   monkeypatch):
    dialog.set_sar_layers([sample_project["ben_vv"], sample_project["ben_vh"]])  # Ireland; the S2 is elsewhere
    assert not dialog.run_button.isEnabled()  # the dialog already says where it lies (test_plugin_dialog)
    # a run started anyway (the check bypassed) fails with the library's message, no traceback, no layer
    monkeypatch.setattr(dialog, "coverage_problems", lambda: [])
    dialog._update_status()
    assert dialog.run_button.isEnabled()
    before = QgsProject.instance().layerTreeRoot().children()
    dialog.run()
    out = dialog.task.params.out
    wait_for_runs(plugin)
    (error,) = messages(qgis_iface, LEVELS["critical"])
    assert "does not overlap the optical area" in error and "Use a SAR scene that covers the optical one" in error
    assert "Traceback" not in error
    assert QgsProject.instance().layerTreeRoot().children() == before
    assert _files(__import__("pathlib").Path(out).parent) == []
    assert dialog.status_label.text() == error.split(":", 1)[1]


def _mosaic(src, dst, copies: int = 2) -> None:
    """``src`` stacked ``copies`` times vertically (mirrored, so texture continues), with its
    georeference: a raster several tile rows tall."""
    ds = gdal.Open(str(src))
    data = ds.ReadAsArray()
    tall = np.concatenate([data if k % 2 == 0 else data[:, ::-1] for k in range(copies)], axis=1)[:, :256 * copies]
    out = gdal.GetDriverByName("GTiff").Create(str(dst), tall.shape[2], tall.shape[1], tall.shape[0],
                                               ds.GetRasterBand(1).DataType)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    out.WriteRaster(0, 0, tall.shape[2], tall.shape[1], tall.tobytes())
    out = None


@pytest.mark.parametrize("when", ["at once", "during the tiles", "during the maps"])
def test_cancel_leaves_nothing_behind(plugin, dialog, sample_project, qgis_iface, tmp_path, when):
    if when == "during the tiles":  # five rows of tiles: more than one batch, cancelled after the first
        _mosaic(CR_CLOUDY_S2, tmp_path / "tall_s2.tif", copies=4)
        _mosaic(CR_CLOUDY_S1, tmp_path / "tall_s1.tif", copies=4)
        dialog.ms_combo.setLayer(add_raster(tmp_path / "tall_s2.tif", "tall S2"))
        dialog.set_sar_layers([add_raster(tmp_path / "tall_s1.tif", "tall S1")])
    dialog.area_layer.setChecked(True)
    dialog.out_folder.setChecked(True)
    folder = tmp_path / "out"
    folder.mkdir()
    dialog.folder_widget.setFilePath(str(folder))
    dialog.name_edit.setText("cancelled run")
    before = QgsProject.instance().layerTreeRoot().children()
    dialog.run()
    task = dialog.task
    if when == "at once":
        dialog.cancel_button.click()  # the user's click, before the run can finish
    else:
        # cancel from the worker thread at the first progress report: after the first batch of
        # tiles (five rows), or after the only tile, while the maps are being computed
        def cancel_after_tiles(_value: float) -> None:  # not during the cloud detection before them
            if task.stage.endswith(" tiles"):
                task.cancel()

        task.progressChanged.connect(cancel_after_tiles, Qt.ConnectionType.DirectConnection)
    wait_for_runs(plugin)

    assert task.error is None and task.result is None and task.cancelled
    # where it stopped: before any tile; after the first batch, short of all 5 tiles; after the
    # only tile (the reconstruction was complete and committed, the maps were being computed)
    if when == "during the tiles":
        done, total = map(int, re.fullmatch(r"(\d+)/(\d+) tiles", task.stage).groups())
        assert 0 < done < total == 5
    else:
        assert task.stage == {"at once": "", "during the maps": "1/1 tiles"}[when]
    assert messages(qgis_iface, LEVELS["info"])[-1] == "sarclear:cancelled run: cancelled; nothing was written"
    assert not messages(qgis_iface, LEVELS["critical"]) and not messages(qgis_iface, LEVELS["success"])
    assert _files(folder) == []  # no output, no map, no metrics, no temporary part
    assert QgsProject.instance().layerTreeRoot().children() == before
    assert dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_run_on_a_folder_of_band_files(plugin, dialog, sample_project, qgis_iface):
    """A BigEarthNet L2A product as its per-band files (10, 20 and 60 m), with its S1 pair."""
    dialog.set_ms_files([str(BEN_S2)])
    dialog.set_sar_layers([sample_project["ben_vv"], sample_project["ben_vh"]])
    dialog.area_layer.setChecked(True)
    dialog.name_edit.setText("band files")
    assert dialog.run_button.isEnabled(), dialog.band_status.text()
    dialog.run()
    task = dialog.task
    wait_for_runs(plugin)
    assert task.error is None, task.error
    output = _group("band files").findLayers()[0].layer()
    ds = gdal.Open(output.source())
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (120, 120, 10)  # the 10 m grid
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 9, 10)] == ["B2", "B11", "B12"]


def test_a_run_fitted_to_the_scene_reports_the_fitting_on_the_progress_bar(plugin, dialog, sample_project):
    """A gap-fill model fitted for the shortest time the dialog offers (10 s), then the run."""
    dialog.model_widget.setFilePath(str(Path(__file__).resolve().parents[1] / "resources" / "models"
                                        / "sarclear-fill.safetensors"))
    wait_until(dialog.ready)
    dialog.area_layer.setChecked(True)
    dialog.adapt_option.checkbox.setChecked(True)
    dialog.adapt_option.time_spin.setValue(0)  # clamped to the minimum
    assert dialog.adapt_option.seconds() == 10.0 and dialog.area_info.text().endswith("adds about 10 s")
    dialog.name_edit.setText("fitted run")
    dialog.run()
    task = dialog.task
    values: list[float] = []
    task.progressChanged.connect(values.append, Qt.ConnectionType.DirectConnection)
    wait_for_runs(plugin)
    assert task.error is None and task.result is not None, task.error
    assert any(n.startswith("model fitted to this scene for 10 s on ") for n in task.result.notes)
    fitting = [s for s in task.stages if s.startswith("fitting the model to the scene: ")]
    assert fitting[0] == "fitting the model to the scene: 0 of 10 s" and len(fitting) == len(set(fitting)) > 5
    assert task.stages.index(fitting[-1]) < task.stages.index("1/1 tiles")  # fitting, then the tile
    assert values == sorted(values) and any(10.0 < v < 50.0 for v in values) and values[-1] == 100.0
    assert dialog.progress.value() == 100
    # the next estimate's speed per tile leaves the fitting time out
    rate = dialog.seconds_per_tile[(task.params.model, "cpu")]
    assert rate == pytest.approx(task.result.seconds - 10.0) and rate > 0
