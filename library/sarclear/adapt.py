"""Scene-adaptive fitting: fine-tune a copy of a gap-fill model on the scene it is asked to
clean, before declouding it.

The scene's own clear pixels are the training truth: crops of the scene get synthetic clouds
(thick, haze, thick with shadow, as in training) drawn over them, and the model learns to
restore them from their surroundings and the scene's SAR. The scene's real clouds enter as
hidden pixels with no truth (they are context, never a target). Deep internal learning for
cloud inpainting (Remote Sensing 2022, 14(6), 1342) learns from the affected scene alone;
here the same idea runs on top of a pretrained model, for a bounded time.

The run is bounded by ``AdaptOptions.seconds`` (or a fixed ``steps`` count, for reproducible
comparisons) and every draw is seeded, so the same options give the same model. The fit is
checked before it is used: on a few seeded batches of synthetic clouds drawn over the scene's
clear pixels, set aside before fitting (drawn from the same clear pixels, with other seeds),
the fitted copy must have a lower error than the model as given; otherwise the model is used
as given, and the run says so.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .callbacks import CancelFn, ProgressFn
from .checkpoint import Model
from .errors import Cancelled, InputError
from .fill_data import SceneArrays, make_batch
from .fill_training import ScenePool, fill_loss
from .train_state import item_seed

log = logging.getLogger(__name__)



@dataclass
class AdaptOptions:
    """How long and on what the copy is fine-tuned."""

    seconds: float = 180.0        # wall-time budget (ignored when ``steps`` is set)
    steps: int | None = None      # a fixed number of steps instead of a time budget
    crop: int = 96                # training crop size, pixels (a multiple of 8)
    batch: int = 4                # crops per step
    seed: int = 0
    lr: float = 2e-4              # Adam learning rate (a tenth of pretraining's: stay near the prior)
    nll_weight: float = 0.2
    gate_weight: float = 0.1
    min_clear_fraction: float = 0.05  # below this the scene has too little truth to learn from
    fill_buffer: int = 0          # the prior's source buffer, as decloud's (fill.fill_sources)
    check_batches: int = 4        # seeded batches of held-out synthetic clouds: the fit is kept only if it
                                  # lowers the error on them (else the model is used as trained)


#: The bundled model made for fitting: the classical fill until fitted, then SAR-guided.
SCENE_MODEL = "sarclear-fill-scene.safetensors"


def fit_problem(config, info: dict | None = None) -> str | None:
    """Why a model (its ``ModelConfig`` and file info) cannot be fitted to a scene; None if it
    can. Only mask-aware models learn from a scene, and a fixed classical fill (info
    ``"fixed": true``) has nothing to learn."""
    if config.kind != "gapfill":
        return (f"scene-adaptive fitting needs a mask-aware gap-fill model; {config.preset} is a {config.kind} "
                f"model (choose {SCENE_MODEL} or sarclear-fill.safetensors)")
    if (info or {}).get("fixed"):
        return (f"{config.preset} is a fixed classical fill with nothing to learn from a scene; {SCENE_MODEL} "
                "starts as the same fill and learns from the scene's clear pixels and SAR")
    return None


def _check(model: Model) -> None:
    problem = fit_problem(model.config, model.info)
    if problem:
        raise InputError(problem, input="model", option="adapt")


def _scene(model: Model, ms: np.ndarray, sar: np.ndarray | None, clear: np.ndarray) -> SceneArrays:
    c = len(model.config.bands)
    if ms.ndim != 3 or ms.shape[0] != c:
        raise InputError(f"the scene has shape {ms.shape}; the model expects ({c}, rows, cols)")
    if clear.shape != ms.shape[1:]:
        raise InputError(f"the clear mask is {clear.shape}, the scene {ms.shape[1:]}: they must match")
    truth = np.where(clear[None] & np.isfinite(ms).all(0)[None], ms, np.nan).astype(np.float32)
    sar_t = None
    if model.config.uses_sar:
        if sar is None or sar.shape[1:] != ms.shape[1:]:
            raise InputError("this model uses SAR: give the scene's SAR on the optical grid")
        sar_t = torch.from_numpy(np.nan_to_num(sar[:len(model.config.sar_channels)]).astype(np.float32))
    return SceneArrays("scene", torch.from_numpy(truth), sar_t)


def _batch(pool: ScenePool, model: Model, options: AdaptOptions, device: torch.device, seed: int):
    """One seeded batch of the scene's clear crops with synthetic clouds drawn over them."""
    g = torch.Generator().manual_seed(seed)
    truth, sar, has = pool.draw(options.batch, len(model.config.sar_channels), g)
    scaling = model.config.sar_scaling() if model.config.uses_sar else None
    return make_batch(truth, sar, has, model.config.bands, scaling, g, fill_buffer=options.fill_buffer).to(device)


