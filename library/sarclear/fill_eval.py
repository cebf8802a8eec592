"""Scoring the gap-fill generator on held-out scenes with seeded synthetic clouds: under-mask
RMSE against normalized-convolution fill, mean fill and the cloudy input, per cloud kind,
and the calibration of its predicted variance (share of true values inside the 90 %
interval); and the calibration of the classical fill's own uncertainty from its spread.

The evaluation set is fixed by (seed, scene index, kind): the same crops and clouds on every
call, so numbers from different runs and steps compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .fill import fill_variance, mean_fill
from .fill_data import KINDS, FillBatch, SceneArrays, make_batch
from .train_state import item_seed

Z90 = 1.6448536269514722  # two-sided 90 % interval of a normal: +- 1.645 sigma


@dataclass
class EvalItem:
    """One fixed held-out example: a scene crop with a cloud of a given kind."""

    scene: str
    kind: str
    batch: FillBatch


def eval_items(scenes: Sequence[SceneArrays], bands: Sequence[str], sar_scaling, *, crop: int = 128,
               seed: int = 0, kinds: Sequence[str] = KINDS, per_scene: int = 1) -> list[EvalItem]:
    """Fixed crops (centre, then evenly spaced) of each scene with one cloud per kind."""
    items = []
    for si, scene in enumerate(scenes):
        _, h, w = scene.ms.shape
        size = min(crop, h, w) // 8 * 8
        if size < 32:
            continue
        for k in range(per_scene):
            frac = (k + 1) / (per_scene + 1)
            top, left = round((h - size) * frac), round((w - size) * frac)
            ms = scene.ms[None, :, top:top + size, left:left + size]
            has = scene.sar is not None
            sar = scene.sar[None, :, top:top + size, left:left + size] if has else ms[:, :0]
            for ki, kind in enumerate(kinds):
                g = torch.Generator().manual_seed(item_seed(seed, 104729, si, k, ki))
                b = make_batch(ms, sar, torch.tensor([has]), bands, sar_scaling if has else None, g, [kind])
                if b.sar.shape[1] == 0 and sar_scaling is not None:  # SAR model on an MS-only scene
                    b.sar = torch.zeros(1, len(sar_scaling.channels), size, size)
                items.append(EvalItem(scene.name, kind, b))
    return items


@dataclass
class _Sums:
    sq: float = 0.0
    n: int = 0

    def add(self, err: Tensor, mask: Tensor) -> None:
        m = mask.expand_as(err) > 0
        self.sq += float((err[m].double() ** 2).sum())
        self.n += int(m.sum())

    @property
    def rmse(self) -> float:
        return math.sqrt(self.sq / self.n) if self.n else float("nan")


@dataclass
class FillScores:
    """Under-mask RMSE per method and kind, and the 90 % coverage of the model's interval."""

    rmse: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> kind|"all" -> RMSE
    coverage90: float = float("nan")
    pixels: int = 0

    def row(self) -> dict[str, float]:
        """Flat record for a history CSV."""
        out = {f"{m}_{k}": v for m, d in self.rmse.items() for k, v in d.items()}
        return {**out, "coverage90": self.coverage90, "pixels": self.pixels}


@torch.no_grad()
def predict(generator: nn.Module, b: FillBatch) -> tuple[Tensor, Tensor]:
    """(estimate, log_var) of the generator for a batch, with the caller's rule applied:
    observed pixels kept where clear."""
    generator.eval()
    est, log_var = generator(b.observed, b.clear, b.prior, b.sar)
    return torch.where(b.clear > 0, b.observed, est), log_var


@torch.no_grad()
def score(generator: nn.Module | None, items: Sequence[EvalItem],
          sigmas: list[tuple[Tensor, Tensor]] | None = None) -> FillScores:
    """RMSE under the mask (hidden and valid pixels) for the generator (if given) and the
    baselines; ``sigmas`` collects (|error|, sigma) of the model's hidden pixels."""
    sums: dict[str, dict[str, _Sums]] = {}
    inside, total = 0, 0
    device = next(generator.parameters()).device if generator is not None else torch.device("cpu")
    for it in items:
        b = it.batch.to(device)
        m = b.hidden
        methods = {"cloudy": b.observed, "mean": mean_fill(b.observed, b.clear), "nc": b.prior}
        if generator is not None:
            est, log_var = predict(generator, b)
            methods["model"] = est
            err = (est - b.truth).abs()
            sigma = torch.exp(0.5 * log_var)
            mm = m.expand_as(err) > 0
            inside += int((err[mm] <= Z90 * sigma[mm]).sum())
            total += int(mm.sum())
            if sigmas is not None:
                sigmas.append((err[mm].float(), sigma[mm].float()))
        for name, pred in methods.items():
            for kind in (it.kind, "all"):
                sums.setdefault(name, {}).setdefault(kind, _Sums()).add(pred - b.truth, m)
    out = FillScores({n: {k: s.rmse for k, s in d.items()} for n, d in sums.items()},
                     inside / total if total else float("nan"),
                     int(sum(float(it.batch.hidden.sum()) for it in items)))
    return out


def fit_fill_sigma(errors: Tensor, spreads: Tensor, hazes: Tensor | None = None) -> tuple[float, ...]:
    """(gain, floor), or with ``hazes`` (gain, floor, haze_gain), of
    :func:`sarclear.fill.fill_variance` that maximise the Gaussian likelihood of ``errors``
    (absolute errors of a classical fill, flattened; ``spreads``: its spread at the same
    band-pixels; ``hazes``: the :func:`sarclear.fill.haze_excess` of each one's scene). Grid
    search: gain 0.5-3 by 0.05, floor 0.001 and 0.0025-0.08 by 0.0025, haze_gain 0-3 by 0.1, so
    that sigma tracks the RMS error."""
    step = max(1, errors.numel() // (2_000_000 if hazes is None else 500_000))  # an even subsample
    e2 = errors[::step].double() ** 2
    sub = spreads[::step].double()
    haze = None if hazes is None else hazes[::step].double()
    floors = torch.cat([torch.tensor([0.001], dtype=torch.float64),
                        torch.arange(0.0025, 0.0801, 0.0025, dtype=torch.float64)])
    haze_gains = [0.0] if haze is None else torch.arange(0.0, 3.0001, 0.1).tolist()
    best = (math.inf, (1.0, 0.05, 0.0))
    for gain in torch.arange(0.5, 3.0001, 0.05).tolist():
        for haze_gain in haze_gains:
            # (floors, samples): every floor at once
            var = fill_variance(sub, (gain, floors[:, None], haze_gain), 0.0 if haze is None else haze)
            nll = (0.5 * torch.log(var) + 0.5 * e2 / var).mean(dim=1)
            i = int(nll.argmin())
            if float(nll[i]) < best[0]:
                best = (float(nll[i]), (round(gain, 2), round(float(floors[i]), 4), round(haze_gain, 2)))
    return best[1] if haze is not None else best[1][:2]


def coverage90(errors: Tensor, sigma: Tensor) -> float:
    """Share of ``errors`` (absolute) inside the two-sided 90 % normal interval of ``sigma``."""
    return float((errors <= Z90 * sigma).double().mean()) if errors.numel() else float("nan")
