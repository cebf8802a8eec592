"""User errors and bad values end in one clear line before any work, never in a traceback
or a silently wrong output (issue 15, items 8 and 9; docs/RELIABILITY.md lists the cases)."""

import numpy as np
import pytest
import torch
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, read_raster, write_raster
from osgeo import gdal

from sarclear import checkpoint, networks
from sarclear.cli import main
from sarclear.clouds import CloudConfig
from sarclear.errors import GeoreferenceError, InputError, OutputError
from sarclear.inference import DecloudOptions, decloud

DECLOUD = ["decloud", "--ms", str(CR_CLOUDY_S2), "--sar", str(CR_CLOUDY_S1)]


def _argparse_refuses(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err, err


# ---------------------------------------------------------------- 8. no tracebacks


def test_a_truncated_geotiff_is_a_one_line_error_naming_the_file(tmp_path, lite_model_path, capsys):
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(CR_CLOUDY_S2.read_bytes()[:600_000])  # the header and a third of the strips
    out = tmp_path / "o.tif"
    code = main(["decloud", "--ms", str(trunc), "--sar", str(CR_CLOUDY_S1), "--model", str(lite_model_path),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"sarclear: error: {trunc}: cannot be read (truncated or damaged?)"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trunc.tif"]


@pytest.mark.parametrize(("argv", "message"), [
    ([*DECLOUD, "--out", "o.tif", "--overlap", "-10"], "argument --overlap: -10 is too small: it must be 0 or more"),
    ([*DECLOUD, "--out", "o.tif", "--batch-size", "0"], "argument --batch-size: 0 is too small"),
    ([*DECLOUD, "--out", "o.tif", "--ms-scale", "0"], "argument --ms-scale: 0 is too small: it must be more than 0"),
    ([*DECLOUD, "--out", "o.tif", "--ms-scale", "nan"], "argument --ms-scale: 'nan' is not a finite number"),
    ([*DECLOUD, "--out", "o.tif", "--mask-feather", "-2"], "argument --mask-feather: -2 is too small"),
    (["train", "--data", "d.csv", "--batch-size", "0"], "argument --batch-size: 0 is too small"),
    (["train", "--data", "d.csv", "--lr", "nan"], "argument --lr: 'nan' is not a finite number"),
    (["train", "--data", "d.csv", "--epochs", "two"], "argument --epochs: 'two' is not a whole number"),
    (["clouds", "--in", "c.tif", "--out", "o.tif", "--cloud-size", "0"], "argument --cloud-size: 0 is too small"),
    (["clouds", "--in", "c.tif", "--out", "o.tif", "--coverage", "0.2", "1.5"], "1.5 is too large"),
])
def test_bad_values_are_refused_by_the_command_line_before_any_work(capsys, argv, message):
    _argparse_refuses(capsys, argv, message)


@pytest.mark.parametrize(("options", "message"), [
    ({"overlap": -10}, "tile overlap is -10"), ({"batch_size": 0}, "batch size is 0"),
    ({"ms_scale": 0.0}, "optical scale is 0.0"), ({"mask_feather": -1.0}, "mask feather is -1.0"),
    ({"overlap": 300}, r"tile overlap \(300 px\) must be smaller than the model's tiles \(256 px\)"),
])
def test_bad_option_values_are_refused_by_the_library_too(tmp_path, identity_model, options, message):
    with pytest.raises(InputError, match=message):
        decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif", options=DecloudOptions(**options))
    assert list(tmp_path.iterdir()) == []


def test_cloud_settings_out_of_range_are_refused_by_the_library():
    for bad, message in (({"cell_px": 0.0}, "cloud size is 0.0 pixels"),
                         ({"coverage": (0.5, 0.2)}, "coverage range is 0.5..0.2"),
                         ({"shadow": (0.0, 1.5)}, "shadow range")):
        with pytest.raises(InputError, match=message):
            CloudConfig(**bad)


def test_a_figure_or_map_that_cannot_be_written_is_refused_before_the_run(tmp_path, identity_model):
    calls = []
    for figure, message in ((tmp_path / "missing" / "f.png", "output folder .*missing does not exist"),
                            (tmp_path / "f.jpg", r"written as a PNG image, but the name ends in '.jpg'")):
        with pytest.raises(OutputError, match=message):
            decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif", figure=figure,
                    progress=lambda *a: calls.append(a))
    assert calls == [] and list(tmp_path.iterdir()) == []  # no tile was computed, nothing written


def test_a_training_config_file_that_cannot_be_read_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("epochs: [1, 2\n")
    for path, message in ((tmp_path / "none.yaml", "none.yaml: cannot read this training config"),
                          (bad, "c.yaml: not valid YAML")):
        assert main(["train", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


# ---------------------------------------------------------------- 9. bad values, never misused silently


def test_out_with_another_extension_is_refused_not_written_as_a_geotiff(tmp_path, identity_model, capsys):
    for name in ("x.png", "x", "x.jp2"):
        with pytest.raises(OutputError, match=r"written as a GeoTIFF, but the name ends in .*name it \*.tif"):
            decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / name)
    assert main(["clouds", "--in", str(CR_CLOUDY_S2), "--out", str(tmp_path / "c.png")]) == 2
    assert "name it *.tif" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


class _Zeros(torch.nn.Module):
    """Predicts reflectance 0 everywhere: shows exactly which pixels the mask let through."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, cloudy, sar=None):
        return torch.full_like(cloudy, -1.0) + 0 * self.dummy


def test_a_cloud_mask_of_another_size_is_warped_or_refused(tmp_path, caplog):
    src = gdal.Open(str(CR_CLOUDY_S2))
    gt, wkt = src.GetGeoTransform(), src.GetProjection()
    mask = np.zeros((1, 128, 128), np.uint8)
    mask[0, :32] = 1  # cloud on the top quarter
    model = checkpoint.Model(_Zeros(), networks.preset("lite"))
    opts = {"mask_feather": 0.0, "overlap": 0}
    # georeferenced at 20 m: warped onto the 10 m optical grid, cloud on rows 0-63 exactly
    m20 = write_raster(tmp_path / "m20.tif", mask, gt=(gt[0], 2 * gt[1], 0, gt[3], 0, 2 * gt[5]), srs=wkt,
                       dtype=gdal.GDT_Byte)
    out = read_raster(decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, model, tmp_path / "o20.tif", maps=False,
                              options=DecloudOptions(cloud_mask=str(m20), **opts)).output)[0]
    cloudy = src.ReadAsArray()[[1, 2, 3, 4, 5, 6, 7, 8, 11, 12]]
    assert (out[:, :64] == 1).all()  # reconstructed (0 reflectance, written as 1: 0 is nodata)
    assert np.array_equal(out[:, 64:], np.clip(cloudy[:, 64:], 1, None))  # clear pixels kept exactly
    # georeferenced, covering only the top-left quarter: used there, a warning says so
    part = write_raster(tmp_path / "part.tif", mask, gt=gt, srs=wkt, dtype=gdal.GDT_Byte)
    decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, model, tmp_path / "op.tif", maps=False,
            options=DecloudOptions(cloud_mask=str(part), **opts))
    assert "covers 25.0 % of the area; outside it every pixel is treated as cloud" in caplog.text
    # no georeference and another size: cannot be placed, refused
    ms = write_raster(tmp_path / "plain_ms.tif", src.ReadAsArray())
    sar = write_raster(tmp_path / "plain_sar.tif", read_raster(CR_CLOUDY_S1)[0], dtype=gdal.GDT_Float32)
    plain = write_raster(tmp_path / "plain_mask.tif", mask, dtype=gdal.GDT_Byte)
    with pytest.raises(GeoreferenceError, match=r"cloud mask is 128 x 128 px, the optical raster 256 x 256 px"):
        decloud(ms, sar, model, tmp_path / "o_plain.tif", options=DecloudOptions(cloud_mask=str(plain), **opts))
    assert not (tmp_path / "o_plain.tif").exists()
