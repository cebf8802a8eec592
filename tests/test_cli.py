"""The command line: each command end to end on the real samples, errors as one clear line."""

import json

import numpy as np
import pytest
from conftest import BEN_S1, BEN_S2, CR_CLOUDY_S1, CR_CLOUDY_S2, SSL4EO_CLEAR, SSL4EO_S1
from osgeo import gdal

from sarclear.cli import main


def test_models_lists_presets_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "paper " in out and "170.48M" in out and "lite-ms" in out


def test_clouds_then_decloud_with_reference_writes_maps_metrics_and_figure(tmp_path, lite_model_path, capsys):
    cloudy = tmp_path / "cloudy.tif"
    assert main(["-q", "clouds", "--in", str(SSL4EO_CLEAR), "--out", str(cloudy), "--seed", "3"]) == 0
    assert (tmp_path / "cloudy_opacity.tif").exists()
    ds = gdal.Open(str(cloudy))
    assert ds.RasterCount == 13 and ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    out = tmp_path / "out.tif"
    code = main(["-q", "decloud", "--ms", str(cloudy), "--sar", str(SSL4EO_S1), "--model", str(lite_model_path),
                 "--out", str(out), "--reference", str(SSL4EO_CLEAR), "--figure", str(tmp_path / "fig.png")])
    assert code == 0
    text = capsys.readouterr().out
    assert "RMSE" in text and "out_metrics.json" in text
    metrics = json.loads((tmp_path / "out_metrics.json").read_text())
    assert metrics["kind"] == "error" and 0 < metrics["rmse"] < 1 and len(metrics["rmse_per_band"]) == 10
    for name in ("out_rmse.tif", "out_sam.tif", "fig.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_clouds_shadows_keep_the_diffuse_light_unless_told_grey(tmp_path):
    """clouds --shadow-diffuse: by default shadows keep bluish light (blue darkens far less than
    SWIR); 0 0 gives grey shadows that darken every band by the same factor."""
    stack = tmp_path / "clear.tif"  # the per-band sample as one stack, unchanged: no cloud, haze or shadow
    assert main(["-q", "clouds", "--in", str(SSL4EO_CLEAR), "--out", str(stack), "--coverage", "0", "0",
                 "--haze", "0", "0", "--shadow", "0", "0"]) == 0
    ds = gdal.Open(str(stack))
    clear = ds.ReadAsArray().astype(float)
    names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    ratios = {}
    for kept in ("0.9", "0"):
        out = tmp_path / f"kept{kept}.tif"
        assert main(["-q", "clouds", "--in", str(SSL4EO_CLEAR), "--out", str(out), "--seed", "3", "--coverage",
                     "0.3", "0.3", "--haze", "0", "0", "--shadow", "0.6", "0.6", "--shadow-diffuse", kept, kept]) == 0
        cloudy = gdal.Open(str(out)).ReadAsArray().astype(float)
        opacity = gdal.Open(str(tmp_path / f"kept{kept}_opacity.tif")).ReadAsArray()
        shade = (opacity < 1e-4) & (cloudy[names.index("B12")] < 0.7 * clear[names.index("B12")])
        assert shade.sum() > 100
        ratios[kept] = {b: float(np.median(cloudy[names.index(b)][shade] / clear[names.index(b)][shade]))
                        for b in ("B2", "B8", "B12")}
    assert ratios["0.9"]["B2"] > 0.93 and ratios["0.9"]["B12"] < 0.7
    assert max(ratios["0"].values()) - min(ratios["0"].values()) < 0.02


def test_clouds_haze_power_zero_veils_every_band_alike(tmp_path):
    """clouds --haze-power: the default (1) aerosol haze brightens blue far more than SWIR; 0
    (thin water cloud) veils every band with the same opacity, so SWIR moves towards the cloud
    as far as blue does (relative to the cloud-ground contrast)."""
    shares = {}
    for power in ("1", "0"):
        out = tmp_path / f"p{power}.tif"
        assert main(["-q", "clouds", "--in", str(SSL4EO_CLEAR), "--out", str(out), "--seed", "4", "--coverage",
                     "0", "0", "--haze", "0.4", "0.4", "--shadow", "0", "0", "--haze-power", power]) == 0
        ds = gdal.Open(str(out))
        names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
        shares[power] = np.asarray(ds.ReadAsArray(), float), names
    (aerosol, names), (neutral, _) = shares["1"], shares["0"]
    b2, b12 = names.index("B2"), names.index("B12")
    # the same veil at 490 nm: blue (492 nm) all but identical; SWIR far more veiled when neutral
    assert np.abs(neutral[b2] - aerosol[b2]).max() <= 10  # DN
    assert np.median(neutral[b12] - aerosol[b12]) > 100
    with pytest.raises(SystemExit):
        main(["-q", "clouds", "--in", str(SSL4EO_CLEAR), "--out", str(tmp_path / "x.tif"), "--haze-power", "5"])


def test_evaluate_scores_a_prediction(tmp_path, capsys):
    assert main(["-q", "evaluate", "--prediction", str(SSL4EO_CLEAR), "--reference", str(SSL4EO_CLEAR),
                 "--out-prefix", str(tmp_path / "self")]) == 0
    metrics = json.loads((tmp_path / "self_metrics.json").read_text())
    assert metrics["rmse"] == 0 and metrics["sam_deg"] < 1e-6


def test_bad_input_is_one_line_naming_the_problem(tmp_path, lite_model_path, capsys):
    code = main(["-q", "decloud", "--ms", str(CR_CLOUDY_S1), "--sar", str(CR_CLOUDY_S1), "--model",
                 str(lite_model_path), "--out", str(tmp_path / "o.tif")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sarclear: error:") and "Traceback" not in err
    assert "--ms-bands" in err
    code = main(["-q", "decloud", "--ms", str(CR_CLOUDY_S2), "--sar", str(CR_CLOUDY_S1), "--model",
                 str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "o.tif")])
    assert code == 2 and "no such model file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_command_has_help(capsys):
    for cmd in ("decloud", "clouds", "evaluate", "models"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
    assert "--reference" in capsys.readouterr().out


def test_the_progress_bar_starts_afresh_for_each_stage(capsys):
    """decloud reports cloud mask windows, then tiles: each stage gets its own bar, with its own
    unit and total, not the first stage's bar counting the second's steps."""
    from sarclear.cli_args import _Progress

    bar = _Progress(True, "decloud")
    bar(1, 1, "cloud mask windows")
    first = bar.bar
    bar(4, 9, "tiles")
    assert bar.bar is not first and bar.bar.total == 9 and bar.bar.unit == " tiles" and bar.bar.n == 4
    bar(9, 9, "tiles")
    assert bar.bar.n == 9
    bar.close()
    assert "cloud mask windows" in capsys.readouterr().err


def test_quiet_and_verbose_work_before_or_after_the_command():
    """``sarclear decloud ... -q`` is how many type it; it must not be refused as unknown, and
    leaving it out after the command must not undo it before."""
    from sarclear.cli import _parser

    parser = _parser()
    for argv, quiet, verbose in ((["-q", "models"], True, False), (["models", "-q"], True, False),
                                 (["models"], False, False), (["-v", "models", "--quiet"], True, True)):
        ns = parser.parse_args(argv)
        assert (ns.quiet, ns.verbose) == (quiet, verbose), argv


def test_a_quiet_run_shows_each_warning_once(tmp_path, capsys, caplog):
    """A quiet decloud logs its warnings (a 120-px chip: rules instead of the CNN; no cloud) and
    does not repeat them as notes at the end; without -q the notes gather them after the bars."""
    argv = ["decloud", "--ms", str(BEN_S2), "--sar", str(BEN_S1), "--no-maps"]
    assert main(["-q", *argv, "--out", str(tmp_path / "q.tif")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("nothing to remove" in w for w in warned)
    assert "note: " not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "v.tif")]) == 0
    assert "note: no cloud or shadow detected" in capsys.readouterr().err
