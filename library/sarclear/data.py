"""Training data: pairs of co-registered Sentinel-1 and clear Sentinel-2 rasters (plus a
real cloudy Sentinel-2 where the dataset has one), found in the layouts users have.

Layouts (:func:`find_pairs`):

* **SEN12MS-CR**: ``ROIs*_<season>/s1_<n>/<roi>_s1_<n>_p<k>.tif`` with ``s2_<n>/`` (clear)
  and ``s2_cloudy_<n>/`` (real clouds) beside it;
* **SEN12MS / SEN1-2-style pairs**: the same without ``s2_cloudy_<n>`` (clouds are then
  synthesised on the fly, as in the paper);
* **manifest**: a CSV with columns ``s1``, ``s2_clear`` and optionally ``s2_cloudy``,
  ``split`` (train/test) and ``window`` (``col,row,width,height`` on the S2 grid, to use
  part of a scene); paths are relative to the CSV; an entry may be a file, a folder of
  per-band files (SSL4EO-S12, BigEarthNet) or several paths joined with ``;``.

Every pair is read through the library's band stacking and SAR warping, so per-band files,
20/60 m bands and SAR on another grid need no preprocessing. :class:`PairDataset` returns
fixed-size crops as tensors (reflectance and dB); augmentation and cloud synthesis happen
later, in batches, on the training device.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import InputError, SarclearError
from .io import detect_optical_scaling, open_optical, open_sar
from .tiling import Window
from .train_state import item_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """One training example: SAR, clear optical, optional real cloudy optical."""

    s1: tuple[str, ...]
    s2_clear: tuple[str, ...]
    s2_cloudy: tuple[str, ...] | None = None
    split: str = ""           # "train", "test" or "" (assigned by fraction)
    window: Window | None = None  # part of the S2 scene to use

    @property
    def key(self) -> str:
        w = "" if self.window is None else f"@{self.window.col_off},{self.window.row_off}"
        return ";".join(self.s2_clear) + w


def _paths(cell: str, base: Path) -> tuple[str, ...]:
    parts = [p.strip() for p in cell.split(";") if p.strip()]
    return tuple(str(p if Path(p).is_absolute() else (base / p)) for p in parts)


def read_manifest(path: str | os.PathLike) -> list[Pair]:
    """Pairs listed in a CSV manifest (see the module docstring)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    if not rows or not {"s1", "s2_clear"} <= set(rows[0]):
        raise InputError(f"{path}: a manifest needs a header with columns s1, s2_clear "
                         "(optional: s2_cloudy, split, window)")
    pairs = []
    for i, row in enumerate(rows, start=2):
        window = None
        if row.get("window"):
            try:
                c, r, w, h = (int(v) for v in row["window"].split(","))
            except ValueError:
                raise InputError(f"{path} line {i}: window must be col,row,width,height") from None
            window = Window(c, r, w, h)
        split = (row.get("split") or "").strip().lower()
        if split not in ("", "train", "test"):
            raise InputError(f"{path} line {i}: split must be train or test, not {split!r}")
        pairs.append(Pair(_paths(row["s1"], path.parent), _paths(row["s2_clear"], path.parent),
                          _paths(row["s2_cloudy"], path.parent) if row.get("s2_cloudy") else None,
                          split, window))
    return pairs


_S1_DIR = re.compile(r"^s1_(\d+)$")


def find_sen12ms_pairs(root: str | os.PathLike) -> list[Pair]:
    """SEN12MS-CR triplets or SEN12MS/SEN1-2-style pairs under ``root``."""
    root = Path(root)
    pairs = []
    for s1_dir in sorted(d for d in root.rglob("s1_*") if d.is_dir() and _S1_DIR.match(d.name)):
        n = _S1_DIR.match(s1_dir.name).group(1)
        clear_dir, cloudy_dir = s1_dir.with_name(f"s2_{n}"), s1_dir.with_name(f"s2_cloudy_{n}")
        for s1 in sorted(s1_dir.glob("*.tif")):
            clear = clear_dir / s1.name.replace("_s1_", "_s2_")
            cloudy = cloudy_dir / s1.name.replace("_s1_", "_s2_cloudy_")
            if not clear.exists():
                log.warning("%s has no clear S2 partner (%s); skipped", s1, clear)
                continue
            pairs.append(Pair((str(s1),), (str(clear),), (str(cloudy),) if cloudy.exists() else None))
    return pairs


