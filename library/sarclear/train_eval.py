"""Evaluation of the cGAN generator during training: whole held-out pairs with seeded clouds
(or their real cloudy image), and the history files it appends to."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_path
from .clouds import CloudConfig, CloudField
from .data import Loaded
from .devices import autocast
from .metrics import MetricAccumulator
from .networks import ModelConfig
from .scaling import reflectance_to_network
from .train_state import item_seed


def pad_to(t: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return t
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    return F.pad(t, (0, pw, 0, ph), mode=mode)


def centre(t: torch.Tensor, size: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return t[..., top:top + size, left:left + size]


@torch.no_grad()
def evaluate_pairs(generator: nn.Module, pairs: list[Loaded], model_config: ModelConfig, cloud_config: CloudConfig,
                   *, seed: int, split: str, device: torch.device, precision: str = "auto",
                   real_clouds: bool = True, max_size: int = 1024) -> dict[str, dict]:
    """RMSE, SAM, ... of the generator's reconstructions, and of the cloudy inputs
    themselves, on whole pairs with clouds fixed by (seed, split, pair index)."""
    generator.eval()
    bands = model_config.bands
    acc_model, acc_cloudy = MetricAccumulator(bands), MetricAccumulator(bands)
    sar_scaling = model_config.sar_scaling() if model_config.uses_sar else None
    for i, pair in enumerate(pairs):
        clear = centre(pair.clear, max_size).to(device)[None]
        sar = centre(pair.sar, max_size).to(device)[None]
        valid = centre(pair.valid, max_size).to(device)[None]
        if real_clouds and pair.cloudy is not None:
            cloudy = centre(pair.cloudy, max_size).to(device)[None]
        else:
            h, w = clear.shape[-2:]
            field_ = CloudField(1, h, w, cloud_config, seed=item_seed(seed, 7919, i, split == "test"), device=device)
            cloudy = field_.apply(clear, bands).cloudy
        clear, cloudy = torch.nan_to_num(clear), torch.nan_to_num(cloudy)
        h, w = clear.shape[-2:]
        x_ms = pad_to(reflectance_to_network(cloudy), model_config.size_multiple)
        x_sar = pad_to(sar_scaling.to_network(torch.nan_to_num(sar)), model_config.size_multiple) \
            if sar_scaling else x_ms[:, :0]
        with autocast(device, precision):
            fake = generator(x_ms, x_sar)
        pred = ((fake.float() + 1) / 2)[..., :h, :w]
        acc_model.update(pred[0].cpu(), clear[0].cpu(), valid[0].cpu())
        acc_cloudy.update(cloudy[0].cpu(), clear[0].cpu(), valid[0].cpu())
    return {"model": acc_model.result(), "cloudy": acc_cloudy.result()}


def write_history(out: Path, history: list[dict], losses: list[dict] | None = None) -> None:
    """history.csv and history.json (evaluations), and losses.csv (losses every few steps)."""
    keys = ["step", "epoch", "split", "rmse", "sam_deg", "mae", "psnr", "ssim", "cloudy_rmse", "cloudy_sam_deg",
            "pixels"]
    with atomic_path(out / "history.csv") as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
    with atomic_path(out / "history.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    if losses:
        with atomic_path(out / "losses.csv") as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, list(losses[0]))
            w.writeheader()
            w.writerows(losses)