def _held_out_error(G: nn.Module, batches: list) -> float:
    """Mean absolute error under the synthetic clouds of ``batches``, as the model is used
    (evaluation mode)."""
    was_training = G.training
    G.eval()
    total = count = 0.0
    with torch.no_grad():
        for b in batches:
            est = G(b.observed, b.clear, b.prior, b.sar)[0]
            total += float(((est - b.truth).abs() * b.hidden).sum())
            count += float(b.hidden.sum()) * est.shape[1]
    G.train(was_training)
    return total / max(count, 1.0)


def _step_fn(G: nn.Module, pool: ScenePool, model: Model, opt: torch.optim.Optimizer, options: AdaptOptions,
             device: torch.device):
    def step(i: int) -> float:
        b = _batch(pool, model, options, device, item_seed(options.seed, 2718, i))
        loss, parts = fill_loss(G, b, options.nll_weight, options.gate_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(G.parameters(), 1.0)
        opt.step()
        return parts["l1"]

    return step


def _setup(model: Model, scene: SceneArrays, options: AdaptOptions, device: torch.device):
    G = copy.deepcopy(model.generator).to(device).train()
    pool = ScenePool([scene], min(options.crop, *scene.ms.shape[1:]) // 8 * 8, model.config.uses_sar, 1.0)
    opt = torch.optim.Adam(G.parameters(), lr=options.lr)
    return G, pool, _step_fn(G, pool, model, opt, options, device)


def estimate_seconds(model: Model, height: int, width: int, options: AdaptOptions,
                     device: str | torch.device = "cpu") -> float:
    """Wall time :func:`adapt_model` will take on a ``height x width`` scene sample: the time
    budget, or for a fixed ``steps`` count, two timed steps on a throwaway copy."""
    _check(model)
    if options.steps is None:
        return float(options.seconds)
    device = torch.device(device)
    size = max(32, min(options.crop, height, width) // 8 * 8)
    rng = np.random.default_rng(0)
    ms = rng.uniform(0.02, 0.3, (len(model.config.bands), size, size)).astype(np.float32)
    sar = rng.uniform(-25, -5, (len(model.config.sar_channels), size, size)).astype(np.float32) \
        if model.config.uses_sar else None
    _, _, step = _setup(model, _scene(model, ms, sar, np.ones((size, size), bool)), options, device)
    step(0)  # warm-up
    t = time.perf_counter()
    step(1)
    return (time.perf_counter() - t) * options.steps


def adapt_model(model: Model, ms: np.ndarray, sar: np.ndarray | None, clear: np.ndarray,
                options: AdaptOptions | None = None, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None, device: str | torch.device | None = None) -> Model:
    """A copy of ``model`` fine-tuned on the scene: ``ms`` (C, H, W) reflectance (NaN: no
    data), ``sar`` (S, H, W) dB on the same grid (None for an MS-only model), ``clear``
    (H, W) bool, True where the pixel is seen clearly. The input model is not changed."""
    _check(model)
    options = options or AdaptOptions()
    scene = _scene(model, ms, sar, clear)
    fraction = float(np.isfinite(scene.ms.numpy()).all(0).mean())
    if fraction < options.min_clear_fraction:
        raise InputError(f"only {100 * fraction:.1f} % of the scene is clear: too little to adapt to "
                         f"(at least {100 * options.min_clear_fraction:.0f} % is needed)")
    if device is None:
        device = next(model.generator.parameters()).device
    device = torch.device(device)
    G, pool, step = _setup(model, scene, options, device)
    held_out = [_batch(pool, model, options, device, item_seed(options.seed, 3141, k))
                for k in range(options.check_batches)]
    before = _held_out_error(G, held_out)
    t0, i, l1 = time.perf_counter(), 0, float("nan")
    limit = options.steps

    def report() -> None:  # progress of steps done, or of seconds spent
        if progress is None:
            return
        if limit is not None:
            progress(i, limit, "steps")
        else:
            progress(min(int(time.perf_counter() - t0), int(options.seconds)), int(options.seconds), "s")

    report()  # at 0 first: the stage shows at once, and a first step can take seconds
    while True:
        if cancel is not None and cancel():
            raise Cancelled("scene-adaptive fitting cancelled")
        elapsed = time.perf_counter() - t0
        if (limit is not None and i >= limit) or (limit is None and elapsed >= options.seconds):
            break
        l1 = step(i)
        i += 1
        report()
    after = _held_out_error(G, held_out)
    kept = after < before
    log.info("adapted the model to the scene: %d steps in %.0f s (last L1 %.4f); error on held-out synthetic clouds "
             "%.4f before, %.4f after: %s", i, time.perf_counter() - t0, l1, before, after,
             "the fitted model is used" if kept else "the model is used as trained")
    record = {"steps": i, "seconds": round(time.perf_counter() - t0, 1), "seed": options.seed,
              "clear_fraction": round(fraction, 4), "held_out_error_before": round(before, 5),
              "held_out_error_after": round(after, 5), "kept": "fitted" if kept else "as trained"}
    if not kept:  # fitting did not help on this scene's own held-out clouds: change nothing
        return Model(model.generator, model.config, {**model.info, "adapted": record}, model.path)
    G.eval()
    return Model(G, model.config, {**model.info, "adapted": record}, model.path)
