"""The gap-fill generator (presets fill, fill-ms), its model files, its trainer (finite losses
from the first step, exact resume, curves) and scene-adaptive fitting, on the real samples."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, SAMPLES
from safetensors.torch import load_file

from sarclear import checkpoint, networks, training
from sarclear.adapt import AdaptOptions, adapt_model, estimate_seconds
from sarclear.errors import CheckpointError, InputError
from sarclear.fill import normalized_convolution
from sarclear.fill_data import make_batch
from sarclear.fill_training import fill_loss, load_training_scenes

MANIFEST = SAMPLES / "train_manifest.csv"


def _batch(seed=0, size=48, kinds=("thick", "haze", "shadow")):
    scenes = [s for s in load_training_scenes(str(MANIFEST), networks.preset("fill").bands, ("VV", "VH"))
              if s.split == "train" and s.sar is not None]
    ms = torch.stack([s.ms[:, :size, :size] for s in scenes[:len(kinds)]])
    sar = torch.stack([s.sar[:, :size, :size] for s in scenes[:len(kinds)]])
    g = torch.Generator().manual_seed(seed)
    return make_batch(ms, sar, torch.ones(len(kinds), dtype=torch.bool), networks.preset("fill").bands,
                      networks.preset("fill").sar_scaling(), g, list(kinds))


def test_level_jitter_gives_each_item_its_own_level_and_draws_nothing_when_off():
    scenes = [s for s in load_training_scenes(str(MANIFEST), networks.preset("fill").bands, ("VV", "VH"))
              if s.split == "train" and s.sar is not None]
    ms = torch.stack([scenes[0].ms[:, :48, :48]] * 3)  # one real crop, three times
    sar, has, bands = torch.stack([scenes[0].sar[:, :48, :48]] * 3), torch.ones(3, dtype=torch.bool), \
        networks.preset("fill").bands

    def batch(**kw):
        return make_batch(ms, sar, has, bands, networks.preset("fill").sar_scaling(),
                          torch.Generator().manual_seed(4), ["thick"] * 3, **kw)

    plain, off, on = batch(), batch(level_jitter=0.0), batch(level_jitter=1.0)
    assert torch.equal(plain.observed, off.observed) and torch.equal(plain.truth, off.truth)
    assert torch.equal(plain.truth[0], ms[0]) and not torch.equal(on.truth[0], on.truth[1])
    for i in range(3):  # per item: an affine change of each band, the offset falling with wavelength
        x, y = ms[i].flatten(1), on.truth[i].flatten(1)
        keep = (y > 0).all(0)
        fits = [np.polyfit(x[b, keep].numpy(), y[b, keep].numpy(), 1) for b in range(len(bands))]
        gains = [f[0] for f in fits]
        assert max(gains) - min(gains) < 1e-3 and np.exp(-0.2) - 1e-3 < gains[0] < np.exp(0.2) + 1e-3
        offsets = [f[1] for f in fits]
        assert -0.031 < offsets[0] < 0.061 and abs(offsets[-1]) <= abs(offsets[0]) + 1e-6
    assert on.observed.shape == plain.observed.shape and torch.isfinite(on.prior).all()


def test_presets_are_small_gapfill_generators_without_transposed_convolutions():
    for name, sar in (("fill", 2), ("fill-ms", 0)):
        cfg = networks.preset(name)
        g, d = networks.build(cfg)
        assert cfg.kind == "gapfill" and d is None and len(cfg.sar_channels) == sar
        assert 2e5 < networks.count_parameters(g) < 2e6
        assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    with pytest.raises(ValueError, match="without a discriminator"):
        networks.build(networks.preset("fill"), discriminator=True)
    with pytest.raises(ValueError, match="unknown generator kind"):
        networks.ModelConfig(kind="diffusion")


def test_untrained_generator_returns_the_normalized_convolution_fill_at_any_size():
    torch.manual_seed(0)
    g, _ = networks.build(networks.preset("fill-ms"))
    x = torch.rand(2, 10, 37, 53) * 0.3
    clear = (torch.rand(2, 1, 37, 53) > 0.4).float()
    prior = normalized_convolution(x, clear)
    x_cloudy = torch.where(clear > 0, x, torch.full_like(x, 0.8))  # bright cloud where hidden
    est, log_var = g(x_cloudy, clear, prior, x[:, :0])
    assert est.shape == log_var.shape == x.shape
    hidden = clear.expand_as(x) == 0
    # gate starts at 0.98 towards the fill: the untrained estimate is within 2 % of the cloud-prior gap
    gap = (x_cloudy - prior).abs()
    assert ((est - prior).abs()[hidden] <= 0.021 * gap[hidden] + 1e-6).all()
    assert torch.isfinite(log_var).all() and torch.allclose(log_var, torch.full_like(log_var, -6.0), atol=0.1)


def test_model_file_stores_the_kind_and_old_files_load_as_unet(tmp_path):
    g, _ = networks.build(networks.preset("fill"))
    path = checkpoint.save_model(tmp_path / "fill.safetensors", g, networks.preset("fill"), {"note": "x"})
    model = checkpoint.load_model(path)
    assert model.config.kind == "gapfill" and type(model.generator).__name__ == "GapFillGenerator"
    for k, v in g.state_dict().items():
        assert torch.equal(model.generator.state_dict()[k], v)
    old = networks.preset("lite").to_dict()
    del old["kind"]
    assert networks.ModelConfig.from_dict(old).kind == "unet"
    # weights of one kind under the other kind's config are refused, naming the problem
    lite, _ = networks.build(networks.preset("lite"))
    bad = checkpoint.save_model(tmp_path / "bad.safetensors", lite, networks.preset("lite"))
    from safetensors.torch import save_file

    tensors = load_file(str(bad))
    meta = {checkpoint.CONFIG_KEY: json.dumps(networks.preset("fill").to_dict())}
    save_file(tensors, str(tmp_path / "mixed.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        checkpoint.load_model(tmp_path / "mixed.safetensors")


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    g, _ = networks.build(networks.preset("fill"))
    b = _batch()
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    first = None
    for _ in range(25):
        loss, parts = fill_loss(g, b, 0.2, 0.1)
        assert all(np.isfinite(v) for v in parts.values())
        first = first or parts
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = fill_loss(g, b, 0.2, 0.1)[1]
    assert last["l1"] < 0.8 * first["l1"] and last["gate_bce"] < first["gate_bce"]


def _config(out, **kw):
    base = dict(data=str(MANIFEST), out=str(out), preset="fill", crop=48, batch_size=2, samples_per_epoch=6,
                epochs=2, checkpoint_every=1, eval_max_pairs=1, keep_checkpoints=50, seed=5, lr=1e-3, beta1=0.9)
    return training.TrainConfig(**{**base, **kw})


def test_fill_run_logs_finite_losses_from_step_one_and_resumes_exactly(tmp_path):
    seen = []
    straight = training.train(_config(tmp_path / "a"), progress=lambda d, t, s: seen.append((d, t, s)))
    assert [d for d, _, _ in seen] == list(range(1, 7)) and all(t == 6 for _, t, _ in seen)
    assert all(np.isfinite(s["l1"]) and np.isfinite(s["nll"]) and s["eta_s"] >= 0 for _, _, s in seen)
    run = tmp_path / "a"
    for name in ("curves.png", "history.csv", "losses.csv", "model.safetensors", "best.safetensors"):
        assert (run / name).is_file(), name
    assert straight["best_checkpoint"] == str(run / "best.safetensors")
    assert straight["best"]["model_all"] > 0 and 0 <= straight["best"]["coverage90"] <= 1
    training.train(_config(tmp_path / "b"), stop_after_steps=2)  # stops mid-epoch (3 steps per epoch)
    resumed = training.train(_config(tmp_path / "b"), resume=True)
    assert resumed["step"] == 6
    a, b = (load_file(str(training.latest_checkpoint(tmp_path / x))) for x in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_batches_made_by_worker_processes_train_the_same_weights_as_batches_made_in_process(tmp_path):
    training.train(_config(tmp_path / "here", epochs=1), stop_after_steps=3)
    training.train(_config(tmp_path / "workers", epochs=1, workers=2), stop_after_steps=3)
    a, b = (load_file(str(training.latest_checkpoint(tmp_path / x))) for x in ("here", "workers"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if k.startswith(("G.", "EMA.")))


def test_adapt_fine_tunes_a_copy_and_refuses_what_it_cannot_use():
    g, _ = networks.build(networks.preset("fill"))
    model = checkpoint.Model(g, networks.preset("fill"))
    scene = next(s for s in load_training_scenes(str(MANIFEST), model.config.bands, ("VV", "VH"))
                 if s.sar is not None)
    ms, sar = scene.ms.numpy(), scene.sar.numpy()
    clear = np.ones(ms.shape[1:], bool)
    clear[:, : ms.shape[2] // 3] = False  # a real cloud: never a target
    before = {k: v.clone() for k, v in g.state_dict().items()}
    calls = []
    opts = AdaptOptions(steps=3, crop=48, batch=2)
    adapted = adapt_model(model, ms, sar, clear, opts, progress=lambda d, t, w: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)] and adapted.info["adapted"]["steps"] == 3
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # the input is untouched
    assert any(not torch.equal(before[k], v) for k, v in adapted.generator.state_dict().items())
    again = adapt_model(model, ms, sar, clear, opts)  # seeded: the same model again
    assert all(torch.equal(v, again.generator.state_dict()[k]) for k, v in adapted.generator.state_dict().items())
    assert estimate_seconds(model, *ms.shape[1:], opts) > 0
    assert estimate_seconds(model, *ms.shape[1:], AdaptOptions(seconds=42)) == 42
    with pytest.raises(InputError, match="too little"):
        adapt_model(model, ms, sar, np.zeros(ms.shape[1:], bool), opts)
    with pytest.raises(InputError, match="uses SAR"):
        adapt_model(model, ms, None, clear, opts)
    rec = adapted.info["adapted"]
    assert rec["kept"] == "fitted" and rec["held_out_error_after"] < rec["held_out_error_before"]
    # a fit that makes the held-out synthetic clouds worse (a step size far too large) is not used
    wild = adapt_model(model, ms, sar, clear, AdaptOptions(steps=3, crop=48, batch=2, lr=1.0))
    rec = wild.info["adapted"]
    assert rec["kept"] == "as trained" and rec["held_out_error_after"] >= rec["held_out_error_before"]
    assert wild.generator is model.generator
    lite, _ = networks.build(networks.preset("lite"))
    with pytest.raises(InputError, match="gap-fill model"):
        adapt_model(checkpoint.Model(lite, networks.preset("lite")), ms, sar, clear, opts)


def test_cli_trains_the_fill_preset_and_names_the_best_checkpoint(tmp_path, capsys):
    from sarclear.cli import main

    out = tmp_path / "cli"
    assert main(["-q", "train", "--data", str(MANIFEST), "--out", str(out), "--preset", "fill-ms", "--crop", "32",
                 "--batch-size", "2", "--samples-per-epoch", "4", "--epochs", "1", "--lr", "0.001"]) == 0
    text = capsys.readouterr().out
    assert f"best checkpoint: {out / 'best.safetensors'}" in text and "normalized convolution" in text
    model = checkpoint.load_model(out / "best.safetensors")
    assert model.config.preset == "fill-ms" and model.config.kind == "gapfill" and not model.config.uses_sar
    assert main(["models"]) == 0
    assert "fill-ms" in capsys.readouterr().out


def test_a_blind_generator_never_reads_the_hidden_pixels_and_round_trips(tmp_path):
    torch.manual_seed(0)
    config = networks.preset("inpaint")
    assert config.blind and config.kind == "gapfill" and networks.preset("inpaint-ms").blind
    g, _ = networks.build(config)
    g.eval()
    x = torch.rand(1, 10, 40, 48) * 0.3
    clear = (torch.rand(1, 1, 40, 48) > 0.5).float()
    prior = normalized_convolution(x, clear)
    sar = torch.rand(1, 2, 40, 48)
    thin = torch.where(clear > 0, x, x * 0.6 + 0.2)    # haze over the hidden pixels
    thick = torch.where(clear > 0, x, torch.full_like(x, 0.9))  # thick cloud there instead
    a, b = g(thin, clear, prior, sar)[0], g(thick, clear, prior, sar)[0]
    assert torch.equal(a, b)
    assert torch.allclose(a, prior.clamp(0, 1.2), atol=1e-6)  # untrained: exactly the prior
    path = checkpoint.save_model(tmp_path / "blind.safetensors", g, config)
    assert checkpoint.load_model(path).config.blind is True
    assert checkpoint.config_problems(networks.preset("fill")) == []
    assert checkpoint.config_problems(dataclasses.replace(config, blind="yes")) == ["blind is 'yes', not true or false"]


def test_the_scene_model_is_the_classical_fill_until_fitted_and_the_fixed_fill_refuses_fitting(tmp_path, capsys):
    from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, read_raster

    from sarclear.cli import main
    from sarclear.inference import DecloudOptions, decloud

    models = SAMPLES.parent / "models"
    classic = checkpoint.load_model(models / "sarclear-fill-classic.safetensors")
    assert classic.config.keep_detail > 0  # the default also keeps the detail seen through thin cloud
    fill_only = dataclasses.replace(classic, config=dataclasses.replace(classic.config, keep_detail=0.0))
    outs = {}
    for name, model in (("sarclear-fill-classic", classic), ("fill only", fill_only),
                        ("sarclear-fill-scene", models / "sarclear-fill-scene.safetensors")):
        res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, model, tmp_path / f"{name}.tif", maps=False)
        outs[name] = read_raster(res.output)[0].astype(np.int64)
    assert np.abs(outs["fill only"] - outs["sarclear-fill-scene"]).max() <= 1  # DN: the same fill
    mask = read_raster(tmp_path / "sarclear-fill-scene_mask.tif")[0].reshape(256, 256)
    detail = (outs["sarclear-fill-classic"] != outs["fill only"]).any(0)
    assert detail.any() and not detail[mask == 0].any()  # the kept detail is only ever under the mask
    res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, models / "sarclear-fill-scene.safetensors", tmp_path / "fitted.tif",
                  maps=False, options=DecloudOptions(adapt=True, adapt_seconds=2))
    fitted = read_raster(res.output)[0].astype(np.int64)
    changed = (fitted != outs["sarclear-fill-scene"]).any(0)
    assert changed.any() and not changed[mask == 0].any()  # fitting changes the fill, never a clear pixel
    assert any(n.startswith("model fitted to this scene") for n in res.notes)
    # the fixed classical fill (the default) has nothing to learn: refused before any work, naming the fix
    with pytest.raises(InputError, match="nothing to learn"):
        decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, models / "sarclear-fill-classic.safetensors", tmp_path / "no.tif",
                options=DecloudOptions(adapt=True))
    assert main(["-q", "decloud", "--ms", str(CR_CLOUDY_S2), "--sar", str(CR_CLOUDY_S1), "--adapt",
                 "--out", str(tmp_path / "no.tif")]) == 2
    err = capsys.readouterr().err
    assert "nothing to learn" in err and "--model resources/models/sarclear-fill-scene.safetensors" in err
    assert not (tmp_path / "no.tif").exists() and not (tmp_path / "no_mask.tif").exists()


def test_training_a_gap_fill_model_needs_no_gdal():
    """The GPU machine has no GDAL (scripts/gpu_train.py): the trainer, its config, its figures
    and the model files must import without it."""
    code = ("import sys; sys.modules['osgeo'] = None\n"
            "import sarclear.fill_training, sarclear.train_config, sarclear.figures, sarclear.checkpoint\n"
            "assert 'sarclear.io' not in sys.modules, 'the raster I/O was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_gpu_training_pack_codec_is_lossless():
    """scripts/gpu_train.py packs reflectance steps as 2-D differences: every uint16 value,
    nodata (65535) and wrap-around included, and float32 SAR come back bit for bit."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_train", ROOT / "scripts" / "gpu_train.py")
    gpu_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_train)
    rng = np.random.default_rng(3)
    steps = rng.integers(0, 65536, (3, 17, 23)).astype(np.uint16)
    steps[:, 4:6, 7:9] = 65535
    for a in (steps, np.zeros((2, 1, 5), np.uint16), rng.normal(-15, 5, (2, 9, 4)).astype(np.float32)):
        back = gpu_train._decode(gpu_train._encode(a), str(a.dtype), list(a.shape))
        assert back.dtype == a.dtype and np.array_equal(back, a)
