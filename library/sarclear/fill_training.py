"""Training the gap-fill generator (presets ``fill`` and ``fill-ms``): no discriminator; the
loss is taken on the pixels the mask hides::

    estimate, log_var, gate = G(observed, clear, prior, sar)
    loss = |estimate - truth|_1                                   (hidden, valid pixels)
         + nll_weight  * 1/2 [log_var + (estimate.detach() - truth)^2 / exp(log_var)]
         + gate_weight * BCE(gate, thick opacity)

The Gaussian NLL sees the estimate detached, so the variance head learns the estimate's
errors without pulling the estimate itself. Batches mix clear S2-only scenes (SAR zeroed) and
S1+S2 pairs (``sar_fraction`` of the items when the model uses SAR); each step's batch is a
function of (seed, step), and the run state (weights, EMA, optimiser) is checkpointed, so a
resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_path
from .checkpoint import load_model, save_model
from .devices import resolve_device
from .errors import InputError
from .fill_data import TRAINING_LAYER_SOURCES, FillBatch, SceneArrays, _pick, crop_scene, make_batch
from .fill_eval import eval_items, score
from .networks import ModelConfig, build
from .train_state import (
    EMA,
    git_revision,
    item_seed,
    latest_checkpoint,
    load_training_state,
    optimizer_state,
    save_training_state,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- data


def load_training_scenes(root: str, bands: tuple[str, ...], sar_channels: tuple[str, ...]) -> list[SceneArrays]:
    """Clear scenes under ``root``: through :mod:`sarclear.datasets` (every reader, split by
    place) for a data folder, or a pair manifest / SEN12MS-style folder through
    :mod:`sarclear.data` (split column or hash)."""
    path = Path(root)
    if path.is_dir() and not any(path.glob("ROIs*")):
        try:
            from .datasets import load_scenes
        except ImportError:
            load_scenes = None
        if load_scenes is not None:
            out = []
            for s in load_scenes(path, bands=bands, include_cloudy=False):
                ms = torch.from_numpy(np.ascontiguousarray(s.ms, dtype=np.float32))
                sar = None
                if s.sar is not None and sar_channels:
                    sar = torch.from_numpy(np.ascontiguousarray(s.sar[:len(sar_channels)], dtype=np.float32))
                out.append(SceneArrays(s.name, ms, sar, s.split))
            return out
    from .data import find_pairs, load_pair, split_pairs

    pairs = find_pairs(path)
    train, test = split_pairs(pairs, 0.1)
    out = []
    for split, group in (("train", train), ("test", test)):
        for p in group:
            loaded = load_pair(p, bands, sar_channels)
            ms = torch.where(loaded.valid[None], loaded.clear, torch.full_like(loaded.clear, float("nan")))
            sar = loaded.sar if sar_channels else None
            out.append(SceneArrays(p.key, ms, sar, split))
    return out


def load_training_layers(root: str, bands: tuple[str, ...]) -> list:
    """Cloud layers (:mod:`sarclear.cloud_layers`) of the real cloudy train-split scenes of
    :data:`~sarclear.fill_data.TRAINING_LAYER_SOURCES` under the data folder ``root``."""
    from .cloud_layers import scene_layers
    from .datasets import load_scenes

    path = Path(root)
    if not path.is_dir():
        raise InputError(f"real_layer_fraction needs a data folder with real cloudy scenes; {root} is not a folder")
    cloudy = [s for s in load_scenes(path, bands=bands, include_cloudy=True, sources=TRAINING_LAYER_SOURCES)
              if s.cloudy and s.split == "train"]
    layers = [layer for _, layer in scene_layers(cloudy)]
    if not layers:
        raise InputError(f"real_layer_fraction is set but {root} holds no real cloudy train-split scene of "
                         f"{', '.join(TRAINING_LAYER_SOURCES)}; set it to 0 or point the data at them")
    log.info("real cloud layers from %s", ", ".join(layer.source for layer in layers))
    return layers


class ScenePool:
    """Draws a step's batch of clear crops: scenes weighted by the square root of their area,
    SAR pairs with probability ``sar_fraction`` when the model uses SAR."""

    def __init__(self, scenes: list[SceneArrays], crop: int, uses_sar: bool, sar_fraction: float):
        self.scenes = [s for s in scenes if min(s.ms.shape[1:]) >= crop // 2]
        if not self.scenes:
            raise InputError(f"no training scene is at least {crop // 2} px on a side; lower the crop size")
        self.crop = crop
        self.weights = [math.sqrt(s.ms.shape[1] * s.ms.shape[2]) for s in self.scenes]
        self.with_sar = [i for i, s in enumerate(self.scenes) if s.sar is not None] if uses_sar else []
        self.sar_fraction = sar_fraction if self.with_sar else 0.0

    def draw(self, batch: int, n_sar: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(truth (B, C, c, c) with NaN nodata, sar dB (B, n_sar, c, c), has_sar (B,))."""
        ms, sar, has = [], [], []
        for _ in range(batch):
            if self.sar_fraction and float(torch.rand(1, generator=g)) < self.sar_fraction:
                i = self.with_sar[int(torch.randint(0, len(self.with_sar), (1,), generator=g))]
            else:
                i = _pick(self.weights, g)
            m, s = crop_scene(self.scenes[i], self.crop, g)
            if torch.rand(1, generator=g) < 0.5:
                m, s = m.flip(-1), None if s is None else s.flip(-1)
            k = int(torch.randint(0, 4, (1,), generator=g))
            m, s = torch.rot90(m, k, (-2, -1)), None if s is None else torch.rot90(s, k, (-2, -1))
            ms.append(m)
            has.append(s is not None and n_sar > 0)
            sar.append(s[:n_sar] if s is not None and n_sar else m.new_zeros((n_sar, *m.shape[1:])))
        return torch.stack(ms), torch.stack(sar), torch.tensor(has)


