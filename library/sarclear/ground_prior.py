"""The ground a fill expects where a scene shows none: the prior of a scene without a clear pixel.

A classical fill (:mod:`sarclear.fill`, :mod:`sarclear.sar_guide`) takes everything from the
scene's own clear pixels. When the mask hides the whole scene (an overcast patch, a 256-px chip
under one cloud) there are none, and the fill fell back to the mean of *all* the pixels: under a
cloud that hides the ground outright, the cloud's own brightness. A mask-aware model file may
instead carry a **ground prior** (``ModelConfig.ground_prior``): the mean reflectance and spread
of clear ground over the train split's places, overall (``"all"``) and, for a SAR-guided model,
per SAR class of its grid (:func:`sarclear.sar_guide.sar_memberships`; key ``"i,j"``: the class's
node per channel). Water, fields, forest and towns differ in backscatter as they do in the
optical bands, so under a whole-scene cloud the SAR still says which of them each pixel is; the
prior says what each typically looks like. It is a guess from other places and seasons, not
this scene's ground: its spread (between places included) goes into the uncertainty, and
decloud says that it was used. Under haze, where the scene's darkest pixels are still ground
(:data:`CLOUDED_DARK_EXCESS`), the mean of all the pixels stays the fill's level: it is this
scene's own ground, veiled, which no prior knows.

The table is surface reflectance (L2A). An L1C scene (top of atmosphere) sees the atmosphere's
path reflectance on top, added here by :func:`sarclear.product_level.path_reflectance`
(:data:`~sarclear.product_level.PATH_REFLECTANCE_490` at 490 nm, falling off as skylight does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .product_level import path_reflectance
from .sar_guide import ClassKey, keyed_classes, sar_memberships

#: Fewer clear pixels than this in decloud's view of the scene: the fill's scene statistics are
#: the prior (the scene's own SAR classes need as many, :data:`sarclear.sar_guide.MIN_SCENE_SOURCES`).
MIN_CLEAR_PIXELS = 10
#: ... and the scene's darkest pixels (:func:`sarclear.fill.haze_excess`: their blue over typical
#: dark ground) at least this much brighter: nothing in the scene is ground. Below it the ground
#: may show through (a veil), and the mean of all the pixels keeps this scene's own ground, which
#: no prior knows, with its detail. On the 19 held-out places (384-px crops) the quality
#: benchmark's veils reach at most 0.147 (thin cloud; haze 0.111), a whole-scene thick cloud at
#: least 0.23. At 0.1 the prior also took the heaviest veils: RMSE fell there, but the ground's
#: pattern was lost (correlation 0.884 -> 0.641 on the adapt subset's haze, true mask), so the
#: limit sits above every veil. The overcast Major TOM quadrants (real, 0.085-0.11) stay below it.
CLOUDED_DARK_EXCESS = 0.2
#: A class enters the table with at least this many training pixels (membership-weighted).
MIN_CLASS_PIXELS = 50.0
#: The key of the overall row.
ALL = "all"


def _key(key: ClassKey) -> str:
    return ",".join(str(i) for i in key)


def check_table(table: Mapping[str, Sequence[float]], bands: int, channels: int) -> dict[str, tuple[float, ...]]:
    """``table`` as the model config stores it ({key: means then spreads, 2 x ``bands`` floats}),
    checked: keys ``"all"`` or one node index per SAR channel, finite values, spreads >= 0.
    Raises ValueError naming the first problem."""
    if len(table) > 4096:
        raise ValueError(f"ground_prior has {len(table)} rows, at most 4096 are accepted")
    out = {}
    for key, row in table.items():
        parts = str(key).split(",")
        if key != ALL and (len(parts) != channels or not all(p.isdigit() and len(p) < 4 for p in parts)):
            raise ValueError(f"ground_prior key {key!r} is neither {ALL!r} nor {channels} SAR class node(s)")
        values = tuple(float(v) for v in row)
        if len(values) != 2 * bands or not all(np.isfinite(values)) or min(values[bands:]) < 0:
            raise ValueError(f"ground_prior[{key!r}] must be {bands} means then {bands} spreads >= 0, all finite")
        out[str(key)] = values
    if out and ALL not in out:
        raise ValueError(f"ground_prior has no {ALL!r} row")
    return out


@dataclass(frozen=True)
class GroundPrior:
    """Clear ground's mean and spread, (2, C) float64, overall and per SAR class (L2A)."""

    overall: np.ndarray
    classes: dict[ClassKey, np.ndarray]

    def to_table(self) -> dict[str, tuple[float, ...]]:
        """The model config's ``ground_prior``."""
        rows = {ALL: self.overall, **{_key(k): v for k, v in sorted(self.classes.items())}}
        return {k: tuple(round(float(x), 5) for x in v.reshape(-1)) for k, v in rows.items()}

    @classmethod
    def from_table(cls, table: Mapping[str, Sequence[float]]) -> GroundPrior | None:
        """The prior a model config carries; None for a config without one."""
        if not table:
            return None
        rows = {k: np.asarray(v, dtype=np.float64).reshape(2, -1) for k, v in table.items()}
        overall = rows.pop(ALL)
        return cls(overall, {tuple(int(i) for i in k.split(",")): v for k, v in rows.items()})

    def at_level(self, level: str, bands: Sequence[str]) -> tuple[np.ndarray, dict[ClassKey, torch.Tensor]]:
        """(overall (2, C) float32, classes {key: (2, C) tensor}) for a scene of product ``level``."""
        shift = np.zeros((2, len(bands)))
        if level == "l1c":
            shift[0] = path_reflectance(bands)
        classes = {k: torch.from_numpy(v + shift).float() for k, v in self.classes.items()}
        return (self.overall + shift).astype(np.float32), classes