def find_pairs(source: str | os.PathLike) -> list[Pair]:
    """Pairs from a manifest CSV or a SEN12MS(-CR)-style folder."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        pairs = read_manifest(source)
    elif source.is_dir():
        pairs = find_sen12ms_pairs(source)
    else:
        raise InputError(f"{source}: training data must be a manifest .csv or a SEN12MS-CR/SEN1-2-style "
                         "folder (ROIs*/s1_<n>/, s2_<n>/[, s2_cloudy_<n>/])")
    if not pairs:
        raise InputError(f"{source}: no S1/S2 pairs found")
    return pairs


def split_pairs(pairs: Sequence[Pair], test_fraction: float) -> tuple[list[Pair], list[Pair]]:
    """Train and test pairs: by each pair's ``split`` where given, else a stable hash of the
    pair's path puts about ``test_fraction`` of them in the test split."""
    train, test = [], []
    for p in pairs:
        split = p.split
        if not split:
            h = int(hashlib.sha256(p.key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            split = "test" if h < test_fraction else "train"
        (test if split == "test" else train).append(p)
    return train, test


@dataclass
class Loaded:
    """A pair read into memory on the S2 grid: reflectance and dB, float32 tensors."""

    clear: torch.Tensor            # (C, H, W) reflectance
    sar: torch.Tensor              # (S, H, W) dB (S = 0 for MS-only models)
    cloudy: torch.Tensor | None    # (C, H, W) reflectance, real clouds
    valid: torch.Tensor            # (H, W) bool


def load_pair(pair: Pair, bands: Sequence[str], sar_channels: Sequence[str]) -> Loaded:
    """Read a whole pair (or its window). Raises errors that name the file."""
    try:
        clear = open_optical(list(pair.s2_clear), bands)
        window = pair.window or clear.grid.window
        if pair.window is not None and window.intersection(clear.grid.window) != window:
            raise InputError(f"window {window} lies outside {pair.s2_clear[0]} "
                             f"({clear.grid.width} x {clear.grid.height})")
        raw, valid = clear.open().read(window)
        refl = detect_optical_scaling(clear).to_reflectance(raw)
        sar = np.zeros((0, *raw.shape[1:]), np.float32)
        if sar_channels:
            sar_stack = open_sar(list(pair.s1), sar_channels, clear.grid, area=window)
            sar, sar_valid = sar_stack.open().read(window)
            valid &= sar_valid
        cloudy = None
        if pair.s2_cloudy:
            cloudy_stack = open_optical(list(pair.s2_cloudy), bands, grid=clear.grid)
            c_raw, c_valid = cloudy_stack.open().read(window)
            cloudy = torch.from_numpy(detect_optical_scaling(cloudy_stack).to_reflectance(c_raw))
            valid &= c_valid
    except SarclearError as exc:
        raise type(exc)(f"training pair {pair.s2_clear[0]}: {exc}") from None
    return Loaded(torch.from_numpy(refl), torch.from_numpy(sar), cloudy, torch.from_numpy(valid))


def _crop(t: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """Crop (..., H, W) at (top, left); mirror-pad rasters smaller than ``size``."""
    h, w = t.shape[-2:]
    if t.shape[0] == 0:  # no channels (the MS-only twin's SAR)
        return t.new_zeros((0, size, size))
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        t = torch.nn.functional.pad(t[None].float(), (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(
            pad_h, pad_w) else "replicate")[0].to(t.dtype)
    return t[..., top:top + size, left:left + size]


class PairDataset(Dataset):
    """Crops of ``size`` from pairs. Item ``i`` of epoch ``e`` is pair ``i % n`` at a crop
    position drawn from a generator seeded by (seed, epoch, i): the same on every run and in
    every worker, so a resumed run sees exactly the data it would have seen.

    Pairs are read once and kept in memory when ``cache`` (small datasets), else read for
    each item (SEN12MS-CR-sized datasets).
    """

    def __init__(self, pairs: Sequence[Pair], bands: Sequence[str], sar_channels: Sequence[str], size: int,
                 *, length: int | None = None, seed: int = 0, cache: bool = True, random_crop: bool = True):
        if not pairs:
            raise InputError("no training pairs")
        self.pairs, self.bands, self.sar_channels = list(pairs), tuple(bands), tuple(sar_channels)
        self.size, self.seed, self.random_crop = size, seed, random_crop
        self.length = length or len(self.pairs)
        self.epoch = 0
        self._cache: dict[int, Loaded] = {}
        if cache:
            for i, p in enumerate(self.pairs):
                self._cache[i] = load_pair(p, self.bands, self.sar_channels)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pair(self, i: int) -> Loaded:
        return self._cache.get(i) or load_pair(self.pairs[i], self.bands, self.sar_channels)

    def to(self, device: torch.device | str) -> PairDataset:
        """Move the cached pairs to ``device`` (e.g. the GPU), so :meth:`batch` crops there
        and no data crosses the bus during training."""
        for k, item in self._cache.items():
            self._cache[k] = Loaded(*(t.to(device) if t is not None else None
                                      for t in (item.clear, item.sar, item.cloudy, item.valid)))
        return self

    def _views(self, index: int) -> dict[str, Any]:
        """Item ``index`` as crops of the pair, before the float conversion (views where the
        pair is large enough)."""
        k = index % len(self.pairs)
        item = self._pair(k)
        h, w = item.clear.shape[-2:]
        if self.random_crop:
            g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index))
            top = int(torch.randint(0, max(1, h - self.size + 1), (1,), generator=g))
            left = int(torch.randint(0, max(1, w - self.size + 1), (1,), generator=g))
        else:
            top, left = max(0, (h - self.size) // 2), max(0, (w - self.size) // 2)
        out = {"clear": _crop(item.clear, top, left, self.size), "sar": _crop(item.sar, top, left, self.size),
               "valid": _crop(item.valid, top, left, self.size)}
        if h < self.size or w < self.size:  # padded parts are not real pixels
            v = torch.zeros(self.size, self.size, dtype=torch.bool, device=item.valid.device)
            v[:min(h, self.size), :min(w, self.size)] = True
            out["valid"] = out["valid"] & v
        out["cloudy"] = _crop(item.cloudy, top, left, self.size) if item.cloudy is not None else out["clear"]
        out["has_cloudy"] = item.cloudy is not None
        return out

    @staticmethod
    def _finish(out: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Views (an item's, or a batch's stacked) -> float32 with NaN set to 0: done once for
        a whole batch, so a batch costs a few ops, not a few per item (on a GPU each op is a
        kernel launch)."""
        for key in ("clear", "sar", "cloudy"):
            out[key] = torch.nan_to_num(out[key].float())
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        out = self._views(index)
        device = out["valid"].device
        out["has_cloudy"] = torch.tensor(out["has_cloudy"], device=device)
        out["index"] = torch.tensor(index)
        return self._finish(out)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Items ``indices`` stacked into a batch, cropped where the cache lives: the same
        tensors as stacking the items (the crops a DataLoader over this dataset would give),
        converted in one go."""
        views = [self._views(i) for i in indices]
        out = {k: torch.stack([v[k] for v in views]) for k in ("clear", "sar", "valid", "cloudy")}
        out["has_cloudy"] = torch.tensor([v["has_cloudy"] for v in views], device=out["valid"].device)
        out["index"] = torch.tensor(list(indices))
        return self._finish(out)
