"""Measure the constants of :mod:`sarclear.dehaze` on the train split: the dark-ground
references (``DARK_REFERENCE``: the median over clear scenes of each level of the mean
:func:`~sarclear.dehaze.local_dark` of blue and red) and the de-hazed pixels' error model
(``VEIL_SIGMA``: floor and slope, by maximum likelihood, under the quality benchmark's haze and
thin cloud with an all-cloud mask, 2 seeds), and the share of errors inside its 90 % interval on
the train and validation places. Never the test places.

    python scripts/veil_constants.py [--data ../shared/data]

Prints what it measures; the module's constants are copied from it by hand. (2026-12-04: it gives
the shipped VEIL_SIGMA and L1C references exactly, and L2A 0.016 / 0.019 where the module holds
0.017 / 0.020, which the first measurement gave with its windows placed half a window apart from
the shipped ``local_dark``'s; the published figures were all measured with the module's values.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "library"), str(ROOT / "benchmarks")]

from quality_io import DEFAULT_DATA, EXTRA_KIND_CONFIGS, KIND_CONFIGS, THIN_CLOUD, split_scenes  # noqa: E402

from sarclear.clouds import add_clouds  # noqa: E402
from sarclear.dehaze import dehaze_veil, local_dark, veil_excess  # noqa: E402

CROP = 384
VEILS = {"haze": KIND_CONFIGS["haze"], THIN_CLOUD: EXTRA_KIND_CONFIGS[THIN_CLOUD]}


def references(scenes) -> dict[str, dict[str, float]]:
    """Median over the clear scenes of each level of their mean local dark ground, blue and red."""
    values: dict[str, list[np.ndarray]] = {}
    for s in scenes:
        idx = [s.bands.index(b) for b in ("B2", "B4")]
        x = torch.from_numpy(s.ms[idx])[None].float()
        values.setdefault(s.product_level, []).append(np.nanmean(local_dark(x)[0].numpy(), axis=(1, 2)))
    return {level: {b: round(float(m), 3) for b, m in zip(("B2", "B4"), np.median(np.stack(v), axis=0))}
            for level, v in sorted(values.items())}


def errors(scenes) -> tuple[np.ndarray, np.ndarray]:
    """(error, excess) of every band-pixel of the de-hazed scenes under the two veils."""
    err, exc = [], []
    for s in scenes:
        ok = torch.from_numpy(np.isfinite(s.ms).all(axis=0))
        truth = torch.from_numpy(np.nan_to_num(s.ms))[None].float()
        for config in VEILS.values():
            for seed in range(2):
                cloudy = add_clouds(truth, s.bands, config, seed=seed).cloudy
                fill = cloudy.mean(dim=(2, 3), keepdim=True).expand_as(cloudy)
                out, _ = dehaze_veil(cloudy, fill, torch.zeros_like(fill), s.bands, s.product_level)
                err.append((out - truth)[0][:, ok].flatten().numpy())
                exc.append(veil_excess(cloudy, s.bands, s.product_level)[0][:, ok].flatten().numpy())
    return np.concatenate(err), np.concatenate(exc)


def fit(err: np.ndarray, exc: np.ndarray) -> tuple[float, float]:
    """(floor, slope) of sigma^2 = floor^2 + (slope x excess)^2 by maximum likelihood (a grid)."""
    best = None
    for floor in np.linspace(0.005, 0.06, 23):
        for slope in np.linspace(0, 1.5, 31):
            var = floor**2 + (slope * exc) ** 2
            nll = float(np.mean(np.log(var) + err**2 / var))
            if best is None or nll < best[0]:
                best = (nll, round(float(floor), 4), round(float(slope), 2))
    return best[1], best[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args()
    train = split_scenes(args.data, "train", CROP)
    print("DARK_REFERENCE =", references(train))
    err, exc = errors(train)
    floor, slope = fit(err, exc)
    print(f"VEIL_SIGMA = ({floor}, {slope})")
    for name, (e, x) in (("train", (err, exc)), ("val", errors(split_scenes(args.data, "val", CROP)))):
        sigma = np.sqrt(floor**2 + (slope * x) ** 2)
        print(f"{name}: {100 * np.mean(np.abs(e) <= 1.645 * sigma):.1f} % of the errors inside the 90 % interval, "
              f"RMSE {np.sqrt(np.mean(e**2)):.4f}, RMS sigma {np.sqrt(np.mean(sigma**2)):.4f}")


if __name__ == "__main__":
    main()
