"""The plugin dialog on a project with the real sample layers: layer lists, guesses, the
band matching shown (and edited) before the run, the device found, and the area in the MS
layer's CRS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import BEN_S2, CR_CLOUDY_S2
from osgeo import gdal
from plugin_helpers import *  # noqa: F403 (fixtures)
from plugin_helpers import add_raster, wait_until
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFileDialog, QMessageBox

from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.defaults import MASK_BUFFER_PX

pytestmark = pytest.mark.qgis

#: what every run of the dialog passes unless the user changes the buffers
DEFAULT_BUFFERS = {"mask_buffer": MASK_BUFFER_PX}  # the fill buffer at "auto": the library's default for the mask


@pytest.fixture()
def dialog(plugin, sample_project, lite_model_path):
    dlg = plugin.show_dialog()
    dlg.model_widget.setFilePath(str(lite_model_path))
    wait_until(dlg.ready)  # the model's header is read in a background task
    yield dlg
    dlg.close()


def _table(dlg) -> list[tuple[str, str, str, str]]:
    t = dlg.band_table
    return [(t.item(r, 0).text(), t.item(r, 1).text(), t.cellWidget(r, 2).currentText(), t.item(r, 3).text())
            for r in range(t.rowCount())]


def test_dialog_lists_the_project_rasters_and_guesses_the_inputs(dialog, sample_project):
    names = [layer.name() for layer in sample_project.values()]
    assert sorted(dialog.ms_combo.itemText(i) for i in range(dialog.ms_combo.count())) == sorted(names)
    assert sorted(dialog.sar_list.item(i).text() for i in range(dialog.sar_list.count())) == sorted(names)
    assert dialog.ms_combo.currentLayer() is sample_project["cloudy"]
    assert [layer.name() for layer in dialog.sar_layers()] == ["S1 VV VH"]  # both channels in one layer
    assert dialog.reference_combo.currentLayer() is None and dialog.mask_combo.currentLayer() is None
    assert "lite model" in dialog.model_info.text() and "VV, VH" in dialog.model_info.text()
    # the 13 unlabelled bands are named by the default L1C order; the model reads paper10
    rows = _table(dialog)
    ms_rows = [r for r in rows if r[0] == "cloudy S2"]
    assert [r[2] for r in ms_rows] == list(S2_BANDS)
    used = {r[2]: r[3] for r in ms_rows}
    assert [used[b] for b in S2_PAPER10] == [f"#{k + 1}" for k in range(len(S2_PAPER10))]
    assert used["B1"] == used["B9"] == used["B10"] == "not used"
    assert [(r[2], r[3]) for r in rows if r[0] == "S1 VV VH"] == [("VV", "#1"), ("VH", "#2")]
    assert "were found" in dialog.band_status.text()
    assert dialog.run_button.isEnabled() and not dialog.cancel_button.isEnabled()
    # CPU-only torch here: the dialog says why CUDA is unavailable and greys it out
    assert dialog.device_info.text().startswith(("CUDA unavailable: ", "GPU detected: "))
    if dialog.device_info.text().startswith("CUDA unavailable"):
        assert not dialog.device_combo.model().item(1).isEnabled()
    assert dialog.area_info.text().startswith("256 x 256 pixels of cloudy S2 (the current map extent")


def test_one_layer_per_polarisation_is_matched_by_file_name(dialog, sample_project):
    dialog.set_sar_layers([sample_project["ben_vh"], sample_project["ben_vv"]])
    rows = [r for r in _table(dialog) if r[0].startswith("BigEarthNet")]
    assert sorted((r[0], r[2], r[3]) for r in rows) == [("BigEarthNet VH", "VH", "#2"), ("BigEarthNet VV", "VV", "#1")]
    assert dialog.sar_match.ok  # the bands match; only the place is wrong (Ireland, the S2 is elsewhere)
    assert all(p.startswith("Sentinel-1: the layer 'BigEarthNet") for p in dialog.band_problems().splitlines())


def test_wrong_band_count_is_explained_before_the_run_and_names_can_be_edited(dialog, tmp_path):
    four = tmp_path / "rgbn.tif"  # four unlabelled bands: no default order for 4 bands
    gdal.Translate(str(four), str(CR_CLOUDY_S2), bandList=[2, 3, 4, 8])
    layer = add_raster(four, "four bands")
    dialog.ms_combo.setLayer(layer)
    status = dialog.band_status.text()
    assert "cannot tell which band is which" in status and "4 unnamed bands" in status
    assert "13 (B1..B12), 12 (L2A, no B10) or 10" in status
    assert not dialog.run_button.isEnabled()
    assert [r[2] for r in _table(dialog) if r[0] == "four bands"] == ["", "", "", ""]

    # name them in the table: now the count is the problem, said with the bands missing
    for row, name in enumerate(["B2", "B3", "B4", "B8"]):
        dialog.band_table.cellWidget(row, 2).setCurrentText(name)
    assert dialog.ms_order == ["B2", "B3", "B4", "B8"]
    status = dialog.band_status.text()
    assert "the model needs bands B2, B3, B4, B5" in status
    assert "B5, B6, B7, B8A, B11, B12 are missing (found: B2, B3, B4, B8)" in status
    assert not dialog.run_button.isEnabled()
    assert [r[3] for r in _table(dialog) if r[0] == "four bands"] == ["", "", "", ""]


def test_sar_without_the_model_channels_blocks_the_run(dialog, sample_project):
    dialog.set_sar_layers([sample_project["ben_vv"]])
    assert "Sentinel-1:" in dialog.band_status.text() and "VH is missing (found: VV)" in dialog.band_status.text()
    assert not dialog.run_button.isEnabled()
    dialog.set_sar_layers([])
    assert "tick the layer(s) with VV, VH" in dialog.band_status.text()


def test_a_reference_without_the_model_bands_blocks_the_run(dialog, sample_project):
    dialog.reference_combo.setLayer(sample_project["s1"])  # a SAR layer by mistake
    assert dialog.band_status.text().startswith("Reference: ") and "cannot tell which band is which" in \
        dialog.band_status.text()
    assert not dialog.run_button.isEnabled()
    dialog.reference_combo.setLayer(sample_project["cloudy"])
    assert dialog.band_problems() is None and dialog.run_button.isEnabled()


def test_area_is_taken_in_the_ms_layer_crs(dialog, sample_project, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    ms = sample_project["cloudy"]
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    to_wgs84 = QgsCoordinateTransform(ms.crs(), wgs84, QgsProject.instance())
    e = ms.extent()
    inner = QgsRectangle(e.xMinimum() + 500, e.yMinimum() + 700, e.xMinimum() + 1500, e.yMinimum() + 1400)
    canvas.setDestinationCrs(wgs84)
    canvas.setExtent(to_wgs84.transformBoundingBox(inner))
    canvas.refresh()
    xmin, ymin, xmax, ymax = dialog.aoi()
    # the canvas shows (at least) the inner rectangle, converted back into the MS layer's UTM metres
    assert xmin <= inner.xMinimum() + 1 and xmax >= inner.xMaximum() - 1
    assert ymin <= inner.yMinimum() + 1 and ymax >= inner.yMaximum() - 1
    assert xmax - xmin < 3000 and ymax - ymin < 3000  # metres, not degrees
    assert "pixels of cloudy S2 (the current map extent, snapped to its pixel grid, EPSG:32631)" in \
        dialog.area_info.text()

    dialog.area_layer.setChecked(True)
    assert dialog.aoi() is None
    assert dialog.area_info.text().startswith("256 x 256 pixels of cloudy S2 (the whole layer")

    # the user draws a rectangle (the map tool's signal); the dialog comes back with it chosen
    dialog.start_drawing()
    assert canvas.mapTool() is dialog.extent_tool and not dialog.isVisible()
    # 33.3 x 44.4 pixels starting mid-pixel: columns 50.5..83.8, rows 141.1..185.5 -> 34 x 45 whole pixels
    x0, y0 = e.xMinimum() + 505, e.yMinimum() + 705
    drawn = QgsRectangle(x0, y0, x0 + 333, y0 + 444)
    canvas.setDestinationCrs(ms.crs())
    dialog.extent_tool.extentChanged.emit(drawn)
    assert dialog.isVisible() and dialog.area_drawn.isChecked()
    assert canvas.mapTool() is not dialog.extent_tool
    assert dialog.aoi() == pytest.approx((drawn.xMinimum(), drawn.yMinimum(), drawn.xMaximum(), drawn.yMaximum()))
    assert dialog.area_info.text().startswith("34 x 45 pixels of cloudy S2 (the drawn rectangle")


def test_existing_outputs_are_not_replaced_without_asking(dialog, tmp_path, monkeypatch):
    dialog.name_edit.setText("my run")
    dialog.out_folder.setChecked(True)
    dialog.folder_widget.setFilePath(str(tmp_path))
    (tmp_path / "my_run.tif").write_bytes(b"precious")
    started = []
    dialog.start_run = started.append
    asked = []

    def answer(reply):
        def question(parent, title, text, *args):
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    dialog.run()
    assert started == [] and (tmp_path / "my_run.tif").read_bytes() == b"precious"
    assert str(tmp_path / "my_run.tif") in asked[0]
    assert "Not run" in dialog.status_label.text()

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    dialog.run()
    (params,) = started
    assert params.overwrite and params.out == str(tmp_path / "my_run.tif") and params.name == "my run"


def test_parameters_carry_the_choices(dialog, sample_project, lite_model_path):
    dialog.reference_combo.setLayer(sample_project["cloudy"])
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.area_layer.setChecked(True)
    params = dialog.parameters()
    assert params.ms == [str(CR_CLOUDY_S2)] and params.reference == [str(CR_CLOUDY_S2)]
    assert params.sar == [sample_project["s1"].source()] and params.model == str(lite_model_path)
    assert params.device == "cpu" and params.aoi is None and not params.overwrite
    assert params.out.endswith(".tif") and "cloudy_S2_declouded_" in params.out
    assert dialog.sar_list.item(0).flags() & Qt.ItemFlag.ItemIsUserCheckable


def test_a_pickle_model_file_is_refused_with_the_reason(dialog, tmp_path):
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"PK\x03\x04 a torch.save zip")
    dialog.model_widget.setFilePath(str(pickle))
    wait_until(dialog.ready)
    assert "this is a pickle checkpoint (torch.save)" in dialog.model_info.text()
    assert dialog.model_config is None and not dialog.run_button.isEnabled()


def _shifted_copy(tmp_path, name: str, dx: float, dy: float = 0.0):
    """The cloudy S2 sample moved by (dx, dy) metres: the same bands, elsewhere."""
    src = gdal.Open(str(CR_CLOUDY_S2))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    path = tmp_path / f"{name}.tif"
    gdal.Translate(str(path), src, outputBounds=[x0 + dx, y0 + dy, x0 + dx + px * src.RasterXSize,
                                                 y0 + dy + py * src.RasterYSize])
    return path


def test_the_selected_layer_covering_the_map_is_proposed_not_the_first(plugin, sample_project, lite_model_path,
                                                                        qgis_iface, tmp_path):
    # a second S2 layer 40 km east of the cloudy one (gap between edges), listed first in the tree
    width = sample_project["cloudy"].extent().width()
    far = add_raster(_shifted_copy(tmp_path, "far", 40_000 + width), "far S2")
    root = QgsProject.instance().layerTreeRoot()
    node = root.findLayer(far.id())
    root.insertChildNode(0, node.clone())
    root.removeChildNode(node)
    assert root.layerOrder()[0] is far
    dialog = plugin.show_dialog()
    dialog.model_widget.setFilePath(str(lite_model_path))
    wait_until(dialog.ready)
    # the canvas shows the cloudy layer: it is proposed, not the first raster of the tree
    assert dialog.ms_combo.currentLayer() is sample_project["cloudy"]
    assert [layer.name() for layer in dialog.sar_layers()] == ["S1 VV VH"]

    # the analyst selects the far layer and zooms to it: reopening the dialog proposes it
    qgis_iface.setActiveLayer(far)
    qgis_iface.mapCanvas().setExtent(far.extent())
    dialog = plugin.show_dialog()
    assert dialog.ms_combo.currentLayer() is far

    # back on the cloudy scene's view with the far layer chosen: the run is blocked, in words
    qgis_iface.mapCanvas().setExtent(sample_project["cloudy"].extent())
    dialog.ms_combo.setLayer(far)
    text = dialog.area_info.text()
    gap_km = (far.extent().xMinimum() - qgis_iface.mapCanvas().extent().xMaximum()) / 1000  # the view is wider
    assert 30 < gap_km <= 40
    found = re.match(r"Area: the Sentinel-2 layer 'far S2' does not cover the map extent; it lies (\d+) km to "
                     r"the east\.", text)
    assert found and abs(int(found.group(1)) - gap_km) <= 1, text  # UTM metres vs the ellipsoid: within 0.1 %
    assert "Zoom to the layer, or choose Whole MS layer" in text and not dialog.run_button.isEnabled()
    dialog.close()


def test_sar_that_does_not_cover_the_area_is_explained_before_the_run(dialog, sample_project):
    dialog.set_sar_layers([sample_project["ben_vv"], sample_project["ben_vh"]])  # Ireland; the S2 is elsewhere
    status = dialog.band_status.text()
    assert re.search(r"Sentinel-1: the layer 'BigEarthNet VV' does not cover the Sentinel-2 layer within the map "
                     r"extent; it lies "
                     r"[\d,]+ km to the (north|south|east|west|north-west|north-east|south-west|south-east)\.",
                     status), status
    assert "Tick a SAR layer that covers the Sentinel-2 area" in status
    assert not dialog.run_button.isEnabled()


def _ireland(dialog, sample_project):
    """The BigEarthNet S1 pair of the same patch, and the whole MS layer as the area."""
    dialog.set_sar_layers([sample_project["ben_vv"], sample_project["ben_vh"]])
    dialog.area_layer.setChecked(True)


def test_a_virtual_raster_of_band_files_is_read_by_its_source_names_and_the_mapping_shown(dialog, sample_project,
                                                                                           tmp_path):
    # what QGIS's "Build virtual raster (separate)" makes of a product's band files: file-name order
    files = sorted(str(f) for f in BEN_S2.glob("*_B*.tif"))
    assert [f[-7:-4] for f in files][-4:] == ["B09", "B11", "B12", "B8A"]
    vrt = tmp_path / "stack.vrt"
    gdal.BuildVRT(str(vrt), files, separate=True)
    dialog.ms_combo.setLayer(add_raster(vrt, "QGIS virtual raster"))
    _ireland(dialog, sample_project)
    rows = [r for r in _table(dialog) if r[0] == "QGIS virtual raster"]
    # each band named after the file it reads (not by the 12-band default order, which would
    # read band 9, B09, as B8A), and the mapping shown with its source
    assert [r[2] for r in rows] == [Path(f).stem[-3:].replace("B0", "B") for f in files]
    assert [dialog.band_table.item(r, 4).text() for r in range(12)] == [f"VRT source: {Path(f).name}" for f in files]
    used = {r[2]: r[3] for r in rows}
    assert [used[b] for b in S2_PAPER10] == [f"#{k + 1}" for k in range(10)]
    assert used["B1"] == used["B9"] == "not used"
    assert dialog.band_problems() is None and dialog.run_button.isEnabled()


def test_an_unnamed_stack_in_alphabetical_band_order_is_refused_with_the_library_reason(dialog, tmp_path):
    alphabetical = sorted(S2_BANDS)  # B1, B10, B11, B12, B2, ...: a stack built from sorted file names
    stack = tmp_path / "alphabetical.tif"
    gdal.Translate(str(stack), str(CR_CLOUDY_S2), bandList=[S2_BANDS.index(b) + 1 for b in alphabetical])
    dialog.ms_combo.setLayer(add_raster(stack, "alphabetical stack"))
    status = dialog.band_status.text()
    assert status.startswith("Sentinel-2: ") and "fit the alphabetical order" in status, status
    assert not dialog.run_button.isEnabled()
    rows = [r for r in _table(dialog) if r[0] == "alphabetical stack"]
    assert len(rows) == 13
    # the analyst names the bands in file order in the table: accepted
    for row, name in enumerate(alphabetical):
        dialog.band_table.cellWidget(row, 2).setCurrentText(name)
    assert dialog.band_problems() is None and dialog.run_button.isEnabled()
    assert dialog.parameters().ms_bands == alphabetical


@pytest.mark.parametrize("how", ["band files", "folder"])
def test_per_band_products_can_be_picked_as_files_or_a_folder(dialog, sample_project, how, monkeypatch):
    files = sorted(str(f) for f in BEN_S2.glob("*_B*.tif"))
    if how == "band files":
        monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (files, ""))
        dialog.ms_files_button.click()
    else:
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(BEN_S2))
        dialog.ms_folder_button.click()
    _ireland(dialog, sample_project)
    assert dialog.ms_files_box.isVisibleTo(dialog) and not dialog.ms_combo.isEnabled()
    rows = _table(dialog)[:12]
    assert [r[0] for r in rows] == [Path(f).name for f in files] and all(r[1] == "1" for r in rows)
    assert [r[2] for r in rows] == [Path(f).stem[-3:].replace("B0", "B") for f in files]  # named by file name
    assert dialog.band_problems() is None and dialog.run_button.isEnabled(), dialog.band_status.text()
    # the area is the finest (10 m) band's grid: 120 x 120 pixels
    assert dialog.area_info.text().startswith("120 x 120 pixels of S2A_MSIL2A_20170617T113321_4_55_B0")
    params = dialog.parameters()
    assert params.ms == (files if how == "band files" else [str(BEN_S2)])
    dialog.ms_layer_button.click()  # back to a layer
    assert dialog.ms_files is None and dialog.ms_combo.isEnabled() and not dialog.ms_files_box.isVisibleTo(dialog)


def test_the_offset_decision_is_shown_and_can_be_overridden(dialog, sample_project):
    text = dialog.offset_info.text()
    assert text.startswith("reflectance = (value +0) / 10000: "), text  # a 2017 L1C: no offset
    assert "offset" not in dialog.parameters().extra
    dialog.offset_combo.setCurrentIndex(dialog.offset_combo.findData("-1000"))
    assert dialog.offset_info.text().startswith("reflectance = (value -1000) / 10000")
    assert dialog.parameters().extra == {"ms_offset": -1000.0, **DEFAULT_BUFFERS}
    dialog.offset_combo.setCurrentIndex(dialog.offset_combo.findData("custom"))
    assert dialog.offset_spin.isEnabled()
    dialog.offset_spin.setValue(-500)
    assert dialog.offset_info.text().startswith("reflectance = (value -500) / 10000")
    assert dialog.parameters().extra == {"ms_offset": -500.0, **DEFAULT_BUFFERS}
    dialog.offset_combo.setCurrentIndex(dialog.offset_combo.findData("none"))
    assert dialog.parameters().extra == {"ms_offset": 0.0, **DEFAULT_BUFFERS} and not dialog.offset_spin.isEnabled()


def test_the_reference_row_is_below_the_sar_list_and_the_dialog_fits_a_laptop_screen(dialog):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QPoint

    dialog.show()
    QgsApplication.processEvents()
    sar_bottom = dialog.sar_list.mapTo(dialog, QPoint(0, dialog.sar_list.height())).y()
    reference_top = dialog.reference_combo.mapTo(dialog, QPoint(0, 0)).y()
    assert sar_bottom < reference_top, (sar_bottom, reference_top)  # at least one pixel between them
    minimum = dialog.minimumSizeHint()
    assert minimum.width() <= 1280 and minimum.height() <= 600  # the contents scroll on a small screen
    screen = dialog.screen().availableGeometry()
    assert dialog.width() <= screen.width() and dialog.height() <= screen.height()


def test_output_goes_next_to_a_saved_project_and_the_temporary_folder_is_announced(dialog, tmp_path):
    assert dialog.out_temp.isChecked() and not dialog.out_project.isEnabled()  # an unsaved project
    assert "deleted when QGIS exits" in dialog.out_info.text()
    QgsProject.instance().setFileName(str(tmp_path / "analysis.qgz"))
    try:
        dialog.prepare()
        assert dialog.out_project.isChecked() and dialog.out_info.text() == f"Written to {tmp_path / 'sarclear'}"
        dialog.name_edit.setText("my run")
        assert dialog.parameters().out == str(tmp_path / "sarclear" / "my_run.tif")
        # a repeated run gets its own number, group and files
        QgsProject.instance().layerTreeRoot().addGroup("my run")
        params = dialog.parameters()
        assert params.name == "my run (2)" and params.out == str(tmp_path / "sarclear" / "my_run_2.tif")
        # the user's own choice of folder is kept when the dialog is reopened
        dialog.out_temp.click()
        dialog.prepare()
        assert dialog.out_temp.isChecked()
    finally:
        QgsProject.instance().setFileName("")


def test_result_layer_names_are_numbered_when_repeated(sample_project):
    from qgis_plugin.layers import add_result_layers

    for _ in range(2):
        add_result_layers("run", str(CR_CLOUDY_S2), {}, "change", model="demo")
    names = sorted(layer.name() for layer in QgsProject.instance().mapLayers().values()
                   if layer.name().startswith("reconstruction"))
    assert names == ["reconstruction (true colour, demo)", "reconstruction (true colour, demo) (2)"]


def test_of_several_sar_scenes_the_one_nearest_in_date_is_proposed(plugin, sample_project, lite_model_path, tmp_path):
    # the same S1 file under three product names; the S2 (SEN12MS-CR summer 2018) dated 2018-06-15
    for day in ("20180301", "20180613", "20180901"):
        (tmp_path / f"S1B_IW_GRDH_{day}T054321_VV_VH.tif").write_bytes(Path(sample_project["s1"].source()).read_bytes())
    s2 = tmp_path / "S2A_MSIL1C_20180615T103021_cloudy.tif"
    s2.write_bytes(Path(sample_project["cloudy"].source()).read_bytes())
    QgsProject.instance().removeMapLayers([layer.id() for layer in sample_project.values()])
    added = {day: add_raster(tmp_path / f"S1B_IW_GRDH_{day}T054321_VV_VH.tif", f"S1 {day}")
             for day in ("20180301", "20180901", "20180613")}
    add_raster(s2, "S2 2018-06-15")
    from qgis_plugin.layers import acquisition_date

    assert str(acquisition_date(added["20180613"])) == "2018-06-13"
    dialog = plugin.show_dialog()
    dialog.model_widget.setFilePath(str(lite_model_path))
    wait_until(dialog.ready)
    assert dialog.ms_combo.currentLayer().name() == "S2 2018-06-15"
    assert [layer.name() for layer in dialog.sar_layers()] == ["S1 20180613"]  # 2 days apart, not 3 months
    dialog.close()


def test_sar_must_cover_the_ms_layer_not_just_the_view(dialog, sample_project, qgis_iface, tmp_path):
    """A wide view over two scenes 40 km apart: the S1 of the first does not serve the second."""
    width = sample_project["cloudy"].extent().width()
    far = add_raster(_shifted_copy(tmp_path, "far", 40_000 + width), "far S2")
    view = QgsRectangle(sample_project["cloudy"].extent())
    view.combineExtentWith(far.extent())
    qgis_iface.mapCanvas().setExtent(view)
    dialog.ms_combo.setLayer(far)
    dialog.set_sar_layers([sample_project["s1"]])
    status = dialog.band_status.text()
    assert "Sentinel-1: the layer 'S1 VV VH' does not cover the Sentinel-2 layer within the map extent; it lies " \
           "40 km to the west" in status, status
    assert not dialog.run_button.isEnabled()


def test_the_automatic_offset_follows_the_product_baseline_and_can_be_overridden(dialog, tmp_path):
    # a baseline 05.09 product (from 2022 on): its values carry +1000, which the rule removes
    product = tmp_path / "S2B_MSIL1C_20230101T100311_N0509_R122_T33UUP_20230101T120000.tif"
    product.write_bytes(CR_CLOUDY_S2.read_bytes())
    dialog.ms_combo.setLayer(add_raster(product, "L1C baseline 05.09"))
    assert dialog.offset_info.text().startswith("reflectance = (value -1000) / 10000: baseline N0509")
    assert "ms_offset" not in dialog.parameters().extra  # automatic: the library decides the same way
    dialog.offset_combo.setCurrentIndex(dialog.offset_combo.findData("none"))  # the analyst knows better
    assert dialog.offset_info.text().startswith("reflectance = (value +0) / 10000")
    assert dialog.parameters().extra == {"ms_offset": 0.0, **DEFAULT_BUFFERS}


MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


def test_scene_fitting_is_offered_for_a_gap_fill_model_only_and_its_time_joins_the_run(dialog):
    option = dialog.adapt_option
    dialog.area_layer.setChecked(True)
    dialog.model_widget.setFilePath(str(MODELS / "sarclear-lite-demo.safetensors"))
    wait_until(dialog.ready)
    assert dialog.model_config.kind == "unet"
    assert not option.checkbox.isEnabled() and not option.time_spin.isEnabled() and not option.active()
    assert "not a mask-aware gap-fill model (it is a unet model)" in option.checkbox.toolTip()
    assert "adapt" not in dialog.parameters().extra and "fitting" not in dialog.area_info.text()

    dialog.model_widget.setFilePath(str(MODELS / "sarclear-fill.safetensors"))
    wait_until(dialog.ready)
    assert dialog.model_config.kind == "gapfill"
    assert option.checkbox.isEnabled() and option.time_spin.isEnabled()
    assert not option.checkbox.isChecked()  # off unless asked for
    assert "own clear pixels" in option.checkbox.toolTip()
    assert option.time_spin.value() == 180 and option.estimate_label.text() == "adds about 3 min"  # up front
    assert "adapt" not in dialog.parameters().extra and "fitting" not in dialog.area_info.text()

    option.checkbox.setChecked(True)
    assert dialog.area_info.text().endswith("; 1 tile of 256 px; fitting the model to this scene first adds about "
                                            "3 min")
    params = dialog.parameters()
    assert params.extra["adapt"] is True and params.extra["adapt_seconds"] == 180.0
    option.time_spin.setValue(600)
    assert option.estimate_label.text() == "adds about 10 min" and dialog.area_info.text().endswith("10 min")
    option.time_spin.setValue(45)
    assert option.estimate_label.text() == "adds about 45 s" and dialog.area_info.text().endswith("adds about 45 s")
    assert dialog.parameters().extra["adapt_seconds"] == 45.0
    assert (option.time_spin.minimum(), option.time_spin.maximum()) == (10, 3600)

    # back to a model that cannot be fitted: unticked and left out of the run
    dialog.model_widget.setFilePath(str(MODELS / "sarclear-lite-demo.safetensors"))
    wait_until(dialog.ready)
    assert not option.checkbox.isChecked() and not option.checkbox.isEnabled()
    assert "adapt" not in dialog.parameters().extra and "fitting" not in dialog.area_info.text()

    # the default classical fill is a gap-fill model with nothing to learn: refused, naming the one made for it
    dialog.model_widget.setFilePath(str(MODELS / "sarclear-fill-classic.safetensors"))
    wait_until(dialog.ready)
    assert dialog.model_config.kind == "gapfill" and not option.checkbox.isEnabled()
    assert "nothing to learn" in option.checkbox.toolTip() and "sarclear-fill-scene" in option.checkbox.toolTip()
    dialog.model_widget.setFilePath(str(MODELS / "sarclear-fill-scene.safetensors"))
    wait_until(dialog.ready)
    assert option.checkbox.isEnabled()


def test_duration_words():
    from qgis_plugin.adapt_option import duration_words

    assert [duration_words(s) for s in (10, 59.4, 60, 180, 3540, 3600, 5400)] == [
        "10 s", "59 s", "1 min", "3 min", "59 min", "1 h", "1 h 30 min"]


def test_the_mask_and_fill_buffers_default_to_the_library_and_reach_the_run(dialog, sample_project):
    buffers = dialog.buffer_option
    mask_spin, fill_spin = buffers.mask_spin, buffers.fill_spin
    assert (mask_spin.value(), fill_spin.text()) == (MASK_BUFFER_PX, "auto")
    assert (mask_spin.minimum(), mask_spin.maximum(), fill_spin.minimum(), fill_spin.maximum()) == (0, 64, -1, 64)
    assert "10 m" in mask_spin.toolTip() and "10 m" in fill_spin.toolTip()
    assert {k: v for k, v in dialog.parameters().extra.items() if k.endswith("_buffer")} == DEFAULT_BUFFERS
    from sarclear.inference import DecloudOptions  # what the run builds from them (task.run_decloud)

    assert DecloudOptions(**dialog.parameters().extra).fill_buffer_px == 0  # detected: grown 9 px already
    mask_spin.setValue(20)
    fill_spin.setValue(0)
    params = dialog.parameters()
    assert params.cloud_mask == "auto"
    assert params.extra["mask_buffer"] == 20 and params.extra["fill_buffer"] == 0
    options = DecloudOptions(**params.extra)
    assert (options.mask_buffer, options.fill_buffer) == (20, 0)

    # a cloud mask layer is used as it is: the mask buffer greys out and is left out of the run
    dialog.mask_combo.setLayer(sample_project["cloudy"])
    assert not mask_spin.isEnabled() and fill_spin.isEnabled()
    assert "used as it is" in mask_spin.toolTip()
    params = dialog.parameters()
    assert params.cloud_mask == sample_project["cloudy"].source()
    assert "mask_buffer" not in params.extra and params.extra["fill_buffer"] == 0
    fill_spin.setValue(fill_spin.minimum())  # back to "auto": a mask layer gets the library's 9 px
    params = dialog.parameters()
    assert "fill_buffer" not in params.extra and DecloudOptions(cloud_mask=params.cloud_mask).fill_buffer_px == 9
    dialog.mask_combo.setLayer(None)  # automatic detection again
    assert mask_spin.isEnabled() and dialog.parameters().extra["mask_buffer"] == 20


def test_the_product_level_defaults_to_the_product_and_reaches_the_run(dialog, sample_project):
    """Left at "From the product", the run gets no level (the library reads the file names, else
    guesses); L1C or L2A reaches DecloudOptions, with a cloud mask layer too (the default model's
    uncertainty reads the level)."""
    level = dialog.level_option
    assert level.combo.currentIndex() == 0 and "product_level" not in dialog.parameters().extra
    assert "B10" in level.combo.toolTip()
    level.combo.setCurrentIndex(1)
    params = dialog.parameters()
    assert params.extra["product_level"] == "l1c"
    from sarclear.inference import DecloudOptions

    assert DecloudOptions(**params.extra).product_level == "l1c"
    dialog.mask_combo.setLayer(sample_project["cloudy"])
    assert level.combo.isEnabled() and dialog.parameters().extra["product_level"] == "l1c"


def test_the_sun_azimuth_is_left_to_the_product_unless_given_and_only_with_detection(dialog, sample_project):
    """At its lowest value the box reads "From the product" and the run gets no sun (the library
    finds it, sarclear.sun); a value given reaches DecloudOptions (360 is north, 0); a cloud mask
    layer greys it out and leaves it out of the run, as the Processing parameter SUN_AZIMUTH."""
    sun = dialog.sun_option
    assert sun.spin.text() == "From the product" and "sun_azimuth" not in dialog.parameters().extra
    assert "MEAN_SOLAR_AZIMUTH_ANGLE" in sun.spin.toolTip()
    sun.spin.setValue(157.5)
    from sarclear.inference import DecloudOptions

    assert DecloudOptions(**dialog.parameters().extra).sun_azimuth == 157.5
    sun.spin.setValue(360.0)
    assert dialog.parameters().extra["sun_azimuth"] == 0.0
    dialog.mask_combo.setLayer(sample_project["cloudy"])
    assert not sun.spin.isEnabled() and "used as it is" in sun.spin.toolTip()
    assert "sun_azimuth" not in dialog.parameters().extra
    dialog.mask_combo.setLayer(None)
    assert sun.spin.isEnabled() and dialog.parameters().extra["sun_azimuth"] == 0.0


def test_the_default_model_follows_the_sar_layers_until_the_user_chooses_one(plugin, qgis_new_project, qgis_iface):
    """Like the CLI and the Processing algorithm: the SAR-guided fill when the project holds
    SAR layers, the plain fill without; a model the user picks stays."""
    from conftest import BEN_S1, CR_CLOUDY_S1

    cloudy = add_raster(CR_CLOUDY_S2, "cloudy S2")
    for path in sorted(BEN_S1.glob("*_V[VH].tif")):  # SAR elsewhere on Earth: no use for this scene
        add_raster(path, path.stem)
    qgis_iface.mapCanvas().setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    qgis_iface.mapCanvas().setExtent(cloudy.extent())
    dlg = plugin.show_dialog()
    try:
        wait_until(dlg.ready)
        assert Path(dlg.model_widget.filePath()).name == "sarclear-fill-classic.safetensors"
        assert dlg.model_info.text().startswith("fill-classic model") and not dlg.sar_list.isEnabled()
        assert dlg.ms_layer() is cloudy and dlg.run_button.isEnabled()

        s1 = add_raster(CR_CLOUDY_S1, "S1 VV VH")  # SAR arrives: the SAR default loads and takes it
        wait_until(dlg.ready)
        assert Path(dlg.model_widget.filePath()).name == "sarclear-fill-guided.safetensors"
        assert dlg.model_info.text().startswith("fill-guided model") and dlg.sar_list.isEnabled()
        assert dlg.sar_layers() == [s1] and dlg.run_button.isEnabled()
        assert Path(dlg.parameters().model).name == "sarclear-fill-guided.safetensors"

        QgsProject.instance().removeMapLayer(s1.id())  # and goes: back to the fill without SAR
        wait_until(dlg.ready)
        assert Path(dlg.model_widget.filePath()).name == "sarclear-fill-classic.safetensors"

        s1 = add_raster(CR_CLOUDY_S1, "S1 VV VH")
        wait_until(dlg.ready)
        classic = dlg.model_combo.findData(str(MODELS / "sarclear-fill-classic.safetensors"))
        dlg.model_combo.setCurrentIndex(classic)
        dlg.model_combo.activated.emit(classic)  # the user picks the plain fill despite the SAR
        wait_until(dlg.ready)
        QgsProject.instance().removeMapLayer(s1.id())
        add_raster(CR_CLOUDY_S1, "S1 again")
        wait_until(dlg.ready)
        assert Path(dlg.model_widget.filePath()).name == "sarclear-fill-classic.safetensors"
    finally:
        dlg.close()