class StepBatches(torch.utils.data.Dataset):
    """Step ``i``'s batch (clear crops, clouds, mask, prior) as a function of (seed, i) alone,
    so that a DataLoader's worker processes make the same batches as the training process."""

    def __init__(self, pool: ScenePool, config, model_config: ModelConfig, layers: list):
        self.pool, self.config, self.layers = pool, config, layers
        self.bands, self.n_sar = model_config.bands, len(model_config.sar_channels)
        self.sar_scaling = model_config.sar_scaling() if model_config.uses_sar else None

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> FillBatch:
        c = self.config
        g = torch.Generator().manual_seed(item_seed(c.seed, 31337, step))
        truth, sar, has = self.pool.draw(c.batch_size, self.n_sar, g)
        return make_batch(truth, sar, has, self.bands, self.sar_scaling, g, layers=self.layers,
                          layer_fraction=c.real_layer_fraction, level_jitter=c.level_jitter)


def step_batches(batches: StepBatches, first: int, last: int, workers: int):
    """Batches of steps ``first`` .. ``last - 1`` in order: made here, or by ``workers``
    processes ahead of the training loop (one torch thread each)."""
    if workers <= 0:
        return (batches[i] for i in range(first, last))
    return iter(torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(first, last),
                                            num_workers=workers, prefetch_factor=4,
                                            worker_init_fn=lambda _: torch.set_num_threads(1)))


# --------------------------------------------------------------------------- loss