def _moments(sums: np.ndarray) -> np.ndarray:
    """(2, C) mean and standard deviation from (weight, sum x (C), sum x^2 (C))."""
    c = (sums.size - 1) // 2
    mean = sums[1:1 + c] / sums[0]
    return np.stack([mean, np.sqrt(np.maximum(sums[1 + c:] / sums[0] - mean**2, 0))])


def build_ground_prior(scenes: Sequence, bands: Sequence[str], db_range: Sequence[tuple[float, float]] = (),
                       step_db: float = 0.0) -> GroundPrior:
    """The :class:`GroundPrior` of clear L2A ``scenes`` (:class:`sarclear.datasets.Scene`, ``bands``
    in that order). The overall row weighs every scene alike (a large scene must not outweigh
    many places); the spreads include the differences between places. With ``step_db`` > 0,
    the classes of that SAR grid over ``db_range`` from the scenes that have SAR."""
    c = len(bands)
    overall = np.zeros(1 + 2 * c)
    per_class: dict[ClassKey, np.ndarray] = {}
    for scene in scenes:
        if scene.product_level != "l2a" or scene.cloudy:
            raise ValueError(f"{scene.name}: the ground prior is built from clear L2A scenes only")
        ms = scene.ms.astype(np.float64)
        ok = np.isfinite(ms).all(axis=0)
        if not ok.any():
            continue
        seen = ms[:, ok]
        overall += np.concatenate([[1.0], seen.mean(axis=1), (seen**2).mean(axis=1)])
        if step_db <= 0 or scene.sar is None:
            continue
        sar = torch.from_numpy(scene.sar)[None]
        valid = torch.isfinite(sar).all(dim=1, keepdim=True) & torch.from_numpy(ok)[None, None]
        x = torch.from_numpy(np.nan_to_num(ms))
        tents = sar_memberships(torch.nan_to_num(sar), db_range, step_db, valid=valid)
        for key, u in keyed_classes(tents):
            w = u[0, 0].double()
            row = np.concatenate([[float(w.sum())], (w * x).sum(dim=(1, 2)).numpy(),
                                  (w * x * x).sum(dim=(1, 2)).numpy()])
            per_class[key] = per_class.get(key, 0) + row
    if overall[0] == 0:
        raise ValueError("no valid pixel in the scenes given for the ground prior")
    classes = {k: _moments(v) for k, v in per_class.items() if v[0] >= MIN_CLASS_PIXELS}
    return GroundPrior(_moments(overall), classes)
