"""Outputs never destroy inputs, a run's outputs appear all together or not at all, and an
empty or degenerate result is never reported as a success (issue 15, items 1, 6, 7;
docs/RELIABILITY.md lists the cases)."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, CR_MASK_FILES, ROOT, read_raster, write_raster
from osgeo import gdal

from sarclear import atomic
from sarclear.cli import main
from sarclear.errors import InputError, OutputError
from sarclear.evaluation import evaluate
from sarclear.inference import DecloudOptions, decloud
from sarclear.outputs import GEOTIFF, OutputSet


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cli_in_process(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- 1. an output is never an input


@pytest.mark.parametrize("victim", ["ms", "sar", "model", "side_map", "hard_link", "symlink", "figure"])
def test_decloud_refuses_an_output_that_is_an_input_even_with_overwrite(tmp_path, lite_model_path, capsys, victim):
    ms, sar = tmp_path / "x.tif", tmp_path / "s1.tif"
    model = tmp_path / "m.safetensors"
    shutil.copy(CR_CLOUDY_S2, ms)
    shutil.copy(CR_CLOUDY_S1, sar)
    shutil.copy(lite_model_path, model)
    out, extra = tmp_path / "new.tif", []
    if victim == "ms":
        out = ms
    elif victim == "sar":
        out = sar
    elif victim == "model":
        out = model
    elif victim == "side_map":  # <out>_change_rmse.tif is where decloud puts its change map
        ms = tmp_path / "y_change_rmse.tif"
        shutil.move(tmp_path / "x.tif", ms)
        out = tmp_path / "y.tif"
    elif victim == "hard_link":  # another name, the same file
        out = tmp_path / "link.tif"
        os.link(ms, out)
    elif victim == "symlink":
        out = tmp_path / "sym.tif"
        out.symlink_to(ms)
    elif victim == "figure":
        extra = ["--figure", sar]
    before = {p: _sha(p) for p in (ms, sar, model)}
    code, err = _cli_in_process(capsys, "decloud", "--ms", ms, "--sar", sar, "--model", model, "--out", out,
                                "--overwrite", *extra)
    assert code == 2 and "is also an input" in err and "--overwrite" not in err, err
    assert {p: _sha(p) for p in before} == before
    code, err = _cli_in_process(capsys, "decloud", "--ms", ms, "--sar", sar, "--model", model, "--out", out, *extra)
    assert code == 2 and "is also an input" in err and "--overwrite" not in err, err  # no bad advice either
    assert {p: _sha(p) for p in before} == before


def test_an_input_inside_an_input_folder_or_behind_a_vrt_is_protected(tmp_path, identity_model):
    folder = tmp_path / "scene"
    folder.mkdir()
    ms = folder / "s2.tif"
    shutil.copy(CR_CLOUDY_S2, ms)
    vrt = tmp_path / "s2.vrt"
    gdal.BuildVRT(str(vrt), [str(ms)])
    digest = _sha(ms)
    for given in (folder, vrt):
        with pytest.raises(OutputError, match="is also an input"):
            decloud(given, CR_CLOUDY_S1, identity_model, ms, options=DecloudOptions(overwrite=True))
    assert _sha(ms) == digest


def test_clouds_and_evaluate_refuse_outputs_that_are_inputs(tmp_path, capsys):
    clear = tmp_path / "clear.tif"
    shutil.copy(CR_CLOUDY_S2, clear)
    digest = _sha(clear)
    for extra in (["--out", clear], ["--out", tmp_path / "c.tif", "--opacity", clear]):
        code, err = _cli_in_process(capsys, "clouds", "--in", clear, *extra, "--overwrite")
        assert code == 2 and "is also an input" in err and "--overwrite" not in err, err
    pred = tmp_path / "p_rmse.tif"  # --out-prefix p writes p_rmse.tif
    shutil.copy(CR_CLOUDY_S2, pred)
    for extra in (["--out-prefix", tmp_path / "p"], ["--out-prefix", tmp_path / "q", "--figure", clear]):
        code, err = _cli_in_process(capsys, "evaluate", "--prediction", pred, "--reference", clear, *extra,
                                    "--overwrite")
        assert code == 2 and "is also an input" in err, err
    assert _sha(clear) == digest and _sha(pred) == _sha(CR_CLOUDY_S2)


def test_two_outputs_of_one_run_may_not_share_a_name(tmp_path, capsys):
    code, err = _cli_in_process(capsys, "clouds", "--in", CR_CLOUDY_S2, "--out", tmp_path / "c.tif",
                                "--opacity", tmp_path / "c.tif")
    assert code == 2 and "named for two outputs" in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 6. empty and degenerate results


def test_all_nodata_all_nan_optical_and_all_nan_sar_are_errors_and_write_nothing(tmp_path, identity_model):
    cloudy = read_raster(CR_CLOUDY_S2)[0]
    zeros = write_raster(tmp_path / "zeros.tif", np.zeros_like(cloudy), like=CR_CLOUDY_S2, nodata=0)
    nan_ms = write_raster(tmp_path / "nan_ms.tif", np.full(cloudy.shape, np.nan, np.float32), like=CR_CLOUDY_S2,
                          dtype=gdal.GDT_Float32)
    s1 = read_raster(CR_CLOUDY_S1)[0]
    nan_sar = write_raster(tmp_path / "nan_sar.tif", np.full(s1.shape, np.nan, np.float32), like=CR_CLOUDY_S1,
                           dtype=gdal.GDT_Float32)
    cases = [(zeros, CR_CLOUDY_S1, "optical raster"), (nan_ms, CR_CLOUDY_S1, "optical raster"),
             (CR_CLOUDY_S2, nan_sar, "SAR raster")]
    for ms, sar, empty in cases:
        out = tmp_path / "out" / "o.tif"
        out.parent.mkdir(exist_ok=True)
        with pytest.raises(InputError, match=f"nothing to reconstruct.*{empty}.*only nodata or NaN"):
            decloud(ms, sar, identity_model, out)
        assert list(out.parent.iterdir()) == []


def test_a_mostly_empty_result_is_kept_with_a_warning(tmp_path, identity_model, caplog):
    s1 = read_raster(CR_CLOUDY_S1)[0]
    s1[:, 2:, :] = np.nan  # SAR on 2 of 256 rows: 0.8 % of the pixels
    sar = write_raster(tmp_path / "sar.tif", s1, like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32)
    res = decloud(CR_CLOUDY_S2, sar, identity_model, tmp_path / "o.tif", maps=False)
    assert res.output.exists() and "only 512 of 65536 pixels (0.78 %) could be reconstructed" in caplog.text


def test_a_reference_covering_few_pixels_warns_and_the_metrics_are_strict_json(tmp_path, identity_model, caplog):
    ref = read_raster(CR_CLOUDY_S2)[0]
    ref[:, 7:, :] = 0
    ref[:, :, 7:] = 0  # 49 of 65,536 pixels, as in the issue
    ref_path = write_raster(tmp_path / "ref.tif", ref, like=CR_CLOUDY_S2, nodata=0)
    res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif", reference=ref_path)
    assert "cover only 49 of the prediction's 65536 valid pixels" in caplog.text
    text = res.metrics_path.read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the metrics JSON"))
    assert metrics["pixels"] == 49 and metrics["prediction_pixels"] == metrics["area_pixels"] == 65536
    assert metrics["rmse"] == 0 and metrics["psnr"] is None  # identical pixels: PSNR is infinite -> null
    empty = write_raster(tmp_path / "empty_ref.tif", np.zeros_like(ref), like=CR_CLOUDY_S2, nodata=0)
    with pytest.raises(InputError, match="nothing to score"):
        evaluate(res.output, empty, ("B2", "B3"), metrics_path=tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------- 7. outputs as one set


def test_a_failure_while_the_maps_are_written_keeps_no_output(tmp_path, identity_model, monkeypatch):
    from sarclear import evaluation

    def broken_sam(x, y):
        raise OutputError("writing the SAM map: No space left on device")

    monkeypatch.setattr(evaluation, "sam_map", broken_sam)
    with pytest.raises(OutputError, match="No space left on device; none of this run's outputs were kept"):
        decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif")  # a plain re-run is not blocked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "o_change_metrics.json", "o_change_rmse.tif",
                                                          "o_change_sam.tif", *CR_MASK_FILES]
    assert res.output == tmp_path / "o.tif"


def test_the_set_is_committed_together_or_rolled_back(tmp_path):
    outputs = OutputSet(overwrite=False)
    a, b = outputs.add(tmp_path / "a.tif", formats=GEOTIFF), outputs.add(tmp_path / "b.tif", formats=GEOTIFF)
    a.write_text("a")
    b.write_text("b")
    (tmp_path / "b.tif").write_text("written meanwhile by another run")
    with pytest.raises(OutputError, match=r"appeared while this run was writing.*none of this run's outputs"):
        outputs.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tif"]  # a.tif rolled back, the other run's kept
    assert (tmp_path / "b.tif").read_text() == "written meanwhile by another run"
    with pytest.raises(OutputError, match=r"ends in '.png'; name it \*.tif"):
        OutputSet().add(tmp_path / "x.png", formats=GEOTIFF)


def test_stale_staging_files_of_a_dead_run_are_removed_by_the_next_run(tmp_path, caplog):
    dead = 2**22 + 12345  # above pid_max's default: no such process
    names = [f".o.tif.sarclear-{dead}-ab12.part", f"..o.tif.sarclear-{dead}-ab12.part.sarclear-{dead}-cd34.part",
             f".o_change_rmse.tif.sarclear-{dead}-ef56.part", f".other.tif.sarclear-{dead}-0a0a.part"]
    for n in names:
        (tmp_path / n).write_text("left by a SIGKILL")
    assert atomic.final_name(names[1]) == "o.tif"
    outputs = OutputSet()
    for name in ("o.tif", "o_change_rmse.tif"):
        outputs.add(tmp_path / name)
    with outputs:
        for name in ("o.tif", "o_change_rmse.tif"):
            outputs.staged(tmp_path / name).write_text(name)
    for name in ("o.tif", "o_change_rmse.tif"):
        (tmp_path / name).unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [names[3]]  # another target's file is not touched
    assert "removed" in caplog.text and f"1 temporary file(s) of interrupted sarclear runs on other outputs " \
        f"({names[3]})" in caplog.text  # but named


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "sarclear", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_signal_while_the_maps_are_written_leaves_no_output(tmp_path, lite_model_path, sig):
    cloudy, s1 = read_raster(CR_CLOUDY_S2)[0], read_raster(CR_CLOUDY_S1)[0]
    ms = write_raster(tmp_path / "ms.tif", np.tile(cloudy, (1, 8, 2)), like=CR_CLOUDY_S2)
    sar = write_raster(tmp_path / "sar.tif", np.tile(s1, (1, 8, 2)), like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32)
    out = tmp_path / "run" / "o.tif"
    out.parent.mkdir()
    proc = _cli("decloud", "--ms", ms, "--sar", sar, "--model", lite_model_path, "--out", out)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.parent.glob("*o_change_rmse.tif.sarclear-*")):
        time.sleep(0.01)  # the reconstruction is staged; the maps are being written
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    left = sorted(p.name for p in out.parent.iterdir())
    assert not [n for n in left if not n.startswith(".")], (left, proc.returncode, err[-600:])  # no visible output
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "no partial output was left" in err and left == []
    else:
        assert left  # hidden staging files of the killed run
    rerun = _cli("-q", "decloud", "--ms", ms, "--sar", sar, "--model", lite_model_path, "--out", out)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.tif", "o_change_metrics.json", "o_change_rmse.tif",
                                                            "o_change_sam.tif", *CR_MASK_FILES]


def test_clouds_on_an_all_nodata_raster_is_an_error_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    empty = write_raster(tmp_path / "in" / "empty.tif", np.zeros((13, 64, 64)), nodata=0)
    code, err = _cli_in_process(capsys, "clouds", "--in", empty, "--out", tmp_path / "c.tif")
    assert code == 2 and "no valid pixel" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_evaluate_checks_its_figure_before_scoring_and_writes_its_outputs_together(tmp_path, capsys):
    prefix = tmp_path / "s"
    code, err = _cli_in_process(capsys, "evaluate", "--prediction", CR_CLOUDY_S2, "--reference", CR_CLOUDY_S2,
                                "--out-prefix", prefix, "--figure", tmp_path / "missing" / "f.png")
    assert code == 2 and "does not exist" in err and list(tmp_path.iterdir()) == []
    code, _ = _cli_in_process(capsys, "evaluate", "--prediction", CR_CLOUDY_S2, "--reference", CR_CLOUDY_S2,
                              "--out-prefix", prefix, "--figure", tmp_path / "f.png")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "s_metrics.json", "s_rmse.tif", "s_sam.tif"]
    metrics = json.loads((tmp_path / "s_metrics.json").read_text())
    assert metrics["rmse"] == 0 and metrics["psnr"] is None and metrics["pixels"] == 65536
