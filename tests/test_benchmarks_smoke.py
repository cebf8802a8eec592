"""The benchmark scripts still run: each at its smallest size on the CPU, writing its results
JSON with the keys BENCHMARKS.md and run_all.py rely on (the numbers themselves are not
checked: timings belong in BENCHMARKS.md, not in tests)."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

BENCH = ROOT / "benchmarks"


def _run(script, *args, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(BENCH / script), *args, "--device", "cpu", "--out", str(out),
           "--workdir", str(tmp_path / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_model_throughput_measures_the_reference_and_counts_flops(tmp_path):
    out, stdout = _run("model_throughput.py", "--quick", "--presets", "lite", "--kinds", "inference",
                       "--variants", "0,4", "--threads", "1", tmp_path=tmp_path)
    doc = json.loads((out / "model_throughput.json").read_text())
    assert {"benchmark", "env", "args", "flops", "rows", "tables", "notes"} <= doc.keys()
    assert {"device", "date", "command", "git_revision", "torch", "gdal", "python", "cpu_count"} <= doc["env"].keys()
    (flops,) = doc["flops"]
    assert flops["preset"] == "lite" and 2.5 < flops["inference_gflop"] < 3.0  # 2.68 GFLOP per 256 px patch
    ref, skipped = doc["rows"]
    assert ref["variant"].startswith("reference") and ref["batch"] == 1
    assert ref["per_s"] > 0 and ref["speedup_vs_reference"] == 1.0 and ref["tflops"] > 0
    assert "CUDA only" in skipped["skipped"]  # bf16 / compile are not run on the CPU
    assert "| reference (fp32, batch 1, eager) |" in stdout


def test_paper_flop_counts_match_the_issue():
    sys.path.insert(0, str(BENCH))
    try:
        import workloads
    finally:
        sys.path.remove(str(BENCH))
    report = workloads.flops_report("paper")
    assert report["inference_gflop"] == pytest.approx(16.0, abs=0.1)
    assert report["training_gflop_d_unfrozen"] == pytest.approx(108.6, abs=0.1)
    assert report["training_gflop"] < report["training_gflop_d_unfrozen"]


def test_decloud_scaling_runs_a_size_in_a_child_process_with_its_peak_memory(tmp_path):
    out, _ = _run("decloud_scaling.py", "--identity", "--sizes", "256", tmp_path=tmp_path)
    doc = json.loads((out / "decloud_scaling.json").read_text())
    assert {"benchmark", "env", "rows", "tables", "notes", "cpu_target"} <= doc.keys()
    (row,) = doc["rows"]
    assert row["size"] == "256" and row["tiles"] == 1 and "failed" not in row
    assert row["seconds"] > 0 and row["peak_rss_gib"] > row["raster_gib"] > 0
    assert (out / "decloud_scaling.png").stat().st_size > 0
    # the generated inputs: 10 named bands of uint16, SAR on another CRS
    from osgeo import gdal

    s2 = gdal.Open(str(tmp_path / "work" / "inputs" / "s2_256_v1.tif"))
    s1 = gdal.Open(str(tmp_path / "work" / "inputs" / "s1_256_v1.tif"))
    assert (s2.RasterCount, s2.GetRasterBand(1).DataType, s2.GetRasterBand(1).GetDescription()) == \
        (10, gdal.GDT_UInt16, "B2")
    assert s1.RasterCount == 2 and "4326" in s1.GetProjection() and s1.RasterXSize > 256


def test_memory_curve_samples_rss_and_the_block_cache_over_one_decloud(tmp_path):
    out, stdout = _run("memory_curve.py", "--identity", "--size", "512", "--interval", "0.05", tmp_path=tmp_path)
    doc = json.loads((out / "memory_curve.json").read_text())
    samples = doc["result"]["samples"]
    assert doc["result"]["tiles"] == 9 and len(samples) >= 2 and samples[-1]["tiles"] == 9
    assert all(s["rss"] > s["gdal_cache"] >= 0 for s in samples)
    assert {"min_gib", "max_gib", "mib_per_1000_tiles"} <= doc["trend"].keys()
    assert (out / "memory_curve.png").stat().st_size > 0 and "| tiles done |" in stdout


def test_the_revision_is_dirty_for_changed_code_not_for_rewritten_results(tmp_path, monkeypatch):
    """Benchmarks run one after another in one clean checkout rewrite docs/quality; the next one
    still records the bare commit, and a changed source file still makes it "-dirty"."""
    monkeypatch.syspath_prepend(str(BENCH))
    import common

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "docs" / "quality").mkdir(parents=True)
    (tmp_path / "docs" / "quality" / "r.md").write_text("a\n")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    monkeypatch.setattr(common, "ROOT", tmp_path)
    clean = common.git_revision()
    (tmp_path / "docs" / "quality" / "r.md").write_text("b\n")
    assert common.git_revision() == clean and not clean.endswith("-dirty") and len(clean) == 12
    (tmp_path / "code.py").write_text("a = 2\n")
    assert common.git_revision() == clean + "-dirty"


def test_the_synthetic_figures_never_draw_a_source_without_a_licence_to_publish(monkeypatch):
    """The quality benchmark measures on the Sen1Floods11 chip but draws the largest other S1+S2
    scene: that source publishes no licence (docs/DATA.md)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import numpy as np
    from quality import figure_scene

    from sarclear.datasets import MEASURE_ONLY_SOURCES, Scene

    def scene(name, source, size, sar=True):
        return Scene(name, f"{source}:{name}", source, "l1c", ("B2",), np.zeros((1, size, size), np.float32),
                     np.zeros((2, size, size), np.float32) if sar else None, False, "test")

    chip, ssl = scene("chip", "sen1floods11", 384), scene("south", "ssl4eo-s12", 96)
    big_s2 = scene("v", "virginia", 512, sar=False)
    assert "sen1floods11" in MEASURE_ONLY_SOURCES
    assert figure_scene([chip, ssl, big_s2]) is ssl
    assert figure_scene([chip, big_s2]) is None


