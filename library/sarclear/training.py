"""The SAR-Opt-cGAN trainer: pix2pix updates (paper eqs. 1-3), EMA generator, evaluation
every epoch, atomic checkpoints with exact resume, DistributedDataParallel under torchrun.

One iteration, on a batch of clear crops with their SAR::

    cloudy = clouds(clear)                     # synthetic, on the device (or the real cloudy image)
    fake   = G(cloudy, sar)
    L_D    = 1/2 [BCE(D(x, clear), 1) + BCE(D(x, fake.detach()), 0)]      x = (cloudy, sar)
    L_G    = BCE(D(x, fake), 1) + lambda * |fake - clear|_1                 lambda = 100
    ema    = 0.99 ema + 0.01 G                  # the EMA weights are what gets exported

Defaults are the paper's: Adam (beta1 0.5, as pix2pix), dropout 0.4, EMA decay 0.99,
lambda 100, 5 epochs, and learning rate 2e-4. The paper prints "2^-4" (0.0625), which would
make Adam diverge on a pix2pix network; 2e-4 is pix2pix's rate, of which "2^-4" is almost
certainly a typesetting slip, so 2e-4 is used.

Determinism: the data order of epoch ``e`` is a permutation seeded by (seed, e); crop
positions, augmentations and clouds are seeded by (seed, epoch, step/index); the global
RNG (dropout) is saved in every checkpoint. A run resumed from any checkpoint therefore
reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import save_model
from .clouds import CloudConfig, CloudField
from .data import PairDataset, find_pairs, load_pair, split_pairs
from .devices import resolve_device
from .errors import InputError
from .gan_step import gan_update
from .networks import build, preset
from .scaling import reflectance_to_network

# the run state and evaluation live in their own modules; these names stay importable from here
from .train_config import _ARCHITECTURE, _BOUNDS, TrainConfig, read_options, resumed_config  # noqa: F401
from .train_eval import centre as _centre  # noqa: F401
from .train_eval import evaluate_pairs
from .train_eval import write_history as _write_history
from .train_state import (  # noqa: F401
    EMA,
    STATE_KEY,
    item_seed,
    latest_checkpoint,
    load_training_state,
    save_training_state,
    weights_digest,
)
from .train_state import git_revision as _git_revision
from .train_state import optimizer_state as _optimizer_state

log = logging.getLogger(__name__)

_LOSS_EVERY = 10  # steps between reading the losses back from the device

#: progress(step, total_steps, stats)
TrainProgressFn = Callable[[int, int, dict], None]


def augment(tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """The same random flip and 90-degree rotation per sample on every tensor (B, C, H, W):
    one of the 8 symmetries of the square each, applied group-wise (at most 8 ops a tensor)."""
    b = tensors[0].shape[0]
    k = torch.randint(0, 4, (b,), generator=generator)
    flip = torch.randint(0, 2, (b,), generator=generator)
    code = (k * 2 + flip).tolist()
    out = []
    for t in tensors:
        result = torch.empty_like(t)
        for c in set(code):
            idx = torch.tensor([i for i, v in enumerate(code) if v == c], device=t.device)
            x = torch.rot90(t.index_select(0, idx), c // 2, dims=(-2, -1))
            result[idx] = x.flip(-1) if c % 2 else x
        out.append(result)
    return out



# --------------------------------------------------------------------------- the run


def _distributed() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[int]:
    """This rank's sample indices for the epoch: a seeded permutation split among ranks,
    trimmed so every rank runs the same number of full batches."""
    g = torch.Generator().manual_seed(item_seed(seed, epoch))
    order = torch.randperm(n, generator=g).tolist()
    per_rank = (n // world // batch) * batch
    if per_rank == 0:
        raise InputError(f"{n} samples per epoch are too few for {world} process(es) x batch {batch}")
    return order[rank::world][:per_rank]



def train(config: TrainConfig, *, resume: bool = False, progress: TrainProgressFn | None = None,
          stop_after_steps: int | None = None, compare: dict[str, list[dict]] | None = None,
          overrides: Collection[str] = ()) -> dict:
    """Train a model as ``config`` says; returns a summary (final metrics, paths, digest).

    ``resume``: continue from the newest checkpoint in ``config.out`` with the run's own
    settings, except those named in ``overrides`` (see :func:`resumed_config`).
    ``stop_after_steps``: stop (after checkpointing) once this many steps are done, for
    tests and time-boxed jobs. ``compare``: other runs' histories to draw in the curves.
    """
    if preset(config.preset).kind == "gapfill":
        from .fill_training import train_fill

        return train_fill(config, resume=resume, progress=progress, stop_after_steps=stop_after_steps)
    rank, world, local_rank = _distributed()
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    tensors, state = None, None
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            log.warning("resume: no checkpoint in %s; starting from scratch", ckpt_dir)
        else:
            tensors, state = load_training_state(ckpt, torch.device("cpu"))
            config = resumed_config(TrainConfig.from_dict(state["config"]), config, overrides)
            log.info("resuming from %s (step %d of a %d-epoch run)", ckpt.name, state["step"], config.epochs)

    device = resolve_device(config.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        initialised_here = not dist.is_initialized()
        if initialised_here:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    model_config = config.model_config()
    cloud_config = CloudConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.clouds.items()})

    pairs = find_pairs(config.data)
    train_pairs, test_pairs = split_pairs(pairs, config.test_fraction)
    if not train_pairs:
        raise InputError(f"{config.data}: every pair is in the test split; lower test_fraction")
    cache = config.cache if config.cache is not None else len(pairs) <= 2000
    length = config.samples_per_epoch or len(train_pairs)
    dataset = PairDataset(train_pairs, model_config.bands, model_config.sar_channels, config.crop,
                          length=length, seed=config.seed, cache=cache)
    eval_sets = {"train": train_pairs[:config.eval_max_pairs], "test": test_pairs[:config.eval_max_pairs]}
    eval_loaded = {k: [dataset._cache[i] if cache and k == "train" else load_pair(p, model_config.bands,
                                                                                   model_config.sar_channels)
                       for i, p in enumerate(v)] for k, v in eval_sets.items()}
    if rank == 0:
        log.info("%d training pairs, %d test pairs; %d crops of %d px per epoch; model %s on %s",
                 len(train_pairs), len(test_pairs), length, config.crop, model_config.preset, device)

    torch.manual_seed(config.seed)
    G, D = build(model_config, discriminator=True)
    G.to(device)
    D.to(device)
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
    if channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), **fused)
    ema = EMA(G, config.ema_decay)
    step, start_epoch, skip_batches, history, loss_rows = 0, 0, 0, [], []
    if state is not None:
        G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
        D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("EMA.")})
        opt_g.load_state_dict(_optimizer_state("opt_g", tensors, state["opt_g"], device))
        opt_d.load_state_dict(_optimizer_state("opt_d", tensors, state["opt_d"], device))
        torch.set_rng_state(tensors["rng.cpu"])
        cuda_states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
        if cuda_states and device.type == "cuda":
            torch.cuda.set_rng_state_all(cuda_states)
        step, start_epoch, skip_batches = state["step"], state["epoch"], state["batch_in_epoch"]
        history, loss_rows = state.get("history", []), state.get("losses", [])
    ema.model.to(device)

    G_train, D_train = G, D
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_train = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D_train = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    if config.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)

    sar_scaling = model_config.sar_scaling() if model_config.uses_sar else None
    steps_per_epoch = len(_epoch_order(length, config.seed, 0, rank, world, config.batch_size)) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    writer = None
    if config.tensorboard and rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))

    def checkpoint(epoch: int, batch_in_epoch: int) -> None:
        if rank != 0:
            return
        save_training_state(ckpt_dir / f"step-{step:09d}.safetensors", G=G, D=D, ema=ema, opt_g=opt_g, opt_d=opt_d,
                            state={"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                                   "config": dataclasses.asdict(config), "history": history, "losses": loss_rows,
                                   "git_revision": _git_revision(), "model_config": model_config.to_dict()})
        for old in sorted(ckpt_dir.glob("step-*.safetensors"))[:-config.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def evaluate(epoch_float: float) -> None:
        if rank != 0:
            return
        for split, loaded in eval_loaded.items():
            if not loaded:
                continue
            r = evaluate_pairs(ema.model, loaded, model_config, cloud_config, seed=config.seed, split=split,
                               device=device, precision=config.precision, real_clouds=config.real_clouds,
                               max_size=config.eval_max_size)
            rec = {"step": step, "epoch": round(epoch_float, 4), "split": split,
                   **{k: r["model"][k] for k in ("rmse", "sam_deg", "mae", "psnr", "ssim", "pixels")},
                   "cloudy_rmse": r["cloudy"]["rmse"], "cloudy_sam_deg": r["cloudy"]["sam_deg"]}
            scored = [h["rmse"] for h in history if h["split"] == split]
            if split == ("test" if eval_loaded["test"] else "train") and all(rec["rmse"] < v for v in scored):
                save_model(out / "best.safetensors", ema.model, model_config,  # the best so far, as a model
                           {"training": dataclasses.asdict(config), "git_revision": _git_revision(), "step": step,
                            "history": [rec]})
            history.append(rec)
            log.info("epoch %.2f %s: RMSE %.4f SAM %.2f deg (cloudy input: RMSE %.4f SAM %.2f deg)",
                     epoch_float, split, rec["rmse"], rec["sam_deg"], rec["cloudy_rmse"], rec["cloudy_sam_deg"])
            if writer is not None:
                for k in ("rmse", "sam_deg", "ssim"):
                    writer.add_scalar(f"{split}/{k}", rec[k], step)
        _write_history(out, history, loss_rows)
        from .figures import training_curves_figure

        name = "Opt-cGAN (MS only)" if not model_config.uses_sar else "SAR-Opt-cGAN"
        training_curves_figure(out / "curves.png", {name: history, **(compare or {})},
                               title=f"{model_config.preset}: RMSE and SAM per epoch")

    def export() -> Path:
        info = {"training": dataclasses.asdict(config), "git_revision": _git_revision(), "step": step,
                "history": history[-2:] if history else []}
        return save_model(out / "model.safetensors", ema.model, model_config, info)

    # the loader gets its own generator: creating it must not draw from the global RNG, or a
    # resumed run (which creates it mid-epoch) would drift from an uninterrupted one
    loader_kwargs = {"batch_size": config.batch_size, "num_workers": config.workers, "drop_last": True,
                     "pin_memory": device.type == "cuda", "generator": torch.Generator().manual_seed(config.seed)}
    on_device = config.data_on_device if config.data_on_device is not None else (device.type == "cuda" and cache)
    if on_device:
        if not cache:
            raise InputError("data_on_device needs the pairs cached in memory (cache: true)")
        dataset.to(device)
    t_start, samples_seen = time.perf_counter(), 0
    stopped = False
    losses = {"loss_g": float("nan"), "loss_d": float("nan"), "l1": float("nan")}
    for epoch in range(start_epoch, config.epochs):
        dataset.set_epoch(epoch)
        order = _epoch_order(length, config.seed, epoch, rank, world, config.batch_size)
        order = order[skip_batches * config.batch_size:]
        if on_device:  # crops cut on the device, in the same order as the DataLoader would give
            loader = (dataset.batch(order[i:i + config.batch_size]) for i in range(0, len(order), config.batch_size))
        else:
            loader = torch.utils.data.DataLoader(dataset, sampler=order, **loader_kwargs)
        G_train.train()
        D_train.train()
        for b, batch in enumerate(loader, start=skip_batches):
            g = torch.Generator().manual_seed(item_seed(config.seed, epoch, b, rank))
            clear = batch["clear"].to(device, non_blocking=True)
            sar = batch["sar"].to(device, non_blocking=True)
            valid = batch["valid"].to(device, non_blocking=True)[:, None].float()
            real_cloudy = batch["cloudy"].to(device, non_blocking=True)
            if config.augment:
                clear, sar, valid, real_cloudy = augment([clear, sar, valid, real_cloudy], g)
            bsz, _, h, w = clear.shape
            field_ = CloudField(bsz, h, w, cloud_config, seed=g, device=device)
            cloudy = field_.apply(clear, model_config.bands).cloudy
            if config.real_clouds:
                use_real = batch["has_cloudy"].to(device)[:, None, None, None]
                cloudy = torch.where(use_real, real_cloudy, cloudy)
            y = reflectance_to_network(clear)
            x_ms = reflectance_to_network(cloudy)
            x_sar = sar_scaling.to_network(sar) if sar_scaling else x_ms[:, :0]
            if channels_last:
                y, x_ms, x_sar = (t.contiguous(memory_format=torch.channels_last) for t in (y, x_ms, x_sar))
            update = gan_update(G_train, D_train, D, opt_g, opt_d, x_ms, x_sar, y, valid, l1_weight=config.l1_weight,
                             device=device, precision=config.precision)
            ema.update(G)
            step += 1
            samples_seen += bsz * world
            last_of_epoch = b + 1 == steps_per_epoch
            if step % _LOSS_EVERY == 0 or last_of_epoch or step <= _LOSS_EVERY:  # reading waits for the GPU
                losses = {"loss_g": update.loss_g.item(), "loss_d": update.loss_d.item(), "l1": update.l1.item()}
                loss_rows.append({"step": step, **{k: round(v, 6) for k, v in losses.items()}})
                if not math.isfinite(losses["loss_g"]):
                    raise RuntimeError(f"training diverged at step {step} (generator loss {losses['loss_g']}); "
                                       "lower the learning rate")
                if writer is not None:
                    for k, v in losses.items():
                        writer.add_scalar(f"loss/{k}", v, step)
            if progress and rank == 0:
                elapsed = time.perf_counter() - t_start
                progress(step, total_steps, {"epoch": epoch + 1, **losses,
                                             "samples_per_s": samples_seen / max(elapsed, 1e-9)})
            if config.eval_every and step % config.eval_every == 0 and not last_of_epoch:
                evaluate(epoch + (b + 1) / steps_per_epoch)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and not last_of_epoch:
                checkpoint(epoch, b + 1)
            if stop_after_steps is not None and step >= stop_after_steps and not last_of_epoch:
                checkpoint(epoch, b + 1)
                stopped = True
                break
        if stopped:
            break
        skip_batches = 0
        evaluate(epoch + 1)
        checkpoint(epoch + 1, 0)
        if rank == 0:
            export()
        if stop_after_steps is not None and step >= stop_after_steps:
            break
    if writer is not None:
        writer.close()
    if world > 1:  # batch-norm statistics are local between DDP's per-forward broadcasts: take rank 0's
        for buf in G.buffers():
            dist.broadcast(buf, src=0)
        for buf in D.buffers():
            dist.broadcast(buf, src=0)
        dist.barrier()
    digest = weights_digest(G)
    if world > 1 and initialised_here:
        dist.destroy_process_group()
    scored = [h for h in history if h["split"] == ("test" if eval_loaded["test"] else "train")]
    best = min(scored, key=lambda h: h["rmse"]) if scored else {}
    summary = {"step": step, "out": str(out), "generator_sha256": digest, "history": history, "best": best,
               "best_checkpoint": str(out / "best.safetensors") if best and rank == 0 else "",
               "model": str(out / "model.safetensors"), "samples_per_s": samples_seen / max(
                   time.perf_counter() - t_start, 1e-9), "rank": rank, "world_size": world}
    return summary