def fill_loss(G: nn.Module, b, nll_weight: float, gate_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch (module docstring) and its parts."""
    est, log_var, gate = G(b.observed, b.clear, b.prior, b.sar, return_gate=True)
    m = b.hidden
    n = (m.sum() * est.shape[1]).clamp(min=1)
    l1 = ((est - b.truth).abs() * m).sum() / n
    nll = 0.5 * ((log_var + (est.detach() - b.truth) ** 2 * torch.exp(-log_var)) * m).sum() / n
    target = b.thick.clamp(0, 1)
    bce = F.binary_cross_entropy(gate.clamp(1e-5, 1 - 1e-5), target, reduction="none")
    bce = (bce * m).sum() / m.sum().clamp(min=1)
    loss = l1 + nll_weight * nll + gate_weight * bce
    parts = {"loss": loss, "l1": l1, "nll": nll, "gate_bce": bce}
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def init_from(G: nn.Module, path: str) -> None:
    """Start from another gap-fill model's weights (e.g. the MS-only twin for the SAR model):
    tensors of equal shape are copied; the first convolution's extra input channels (SAR)
    start at zero, so the SAR model starts as the twin."""
    src = load_model(path).generator.state_dict()
    own = G.state_dict()
    for k, v in src.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            own[k] = v.clone()
        elif own[k].dim() == 4 and own[k].shape[0] == v.shape[0] and own[k].shape[1] > v.shape[1]:
            w = torch.zeros_like(own[k])
            w[:, :v.shape[1]] = v
            own[k] = w
    G.load_state_dict(own)


# --------------------------------------------------------------------------- the run


def _write_records(out: Path, name: str, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(out / name) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)


def train_fill(config, *, resume: bool = False, progress=None, stop_after_steps: int | None = None,
               scenes: list[SceneArrays] | None = None, layers: list | None = None) -> dict[str, Any]:
    """Train a gap-fill model as ``config`` (a :class:`~sarclear.train_config.TrainConfig`) says;
    returns a summary with the best evaluation and the exported model's path. ``scenes`` and
    ``layers`` (real cloud layers), when given, stand for what would be read from the data folder."""
    from .train_config import TrainConfig

    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    tensors, state = None, None
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        tensors, state = load_training_state(ckpt, torch.device("cpu"))
        config = dataclasses.replace(TrainConfig.from_dict(state["config"]), epochs=config.epochs, out=config.out,
                                     max_minutes=config.max_minutes)
        log.info("resuming from %s (step %d)", ckpt.name, state["step"])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model_config: ModelConfig = config.model_config()
    sar_scaling = model_config.sar_scaling() if model_config.uses_sar else None
    if scenes is None:
        scenes = load_training_scenes(config.data, model_config.bands, model_config.sar_channels)
    train_scenes = [s for s in scenes if s.split == "train"]
    val_scenes = [s for s in scenes if s.split == "val"] or [s for s in scenes if s.split == "test"]
    pool = ScenePool(train_scenes, config.crop, model_config.uses_sar, config.sar_fraction)
    items = eval_items(val_scenes[:config.eval_max_pairs], model_config.bands, sar_scaling,
                       crop=min(config.eval_max_size, 128), seed=config.seed)
    log.info("%d training scenes (%d with SAR), %d validation scenes; model %s", len(pool.scenes),
             len(pool.with_sar), len(val_scenes), model_config.preset)
    if config.real_layer_fraction <= 0:
        layers = []
    elif layers is None:
        layers = load_training_layers(config.data, model_config.bands)

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    G, _ = build(model_config)
    if config.init and state is None:
        init_from(G, config.init)
    G.to(device)
    opt = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    ema = EMA(G, config.ema_decay)
    step, history, losses = 0, [], []
    if state is not None:
        G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("EMA.")})
        opt.load_state_dict(optimizer_state("opt_g", tensors, state["opt_g"], device))
        step, history, losses = state["step"], state.get("history", []), state.get("losses", [])
        torch.set_rng_state(tensors["rng.cpu"])
    steps_per_epoch = max(1, (config.samples_per_epoch or 1024) // config.batch_size)
    total = steps_per_epoch * config.epochs

    def checkpoint() -> None:
        save_training_state(ckpt_dir / f"step-{step:09d}.safetensors", G=G, D=None, ema=ema, opt_g=opt, opt_d=None,
                            state={"step": step, "epoch": step // steps_per_epoch, "batch_in_epoch": 0,
                                   "config": dataclasses.asdict(config), "history": history, "losses": losses,
                                   "git_revision": git_revision(), "model_config": model_config.to_dict()})
        for old in sorted(ckpt_dir.glob("step-*.safetensors"))[:-config.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def evaluate() -> None:
        if not items:
            return
        s = score(ema.model, items)
        row = {"step": step, "epoch": round(step / steps_per_epoch, 4), **s.row()}
        if all(row["model_all"] < r["model_all"] for r in history):  # the best so far: keep it as a model
            save_model(out / "best.safetensors", ema.model, model_config, info_now(row))
        history.append(row)
        ema.model.train()
        log.info("step %d: under-mask RMSE model %.4f, normalized convolution %.4f, mean %.4f; 90%% coverage %.2f",
                 step, s.rmse["model"]["all"], s.rmse["nc"]["all"], s.rmse["mean"]["all"], s.coverage90)
        _write_records(out, "history.csv", history)
        _write_records(out, "losses.csv", losses)
        from .figures import fill_curves_figure

        fill_curves_figure(out / "curves.png", losses, history, title=f"{model_config.preset} training")

    def info_now(validation: dict) -> dict:
        return {"training": dataclasses.asdict(config), "git_revision": git_revision(), "step": step,
                "validation": validation, "scenes": {"train": [s.name for s in pool.scenes],
                                                     "val": [s.name for s in val_scenes]}}

    def export() -> Path:
        return save_model(out / "model.safetensors", ema.model, model_config, info_now(history[-1] if history else {}))

    t0, start_step = time.perf_counter(), step
    G.train()
    batches = step_batches(StepBatches(pool, config, model_config, layers), step, total, config.workers)
    log.info("training on %s in fp32, batches made by %s", device,
             f"{config.workers} worker processes" if config.workers > 0 else "the training process")
    if config.compile or config.precision == "bf16" or config.channels_last:
        log.warning("compile, precision and channels_last apply to the GAN presets; gap-fill training "
                    "ignores them")
    while step < total:
        b = next(batches).to(device)
        loss, parts = fill_loss(G, b, config.nll_weight, config.gate_weight)
        if not math.isfinite(parts["loss"]):
            raise RuntimeError(f"training diverged at step {step + 1} (loss {parts['loss']}); lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(G.parameters(), 1.0)
        opt.step()
        ema.update(G)
        step += 1
        if step % 10 == 0 or step == 1:
            losses.append({"step": step, **{k: round(v, 6) for k, v in parts.items()}})
        elapsed = time.perf_counter() - t0
        if progress:
            progress(step, total, {"epoch": step / steps_per_epoch, **parts,
                                   "eta_s": elapsed / max(step - start_step, 1) * (total - step)})
        timed_out = config.max_minutes and elapsed > 60 * config.max_minutes
        stop = (stop_after_steps is not None and step >= stop_after_steps) or timed_out or step == total
        if step % steps_per_epoch == 0 or stop:
            evaluate()
            checkpoint()
            export()
        elif config.checkpoint_every and step % config.checkpoint_every == 0:
            checkpoint()
        if stop:
            if timed_out:
                log.info("time limit of %.3g min reached at step %d of %d", config.max_minutes, step, total)
            break
    best = min(history, key=lambda r: r.get("model_all", math.inf)) if history else {}
    return {"step": step, "out": str(out), "model": str(out / "model.safetensors"), "history": history,
            "best": best, "seconds": time.perf_counter() - t0, "steps_done_now": step - start_step,
            "best_checkpoint": str(out / "best.safetensors") if (out / "best.safetensors").is_file() else ""}
