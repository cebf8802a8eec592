"""The quality benchmark runs end to end in its quick mode (held-out real scenes, synthetic
clouds, baselines and the bundled model through decloud) and its numbers behave as the
physics says: clouds hurt, a fill inside the true mask beats the cloudy input under thick
cloud, and the report carries the command and the tables."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_quality_quick_run_scores_every_method_on_every_cloud_kind(tmp_path):
    out, report = tmp_path / "out", tmp_path / "QUALITY.md"
    model = sorted((ROOT / "resources" / "models").glob("*.safetensors"))[0]  # any bundled model
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--quick", "--out", str(out),
           "--report", str(report), "--workdir", str(tmp_path / "work"), "--model", f"bundled={model}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "quality.json").read_text())
    assert {"env", "scenes", "kinds", "rows", "per_scene", "clear_check", "figures", "notes"} <= doc.keys()
    assert all(s["sar"] for s in doc["scenes"]) and doc["scenes"]
    rows = {(r["kind"], r["method"], r["mask"]): r for r in doc["rows"] if r["group"] == "S1+S2"}
    for kind in ("thick", "haze", "thick+shadow"):
        cloudy = rows[(kind, "cloudy input", "-")]
        nc = rows[(kind, "normalized convolution", "true")]
        model = rows[(kind, "bundled", "true")]
        assert cloudy["cloud_pixels"] > 0.1 * cloudy["pixels"]
        assert cloudy["rmse_cloud"] > 0.02 and cloudy["corr"] < 0.999  # the clouds changed the scene
        for r in (nc, model, rows[(kind, "mean fill", "true")]):
            assert r["pixels"] == cloudy["pixels"] and 0 < r["rmse_all"] < 1 and -1 <= r["corr"] <= 1
    for kind in ("thick", "thick+shadow"):  # a fill inside the true mask beats leaving the cloud
        assert rows[(kind, "normalized convolution", "true")]["rmse_cloud"] < rows[(kind, "cloudy input", "-")][
            "rmse_cloud"] / 2
    (clear,) = doc["clear_check"]
    assert clear["model"] == "bundled" and 0 <= clear["changed_pct"] <= 100 and clear["pixels"] > 0
    assert all((out / f).stat().st_size > 0 for f in ("synthetic_thick.png",)) and len(doc["figures"]) >= 2
    text = report.read_text()
    assert "benchmarks/quality.py --quick" in text and doc["env"]["git_revision"] in text
    assert "| cloudy input | - |" in text and "thick: RMSE cloud" in text


@pytest.mark.slow
@pytest.mark.parametrize("model", [None, "sarclear-fill-guided"])
def test_the_uncertainty_benchmark_scores_the_default_models_sigma_against_real_errors(tmp_path, model):
    """Both defaults (without SAR, and the SAR-guided one with it)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "uncertainty.py"), "--quick", "--out", str(tmp_path)]
    if model:
        cmd += ["--model", str(ROOT / "resources" / "models" / f"{model}.safetensors")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stem = f"uncertainty_{model}" if model else "uncertainty"
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    rows = doc["rows"]
    assert {"all kinds, true mask", "real clouds, 10-day reference", "real clouds, 80-day reference"} <= rows.keys()
    for r in rows.values():
        assert r["band_pixels"] > 0 and 0 < r["rmse"] < 1 and 0 < r["sigma_rms"] < 1 and 0 <= r["coverage90"] <= 1
    assert len(doc["fill_sigma"]) == 3 and doc["decloud_raster_vs_rule_max_abs_diff"] < 0.01
    assert (tmp_path / f"{stem}.png").stat().st_size > 0 and "inside the 90 % interval" in (
        tmp_path / f"{stem}.md").read_text()


@pytest.mark.parametrize("model", [None, "sarclear-fill-guided"])
def test_the_clear_scenes_benchmark_runs_every_clear_sample_through_default_decloud(tmp_path, model):
    """Every clear sample scene, whole, through the default model (and the default with SAR, on
    the scenes with SAR, given their SAR): each one scored with the detector that ran, a scene
    where nothing was detected comes back unchanged, and the report's pooled row is the JSON's
    rows pooled."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import clear_scenes
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    extra = ["--model", str(ROOT / "resources" / "models" / f"{model}.safetensors")] if model else []
    assert clear_scenes.main(["--data", str(tmp_path / "absent"), "--max-side", "96", "--out", str(tmp_path),
                              *extra]) == 0
    stem = f"clear_scenes_{model}" if model else "clear_scenes"
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    rows = doc["scenes"]
    assert len(rows) >= 3 and all(r["pixels"] > 0 and r["detector"] != "?" for r in rows)
    for r in rows:
        if r["cloud_pct"] == 0 and r["shadow_pct"] == 0:  # nothing hidden: a mask-aware model changes nothing
            assert r["changed"] == 0 and r["squared_error"] == 0
    pooled = clear_scenes.summary(rows)
    text = (tmp_path / f"{stem}.md").read_text()
    assert f"| all | all | {len(rows)} | {pooled['pixels']:,} | {pooled['changed_pct']:.3f} |" in text
    assert "--max-side 96" in doc["meta"]["command"]


def test_the_overcast_benchmark_fills_a_whole_scene_cloud_from_the_prior_and_leaves_haze_alone(tmp_path):
    """The held-out sample scenes under a cloud that hides them whole: the default models use
    their ground prior on every one and err far less than the cloud; under haze with the same
    all-cloud mask they never use it, and the output is what it was without a prior."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import overcast
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert overcast.main(["--data", str(tmp_path / "absent"), "--seeds", "1", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "overcast.json").read_text())
    rmse, used = doc["rmse"], doc["prior_used"]
    groups = [g for g, n in doc["scenes"].items() if n]
    assert groups
    for g in groups:
        runs = doc["scenes"][g]
        assert used[f"{g}|overcast"] == f"{runs} of {runs}" and used[f"{g}|haze"] == f"0 of {runs}"
        assert rmse[f"{g}|overcast|default decloud (ground prior)"] < 0.5 * rmse[f"{g}|overcast|cloudy input"]
        assert rmse[f"{g}|haze|default decloud (ground prior)"] == rmse[f"{g}|haze|default without a ground prior"]
    assert "| scenes where the prior was used |" in (tmp_path / "overcast.md").read_text()


def test_the_quality_benchmark_scores_the_split_it_is_asked_for(tmp_path):
    """Settings are chosen on train places (``--split train``), results reported on test ones:
    each split yields only its own places, the two share none, and a split with no scene says
    which one it lacked."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import quality_io
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    absent = tmp_path / "absent"  # the bundled samples stand in
    test, _ = quality_io.test_scenes(absent, False, 96)
    train, chosen = quality_io.test_scenes(absent, False, 96, "train")
    assert test and train and {s.split for s in test} == {"test"} and {s.split for s in train} == {"train"}
    assert not {s.place for s in test} & {s.place for s in train}
    assert [c["name"] for c in chosen] == [s.name for s in train]
    with pytest.raises(SystemExit, match="no val scenes"):
        quality_io.test_scenes(absent, False, 96, "val")
