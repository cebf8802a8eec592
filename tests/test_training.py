"""The trainer on the real samples: a short run, exact resume after an interruption or a
SIGKILL, data readers and their errors, and two-process DDP on CPU."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, ROOT, SAMPLES
from safetensors.torch import load_file

from sarclear import checkpoint, data, training
from sarclear.errors import InputError

MANIFEST = SAMPLES / "train_manifest.csv"


def _config(out, **kw):
    base = dict(data=str(MANIFEST), out=str(out), preset="lite", crop=128, batch_size=2, samples_per_epoch=8,
                epochs=2, checkpoint_every=1, eval_max_pairs=1, keep_checkpoints=50, seed=3)
    return training.TrainConfig(**{**base, **kw})


def _final_state(out):
    return load_file(str(training.latest_checkpoint(out)))


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """One uninterrupted short run (2 epochs of 4 steps), trained once and shared: the run
    that every interrupted-and-resumed run must reproduce exactly."""
    out = tmp_path_factory.mktemp("straight") / "run"
    return out, training.train(_config(out))


def test_short_run_writes_checkpoints_history_curves_and_a_model(straight_run):
    run, summary = straight_run
    assert summary["step"] == 8 and (run / "curves.png").stat().st_size > 10_000
    history = json.loads((run / "history.json").read_text())
    assert [(r["epoch"], r["split"]) for r in history] == [(1, "train"), (1, "test"), (2, "train"), (2, "test")]
    assert all(0 < r["rmse"] < 1 and 0 < r["cloudy_rmse"] < 1 for r in history)
    model = checkpoint.load_model(run / "model.safetensors")
    assert model.config.preset == "lite" and model.info["training"]["crop"] == 128
    assert len(model.info["git_revision"]) in (40, 7) or model.info["git_revision"] == "unknown"
    # the exported model is the EMA generator, which differs from the raw generator
    state = _final_state(run)
    assert any(not torch.equal(state[f"G.{k}"], v) for k, v in model.generator.state_dict().items()
               if v.is_floating_point())


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, straight_run):
    straight = straight_run[0]
    training.train(_config(tmp_path / "broken"), stop_after_steps=3)  # mid-epoch: 4 steps per epoch
    resumed = training.train(_config(tmp_path / "broken"), resume=True)
    assert resumed["step"] == 8
    _assert_same_state(_final_state(straight), _final_state(tmp_path / "broken"))
    assert json.loads((tmp_path / "broken" / "history.json").read_text()) == json.loads(
        (straight / "history.json").read_text())


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, straight_run):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**training.dataclasses.asdict(_config(tmp_path / "killed")),
                               "sar_channels": ["VV", "VH"]}))
    cmd = [sys.executable, "-m", "sarclear", "-q", "train", "--config", str(cfg)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(ckpts.glob("step-*.safetensors"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    assert 2 <= len(list(ckpts.glob("step-*.safetensors"))) < 9  # killed mid-run, 8 steps + the epoch ends
    subprocess.run([*cmd, "--resume"], env=env, check=True, capture_output=True)
    _assert_same_state(_final_state(straight_run[0]), _final_state(tmp_path / "killed"))


@pytest.mark.slow
def test_two_process_ddp_on_cpu_keeps_ranks_identical(tmp_path):
    cfg = training.dataclasses.asdict(_config(tmp_path / "ddp", epochs=1, samples_per_epoch=8, checkpoint_every=0))
    cfg["sar_channels"] = list(cfg["sar_channels"])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(ROOT / "tests" / "ddp_worker.py"), json.dumps(cfg)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    d0 = json.loads((tmp_path / "ddp" / "digest-rank0.json").read_text())
    d1 = json.loads((tmp_path / "ddp" / "digest-rank1.json").read_text())
    assert d0["world_size"] == d1["world_size"] == 2
    assert d0["step"] == d1["step"] == 2  # 8 samples / (2 ranks x batch 2)
    assert d0["digest"] == d1["digest"]
    assert (tmp_path / "ddp" / "model.safetensors").exists()  # written by rank 0 only


def test_manifest_windows_splits_and_sen12ms_cr_folders(tmp_path):
    pairs = data.find_pairs(MANIFEST)
    train, test = data.split_pairs(pairs, 0.5)
    assert len(train) == 4 and len(test) == 3  # the manifest's own split column wins
    loaded = data.load_pair(pairs[1], ("B2", "B3"), ("VV", "VH"))
    assert loaded.clear.shape == (2, 96, 264) and loaded.sar.shape == (2, 96, 264)
    # a SEN12MS-CR folder layout: s1_<n>, s2_<n> (clear), s2_cloudy_<n>
    root = tmp_path / "ROIs1868_summer"
    for sub, src in (("s1_19", CR_CLOUDY_S1), ("s2_19", CR_CLOUDY_S2), ("s2_cloudy_19", CR_CLOUDY_S2)):
        (root / sub).mkdir(parents=True)
        (root / sub / src.name.replace("_s2_cloudy_", "_s2_" if sub == "s2_19" else "_s2_cloudy_")
         ).symlink_to(src)
    found = data.find_pairs(tmp_path)
    assert len(found) == 1 and found[0].s2_cloudy is not None


def test_bad_training_data_errors_name_the_file(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text(f"s1,s2_clear\n{CR_CLOUDY_S2},{CR_CLOUDY_S2}\n")
    with pytest.raises(InputError, match=r"training pair .*ROIs1868_summer_s2_cloudy_19_p30\.tif.*13 unnamed"):
        data.load_pair(data.find_pairs(bad)[0], ("B2",), ("VV", "VH"))
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="columns s1, s2_clear"):
        data.find_pairs(bad)
    bad.write_text(f"s1,s2_clear\n{tmp_path / 'missing.tif'},{CR_CLOUDY_S2}\n")
    with pytest.raises(InputError, match=r"missing\.tif: no such file"):
        data.load_pair(data.find_pairs(bad)[0], ("B2",), ("VV", "VH"))
    with pytest.raises(InputError, match="unknown training option"):
        training.TrainConfig.from_dict({"learning_rate": 1})


def test_config_file_and_paper_learning_rate_default(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: lite\nepochs: 3\ncrop: 128\n")
    cfg = training.TrainConfig.from_file(f, epochs=7, data="x.csv")
    assert (cfg.preset, cfg.epochs, cfg.crop, cfg.data) == ("lite", 7, 128, "x.csv")
    assert training.TrainConfig().lr == 2e-4 and training.TrainConfig().ema_decay == 0.99
    with pytest.raises(InputError, match="multiple of 256"):
        training.TrainConfig(crop=128).model_config()  # the paper preset needs 256-multiples
    assert training.TrainConfig(preset="lite", ms_only=True, crop=128).model_config().sar_channels == ()


def test_data_cropped_on_the_device_trains_exactly_like_the_data_loader(tmp_path):
    # the GPU path (pairs kept on the device, cropped there, no DataLoader) on the CPU
    a = training.train(_config(tmp_path / "loader", epochs=1, data_on_device=False, workers=0))
    b = training.train(_config(tmp_path / "device", epochs=1, data_on_device=True))
    assert a["generator_sha256"] == b["generator_sha256"]
    _assert_same_state(_final_state(tmp_path / "loader"), _final_state(tmp_path / "device"))


@pytest.mark.parametrize("size", [128, 300])  # a crop inside the pairs, and one larger (padded)
def test_a_batch_cut_at_once_equals_its_items_stacked(size):
    """The device path converts a whole batch in one go (a few ops, not a few per item): the
    same tensors, dtypes included, as the DataLoader's items stacked."""
    from sarclear.networks import preset

    cfg = preset("lite")
    ds = data.PairDataset(data.find_pairs(str(MANIFEST)), cfg.bands, cfg.sar_channels, size, length=12, seed=5)
    indices = [7, 0, 3, 11, 3]
    batch = ds.batch(indices)
    items = [ds[i] for i in indices]
    assert batch.keys() == items[0].keys()
    for k, v in batch.items():
        stacked = torch.stack([it[k] for it in items])
        assert v.dtype == stacked.dtype and torch.equal(v, stacked), k
    assert batch["index"].tolist() == indices and batch["clear"].shape[-1] == size


