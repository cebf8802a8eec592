"""The library's typed errors in the plugin's words: the widget (dialog) or parameter
(Processing) that fixes each, never a command-line flag; Processing requires SAR unless the
model is MS-only."""

from __future__ import annotations

import re

import pytest
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from qgis_plugin.messages import DIALOG, PROCESSING, describe

pytestmark = pytest.mark.qgis


def _raises(fn, *args, **kwargs):
    from sarclear.errors import SarclearError

    with pytest.raises(SarclearError) as info:
        fn(*args, **kwargs)
    return info.value


def _library_errors(tmp_path, monkeypatch) -> dict:
    """Real errors from the library, each with the widget that fixes it."""
    from sarclear.io import check_output_path, identify_bands
    from sarclear.resources import default_model

    four = tmp_path / "four.tif"
    gdal.Translate(str(four), str(CR_CLOUDY_S2), bandList=[2, 3, 4, 8])
    exists = tmp_path / "exists.tif"
    exists.write_bytes(b"x")
    monkeypatch.setenv("SARCLEAR_RESOURCES", str(tmp_path / "none"))
    return {
        "ms_bands": _raises(identify_bands, [str(four)], ("B2", "B3", "B4", "B5"), sensor="optical"),
        "sar_channels": _raises(identify_bands, [str(CR_CLOUDY_S2)], ("VV", "VH"), sensor="sar"),
        "model": _raises(default_model),
        "overwrite": _raises(check_output_path, exists, False),
    }


@pytest.mark.parametrize("where, names", [("dialog", DIALOG), ("processing", PROCESSING)])
def test_library_errors_name_the_widget_that_fixes_them_never_a_flag(tmp_path, monkeypatch, where, names):
    for key, exc in _library_errors(tmp_path, monkeypatch).items():
        text = describe(exc, where)
        assert text.startswith(str(exc).rstrip().rstrip(".")), text  # the library's words first
        assert text.endswith(f"Change: {names[key]}."), (key, text)
        assert not re.search(r"(^|\s)--[a-z]", text), text  # no command-line flag


def test_a_reference_error_names_the_reference_not_the_band_names(tmp_path):
    from sarclear.errors import BandMismatchError

    exc = BandMismatchError("no B5 in the reference", input="reference", option="ms_bands")
    assert describe(exc) == "no B5 in the reference. Change: Reference (optional)."


@pytest.fixture(scope="module")
def ms_only_model(tmp_path_factory):
    from sarclear import checkpoint, networks

    cfg = networks.preset("lite-ms")
    return checkpoint.save_model(tmp_path_factory.mktemp("ms") / "ms-only.safetensors", networks.build(cfg)[0], cfg)


def test_processing_requires_sar_unless_the_model_is_ms_only(provider, lite_model_path, ms_only_model, tmp_path):
    import processing

    algorithm = QgsApplication.processingRegistry().algorithmById("sarclear:removeclouds")
    context = QgsProcessingContext()
    params = {"INPUT": str(CR_CLOUDY_S2), "MODEL": str(lite_model_path), "OUTPUT": str(tmp_path / "out.tif")}
    ok, message = algorithm.checkParameterValues(params, context)
    assert not ok
    assert message == ("Sentinel-1 SAR layer(s): the model lite fuses SAR and needs VV, VH; add the SAR layer(s), "
                       "or choose an MS-only model under Model file")
    with pytest.raises(QgsProcessingException, match="the model lite fuses SAR and needs VV, VH"):
        processing.run("sarclear:removeclouds", params, feedback=QgsProcessingFeedback())
    assert not (tmp_path / "out.tif").exists()
    assert algorithm.checkParameterValues({**params, "SAR": [str(CR_CLOUDY_S1)]}, context)[0]
    # the default (empty) model is the classical fill, which reads no SAR
    assert algorithm.checkParameterValues({**params, "MODEL": ""}, context) == (True, "")
    # the MS-only twin needs none: it runs without SAR
    ms_only = {**params, "MODEL": str(ms_only_model)}
    assert algorithm.checkParameterValues(ms_only, context) == (True, "")
    result = processing.run("sarclear:removeclouds", {**ms_only, "EXTENT": None}, feedback=QgsProcessingFeedback())
    assert gdal.Open(result["OUTPUT"]).RasterCount == 10
