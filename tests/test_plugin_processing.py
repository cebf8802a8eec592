"""The Processing algorithms through ``processing.run`` (as scripts, the batch interface and
the modeler call them) on the real sample rasters: outputs, progress, cancellation, and the
library's messages as Processing errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import BEN_S1, CR_CLOUDY_S1, CR_CLOUDY_S2, CR_MASK_FILES, SEA
from osgeo import gdal
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
)

pytestmark = pytest.mark.qgis



@pytest.fixture(scope="module")
def sea_clear(tmp_path_factory) -> Path:
    """A 128 x 128 window of the real cloud-free SEN12MS-CR sea sample (13 bands): small
    enough for synthetic clouds to be quick on two CPU cores."""
    out = tmp_path_factory.mktemp("sea") / "sea_clear.tif"
    gdal.Translate(str(out), str(sorted((SEA / "s2_cloudfree").glob("*.tif"))[0]), srcWin=[64, 64, 128, 128])
    return out


def _run(algorithm: str, params: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(algorithm, params, feedback=feedback or QgsProcessingFeedback())


def _array(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


class Recorder(QgsProcessingFeedback):
    """Feedback that remembers the progress it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []
        self.progressChanged.connect(self.values.append)


def test_algorithms_have_help_groups_and_typed_parameters(provider):
    by_id = {a.id(): a for a in provider.algorithms()}
    assert set(by_id) == {"sarclear:removeclouds", "sarclear:errormaps", "sarclear:syntheticclouds"}
    for alg in by_id.values():
        assert alg.shortHelpString() and alg.group() and alg.displayName() and alg.helpUrl()
        assert not alg.icon().isNull()
    types = {p.name(): p.type() for p in by_id["sarclear:removeclouds"].parameterDefinitions()}
    assert types["INPUT"] == "raster" and types["SAR"] == "multilayer" and types["MODEL"] == "file"
    assert types["EXTENT"] == "extent" and types["DEVICE"] == "enum" and types["OUTPUT"] == "rasterDestination"
    assert {o.name() for o in by_id["sarclear:removeclouds"].outputDefinitions()} >= {
        "OUTPUT", "RMSE_MAP", "SAM_MAP", "METRICS", "RMSE", "SAM_DEG", "PSNR", "SSIM", "MAE"}


def test_remove_clouds_on_an_extent(provider, lite_model_path, tmp_path):
    ds = gdal.Open(str(CR_CLOUDY_S2))
    x0, px, _, y1, _, py = ds.GetGeoTransform()
    # 60.5 x 40.2 pixels from mid-pixel (col 20.5, row 30.3) -> 61 x 41 whole pixels after snapping
    xmin, xmax = x0 + 20.5 * px, x0 + 81.0 * px
    ymax, ymin = y1 + 30.3 * py, y1 + 70.5 * py
    out = tmp_path / "declouded.tif"
    progress = Recorder()
    result = _run("sarclear:removeclouds", {
        "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "MODEL": str(lite_model_path),
        "EXTENT": f"{xmin},{xmax},{ymin},{ymax} [EPSG:32631]", "DEVICE": 1, "OUTPUT": str(out)}, progress)
    assert result["OUTPUT"] == str(out)
    res = gdal.Open(str(out))
    assert (res.RasterXSize, res.RasterYSize, res.RasterCount) == (61, 41, 10)
    gt = res.GetGeoTransform()
    assert gt[0] == pytest.approx(x0 + 20 * px) and gt[3] == pytest.approx(y1 + 30 * py)
    assert res.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert Path(result["RMSE_MAP"]).name == "declouded_change_rmse.tif"
    assert Path(result["SAM_MAP"]).name == "declouded_change_sam.tif"
    assert gdal.Open(result["SAM_MAP"]).RasterXSize == 61
    metrics = json.loads(Path(result["METRICS"]).read_text())
    assert metrics["kind"] == "change" and result["RMSE"] == pytest.approx(metrics["rmse"]) and result["RMSE"] > 0
    assert progress.values and max(progress.values) == pytest.approx(100.0)