def test_augmentation_applies_one_symmetry_per_sample_to_every_tensor():
    x = torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).reshape(4, 2, 3, 3)
    y = x + 1000
    g = torch.Generator().manual_seed(0)
    ax, ay = training.augment([x, y], g)
    assert torch.equal(ay, ax + 1000)  # the same transform on both tensors
    for i in range(4):  # each sample is one of the 8 symmetries of its original
        candidates = [torch.rot90(x[i], k, dims=(-2, -1)) for k in range(4)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.equal(ax[i], c) for c in candidates)


def test_ms_only_twin_trains_on_rasters_smaller_than_the_crop(tmp_path):
    # BigEarthNet pairs are 120 x 120, the crop 128: padded, and the twin has no SAR channels
    summary = training.train(_config(tmp_path / "twin", ms_only=True, epochs=1, samples_per_epoch=8),
                             stop_after_steps=2)
    assert summary["step"] == 2
    state = _final_state(tmp_path / "twin")
    assert state["G.down.0.block.0.weight"].shape[1] == 10  # ten MS bands in, no SAR


@pytest.mark.parametrize("path", sorted((ROOT / "resources" / "models").glob("*_train.yaml")), ids=lambda p: p.name)
def test_every_shipped_training_config_loads(path):
    """The configs that made the bundled models are valid as written (option names, ranges, preset)."""
    config = training.TrainConfig.from_file(path, data="x", out="y")
    assert config.model_config().preset.startswith(config.preset)
    if "_layers" in path.name or "_level" in path.name:  # fine-tunes under real layers start from a model
        assert config.real_layer_fraction > 0 and config.init
    assert (config.level_jitter > 0) == ("_level" in path.name)