def test_a_mask_file_that_misses_the_haze_is_filled_from_beyond_it(tmp_path, monkeypatch):
    """benchmarks/mask_files.py on the bundled real cloudy scene (SSL4EO 0000200), the spectral
    rules' mask without growth as a mask file: the default fill buffer (90 m) keeps the hazy
    pixels next to the mask out of the fill, which 2 px did not."""
    monkeypatch.syspath_prepend(str(BENCH))
    import mask_files

    monkeypatch.setattr(mask_files, "MASKS", (("rules", 0),))
    monkeypatch.setattr(mask_files, "BUFFERS", (2, 9))
    record = mask_files.run(tmp_path)
    rows = {r["fill_buffer"]: r for r in record["rows"]}
    assert record["default_fill_buffer"] == 9 and 30 < rows[9]["hidden_pct"] < 50
    rmse = {b: {m: s["10-day"]["rmse"] for m, s in r["scores"].items()} for b, r in rows.items()}
    assert rmse[9]["guided"] < 0.9 * rmse[2]["guided"] and rmse[9]["classic"] < 0.8 * rmse[2]["classic"]
    assert "| rules +0 px (39 %) | 9 |" in mask_files.report({**record, "command": "c", "date": "d",
                                                               "revision": "r", "seconds": 1.0})


def test_a_quality_record_is_written_with_its_exact_command_and_revision(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import time

    import common

    text = common.write_record(tmp_path / "out", "mask_files", {"rows": [1]}, lambda r: f"{r['command']} {r['rows']}",
                               ["--out", "x"], time.perf_counter())
    record = json.loads((tmp_path / "out" / "mask_files.json").read_text())
    assert text == "python benchmarks/mask_files.py --out x [1]" == (tmp_path / "out" / "mask_files.md").read_text()
    assert record["revision"] == common.git_revision() and record["seconds"] >= 0 and record["date"].startswith("20")


def test_the_pipeline_profiles_attribute_time_to_stages_and_count_operations(tmp_path):
    out, _ = _run("profile_pipeline.py", "decloud", "--quick", tmp_path=tmp_path)
    res = json.loads((out / "profile_decloud.json").read_text())
    stages = {r["stage"]: r["seconds"] for r in res["stages"]}
    assert res["tiles"] > 0 and all(v > 0 for v in stages.values())
    assert sum(v for k, v in stages.items() if not k.startswith("  ")) <= res["seconds"]
    out, _ = _run("profile_pipeline.py", "train-data", "--quick", tmp_path=tmp_path)
    rows = {r["part"].strip(): r["operations"]
            for r in json.loads((out / "profile_train_data.json").read_text())["rows"]}
    # a batch converted at once issues fewer operations than its items one by one
    assert 0 < rows["batch assembly (crops of the cached windows)"] < rows[
        "the same, item by item (for comparison; not in the sum)"]
    assert rows["synthetic clouds"] > 0