def test_remove_clouds_from_the_toolbox_loads_and_styles_the_three_layers(provider, lite_model_path, tmp_path,
                                                                          qgis_new_project):
    import processing
    from qgis.core import QgsProject

    processing.runAndLoadResults("sarclear:removeclouds", {
        "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "MODEL": str(lite_model_path), "DEVICE": 1,
        "OUTPUT": str(tmp_path / "toolbox.tif")}, feedback=QgsProcessingFeedback())
    loaded = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    output = "reconstruction (true colour, lite)"  # named for its model, as the dialog's runs
    probability = "cloud probability (detector, 0-1)"  # the CNN detector's, where it ran (2.56 km)
    assert set(loaded) == {output, "RMSE change, input vs output (reflectance)",
                           "SAM change, input vs output (degrees)", "cloud mask (detected)",
                           *([probability] if len(CR_MASK_FILES) > 1 else [])}
    assert loaded["cloud mask (detected)"].renderer().type() == "paletted"
    if probability in loaded:
        assert loaded[probability].renderer().type() == "singlebandpseudocolor"
    assert loaded[output].renderer().type() == "multibandcolor"
    assert loaded[output].renderer().redBand() == 3  # B4 of the paper10 output
    sam = loaded["SAM change, input vs output (degrees)"].renderer()
    assert sam.type() == "singlebandpseudocolor"
    assert sam.shader().rasterShaderFunction().legendSettings().suffix() == "°"
    QgsProject.instance().removeAllMapLayers()


def test_remove_clouds_reports_the_library_message(provider, lite_model_path, tmp_path):
    params = {"INPUT": str(CR_CLOUDY_S2), "MODEL": str(lite_model_path), "DEVICE": 1,
              "OUTPUT": str(tmp_path / "x.tif")}
    with pytest.raises(QgsProcessingException, match="does not overlap the optical area"):
        _run("sarclear:removeclouds", {**params, "SAR": [str(p) for p in sorted(BEN_S1.glob("*_V?.tif"))]})
    with pytest.raises(QgsProcessingException, match="the model lite fuses SAR and needs VV, VH"):
        _run("sarclear:removeclouds", params)  # checked before the run (test_plugin_messages)
    with pytest.raises(QgsProcessingException, match=r"model needs bands B2.*are missing \(found: B2, B3, B4, X\)"):
        _run("sarclear:removeclouds", {**params, "SAR": [str(CR_CLOUDY_S1)], "MS_BANDS": "B2,B3,B4" + ",X" * 10})
    assert list(tmp_path.iterdir()) == []


def test_remove_clouds_cancelled_by_the_feedback_writes_nothing(provider, lite_model_path, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda _value: feedback.cancel())  # cancel at the first report
    with pytest.raises(QgsProcessingException, match="cancelled; nothing was written"):
        _run("sarclear:removeclouds", {
            "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "MODEL": str(lite_model_path), "DEVICE": 1,
            "OUTPUT": str(tmp_path / "cancelled.tif")}, feedback)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_clouds_then_error_maps(provider, sea_clear, tmp_path):
    cloudy, opacity = tmp_path / "cloudy.tif", tmp_path / "opacity.tif"
    progress = Recorder()
    made = _run("sarclear:syntheticclouds", {"INPUT": str(sea_clear), "COVERAGE": "0.4,0.6", "SEED": 3,
                                             "OUTPUT": str(cloudy), "OPACITY": str(opacity)}, progress)
    clear, dirty = _array(sea_clear), _array(cloudy)
    assert dirty.shape == clear.shape and dirty.dtype == clear.dtype  # 13 bands, the input's type
    assert gdal.Open(str(cloudy)).GetGeoTransform() == gdal.Open(str(sea_clear)).GetGeoTransform()
    assert dirty.mean() > clear.mean()  # clouds over a dark sea brighten it
    alpha = _array(opacity)
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert made["MEAN_OPACITY"] == pytest.approx(alpha.mean(), rel=1e-3)
    assert 0 < made["THICK_CLOUD_FRACTION"] < 1 and max(progress.values) == pytest.approx(100.0)

    scores = _run("sarclear:errormaps", {"PREDICTION": str(cloudy), "REFERENCE": str(sea_clear), "BANDS": "B2,B3,B4,B8",
                                         "RMSE_MAP": str(tmp_path / "rmse.tif"), "SAM_MAP": str(tmp_path / "sam.tif"),
                                         "METRICS": str(tmp_path / "metrics.json")})
    rmse = _array(tmp_path / "rmse.tif")
    assert rmse.shape == clear.shape[1:] and scores["RMSE"] > 0.01
    assert json.loads((tmp_path / "metrics.json").read_text())["bands"] == ["B2", "B3", "B4", "B8"]
    # every named band by default; an image against itself has no error
    same = _run("sarclear:errormaps", {"PREDICTION": str(sea_clear), "REFERENCE": str(sea_clear),
                                       "RMSE_MAP": str(tmp_path / "r0.tif"), "SAM_MAP": str(tmp_path / "s0.tif")})
    assert same["RMSE"] == 0 and same["SAM_DEG"] == pytest.approx(0, abs=1e-6)
    assert np.nanmax(_array(tmp_path / "r0.tif")) == 0


def test_algorithms_chain_in_a_graphical_model(provider, sea_clear, tmp_path):
    """The modeler's object: clear image -> synthetic clouds -> error maps against it."""
    model = QgsProcessingModelAlgorithm("cloud test", "sarclear")
    model.addModelParameter(QgsProcessingParameterRasterLayer("clear", "Clear image"),
                            QgsProcessingModelParameter("clear"))
    clouds = QgsProcessingModelChildAlgorithm("sarclear:syntheticclouds")
    clouds.setChildId("clouds")
    clouds.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("clear")])
    for name, value in (("SEED", 1), ("CELL_PX", 50.0)):
        clouds.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    model.addChildAlgorithm(clouds)
    scores = QgsProcessingModelChildAlgorithm("sarclear:errormaps")
    scores.setChildId("scores")
    from_clouds = QgsProcessingModelChildParameterSource.fromChildOutput("clouds", "OUTPUT")
    scores.addParameterSources("PREDICTION", [from_clouds])
    scores.addParameterSources("REFERENCE", [QgsProcessingModelChildParameterSource.fromModelParameter("clear")])
    for name in ("RMSE_MAP", "SAM_MAP"):
        output = QgsProcessingModelOutput(name)
        output.setChildOutputName(name)
        output.setChildId("scores")
        scores.setModelOutputs({**scores.modelOutputs(), name: output})
    model.addChildAlgorithm(scores)
    assert model.validate()[0], model.validate()[1]
    import processing

    result = processing.run(model, {"clear": str(sea_clear), "scores:RMSE_MAP": str(tmp_path / "rmse.tif"),
                                    "scores:SAM_MAP": str(tmp_path / "sam.tif")},
                            context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert Path(result["scores:RMSE_MAP"]).is_file() and np.nanmean(_array(tmp_path / "rmse.tif")) > 0


@pytest.mark.parametrize("empty", [None, "None,None", ""], ids=["absent", "toolbox-empty", "blank"])
def test_synthetic_clouds_with_the_default_empty_ranges(provider, sea_clear, tmp_path, empty):
    cloudy = tmp_path / "cloudy.tif"
    params = {"INPUT": str(sea_clear), "SEED": 1, "OUTPUT": str(cloudy)}
    if empty is not None:
        params.update({"COVERAGE": empty, "HAZE": empty, "SHADOW": empty, "SHADOW_DIFFUSE": empty})
    made = _run("sarclear:syntheticclouds", params)
    dirty = _array(cloudy).astype(float)
    assert np.isfinite(made["MEAN_OPACITY"]) and 0 < made["MEAN_OPACITY"] < 1
    assert 0.0 <= made["THICK_CLOUD_FRACTION"] <= 0.8 + 0.1  # the library's default coverage range: 0.05..0.8
    assert np.isfinite(dirty).all() and dirty.mean() > _array(sea_clear).mean()


def test_synthetic_clouds_refuses_a_range_outside_0_1(provider, sea_clear, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"Haze opacity range 0.2 to 1.5: give 0 <= minimum"):
        _run("sarclear:syntheticclouds", {"INPUT": str(sea_clear), "HAZE": "0.2,1.5",
                                          "OUTPUT": str(tmp_path / "c.tif")})


MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


class StageRecorder(Recorder):
    """Feedback that also remembers the stage texts and warnings (the run's notes)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.warnings: list[str] = []

    def setProgressText(self, text: str) -> None:
        self.texts.append(text)
        super().setProgressText(text)

    def pushWarning(self, text: str) -> None:
        self.warnings.append(text)
        super().pushWarning(text)


def test_remove_clouds_fits_a_gap_fill_model_to_the_scene_first(provider, tmp_path):
    by_name = {p.name(): p for p in provider.algorithm("removeclouds").parameterDefinitions()}
    assert by_name["ADAPT"].type() == "boolean" and by_name["ADAPT"].defaultValue() is False
    assert by_name["ADAPT_TIME"].type() == "number" and by_name["ADAPT_TIME"].defaultValue() == 180.0
    assert "Fit the model to this scene first" in provider.algorithm("removeclouds").shortHelpString()
    out = tmp_path / "fitted.tif"
    feedback = StageRecorder()
    result = _run("sarclear:removeclouds", {
        "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "MODEL": str(MODELS / "sarclear-fill.safetensors"),
        "DEVICE": 1, "ADAPT": True, "ADAPT_TIME": 3, "OUTPUT": str(out)}, feedback)
    ds = gdal.Open(result["OUTPUT"])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (256, 256, 10)
    options = json.loads(Path(result["METRICS"]).read_text())["provenance"]["options"]
    assert options["adapt"] is True and options["adapt_seconds"] == 3.0  # reached DecloudOptions
    (fitted,) = [w for w in feedback.warnings if w.startswith("model fitted to this scene for 3 s on ")]
    assert int(fitted.split(" on ")[1].split()[0]) > 0  # clear pixels it learned from
    assert "fitting the model to the scene: 0 of 3 s" in feedback.texts
    # one bar over the stages: cloud mask to 10 %, fitting to 50 %, the tile to 90 %, then done
    assert feedback.values == sorted(feedback.values) and feedback.values[-1] == 100.0
    assert any(10.0 < v <= 50.0 for v in feedback.values) and 90.0 in feedback.values


def test_remove_clouds_refuses_to_fit_a_model_that_is_not_gap_fill(provider, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"not a mask-aware gap-fill model \(it is a unet model\)"):
        _run("sarclear:removeclouds", {
            "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)],
            "MODEL": str(MODELS / "sarclear-lite-demo.safetensors"), "DEVICE": 1, "ADAPT": True,
            "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match=r"nothing to learn.*sarclear-fill-scene"):
        _run("sarclear:removeclouds", {  # the default: a fixed classical fill
            "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "DEVICE": 1, "ADAPT": True,
            "OUTPUT": str(tmp_path / "x.tif")})
    assert list(tmp_path.iterdir()) == []


def test_remove_clouds_grows_the_detected_mask_by_the_mask_buffer(provider, tmp_path):
    """The advanced MASK_BUFFER and FILL_BUFFER reach DecloudOptions; the detected mask
    written beside the output grows with MASK_BUFFER."""
    by_name = {p.name(): p for p in provider.algorithm("removeclouds").parameterDefinitions()}
    assert by_name["MASK_BUFFER"].defaultValue() == 9 and by_name["FILL_BUFFER"].defaultValue() is None
    hidden = {}
    for px in (0, 9):
        out = tmp_path / f"buffer{px}.tif"
        result = _run("sarclear:removeclouds", {
            "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "DEVICE": 1, "MASK_BUFFER": px,
            "FILL_BUFFER": 3, "OUTPUT": str(out)})
        options = json.loads(Path(result["METRICS"]).read_text())["provenance"]["options"]
        assert options["mask_buffer"] == px and options["fill_buffer"] == 3
        hidden[px] = np.isin(_array(tmp_path / f"buffer{px}_mask.tif"), (1, 2)).sum()
    assert 0 < hidden[0] < hidden[9]


def test_remove_clouds_passes_the_chosen_product_level_to_the_detector(provider, tmp_path):
    """PRODUCT_LEVEL defaults to the product (this 13-band L1C file: L1C); choosing L2A reaches
    DecloudOptions and the detector, whose mask file records the level it used."""
    levels = {}
    for choice in (0, 2):
        out = tmp_path / f"level{choice}.tif"
        result = _run("sarclear:removeclouds", {
            "INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "DEVICE": 1, "PRODUCT_LEVEL": choice,
            "OUTPUT": str(out)})
        options = json.loads(Path(result["METRICS"]).read_text())["provenance"]["options"]
        levels[choice] = (options.get("product_level"),
                          gdal.Open(str(tmp_path / f"level{choice}_mask.tif")).GetMetadataItem("PRODUCT_LEVEL"))
    assert levels == {0: (None, "L1C"), 2: ("l2a", "L2A")}


def test_remove_clouds_passes_the_sun_azimuth_to_the_detector(provider, tmp_path):
    """SUN_AZIMUTH, left empty, leaves the sun to the product (this SEN12MS-CR patch names no
    sensing time: unknown, no sun check); given, it reaches DecloudOptions and the mask records
    it in the grid's frame (UTM: within a few degrees of true north)."""
    suns = {}
    for given in (None, 120.0):
        out = tmp_path / f"sun{given}.tif"
        params = {"INPUT": str(CR_CLOUDY_S2), "SAR": [str(CR_CLOUDY_S1)], "DEVICE": 1, "OUTPUT": str(out)}
        if given is not None:
            params["SUN_AZIMUTH"] = given
        result = _run("sarclear:removeclouds", params)
        options = json.loads(Path(result["METRICS"]).read_text())["provenance"]["options"]
        suns[given] = (options.get("sun_azimuth"),
                       gdal.Open(str(tmp_path / f"sun{given}_mask.tif")).GetMetadataItem("SUN_AZIMUTH_GRID"))
    assert suns[None] == (None, None)
    assert suns[120.0][0] == 120.0 and abs(float(suns[120.0][1]) - 120.0) < 3.0


def test_synthetic_clouds_shadows_keep_the_light_given(provider, sea_clear, tmp_path):
    """SHADOW_DIFFUSE reaches the clouds: grey shadows (0) and shadows that keep most of the blue
    light (0.9) differ only where shadow falls, and there blue is brighter with the light kept."""
    out = {}
    for kept in ("0,0", "0.9,0.9"):
        path = tmp_path / f"kept{kept[0]}{kept[-1]}.tif"
        _run("sarclear:syntheticclouds", {"INPUT": str(sea_clear), "SEED": 2, "COVERAGE": "0.3,0.3", "HAZE": "0,0",
                                          "SHADOW": "0.6,0.6", "SHADOW_DIFFUSE": kept, "OUTPUT": str(path)})
        out[kept] = _array(path).astype(float)
    grey, blue_kept = out["0,0"], out["0.9,0.9"]
    differs = (grey != blue_kept).any(axis=0)
    assert differs.any() and (blue_kept[1][differs] >= grey[1][differs]).all()  # band 2: B2 (blue)
    assert (blue_kept[1][differs] > grey[1][differs]).mean() > 0.9


def test_synthetic_clouds_haze_power_reaches_the_clouds(provider, sea_clear, tmp_path):
    """HAZE_POWER reaches the clouds: a neutral veil (0) hides the longest band far more than the
    default aerosol haze (1), and blue (band 2) about as much."""
    out = {}
    for power in (1.0, 0.0):
        path = tmp_path / f"power{power:g}.tif"
        _run("sarclear:syntheticclouds", {"INPUT": str(sea_clear), "SEED": 2, "COVERAGE": "0,0", "HAZE": "0.4,0.4",
                                          "SHADOW": "0,0", "HAZE_POWER": power, "OUTPUT": str(path)})
        out[power] = _array(path).astype(float)
    aerosol, neutral = out[1.0], out[0.0]
    assert np.abs(neutral[1] - aerosol[1]).max() <= 10
    assert np.median(neutral[-1] - aerosol[-1]) > 100
