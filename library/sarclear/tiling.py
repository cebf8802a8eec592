"""Windows, overlapping tile grids and seam-free blending; no GDAL or QGIS in here.

A *window* is a rectangle of pixels, ``(col_off, row_off, width, height)``, in the pixel
grid of the optical raster. Inference cuts the area of interest into tiles of the network's
input size that overlap by ``overlap`` pixels; the last tile of a row or column is moved
back so it ends at the raster edge instead of hanging over it (rasters smaller than one
tile are padded instead). Each tile's prediction is weighted by a separable ramp that falls
towards the tile's borders and never reaches zero, and the output is the weighted mean of
all tiles covering a pixel: a model that returns its input reproduces the input exactly,
and no seam shows where tiles meet.

:class:`StripBlender` keeps only a strip of rows in memory: rows are released once no later
tile row can reach them, so memory grows with the raster's width, never its height.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: column and row offset, width and height."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.col_off + self.width

    @property
    def bottom(self) -> int:
        return self.row_off + self.height

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def toslices(self) -> tuple[slice, slice]:
        """(rows, cols) slices for indexing an array whose origin is the grid's origin."""
        return slice(self.row_off, self.bottom), slice(self.col_off, self.right)

    def intersection(self, other: Window) -> Window:
        """The overlap of two windows (possibly empty)."""
        c0, r0 = max(self.col_off, other.col_off), max(self.row_off, other.row_off)
        c1, r1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))

    def translate(self, dcol: int, drow: int) -> Window:
        return Window(self.col_off + dcol, self.row_off + drow, self.width, self.height)

    def relative_to(self, outer: Window) -> Window:
        """This window in the coordinates of ``outer``'s top-left corner."""
        return self.translate(-outer.col_off, -outer.row_off)


def tile_offsets(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least
    ``overlap`` pixels shared by neighbours; the last tile ends exactly at ``length``.
    A length shorter than one tile gives the single offset 0 (the tile is padded)."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    offsets = list(range(0, length - tile, stride))
    offsets.append(length - tile)
    return offsets


def tile_rows(area: Window, tile: int, overlap: int) -> Iterator[list[Window]]:
    """The tile grid over ``area``, one list of windows per tile row, top to bottom.
    Windows are in the same coordinates as ``area``; a window is larger than ``area``
    only when ``area`` is smaller than one tile (then it must be padded)."""
    cols = tile_offsets(area.width, tile, overlap)
    for r in tile_offsets(area.height, tile, overlap):
        yield [Window(area.col_off + c, area.row_off + r, tile, tile) for c in cols]


def blend_ramp(tile: int, overlap: int) -> torch.Tensor:
    """1-D blending weight: a smooth rise over the first ``overlap`` pixels, 1 in the middle,
    a mirrored fall at the end; strictly positive so every covered pixel has weight."""
    i = torch.arange(tile, dtype=torch.float64)
    if overlap == 0:
        return torch.ones(tile, dtype=torch.float32)
    t = torch.minimum((i + 0.5) / overlap, (tile - i - 0.5) / overlap).clamp(max=1.0)
    return (t * t * (3 - 2 * t)).to(torch.float32)  # smoothstep: zero slope at both ends


def blend_weights(tile: int, overlap: int) -> torch.Tensor:
    """2-D separable blending weights, shape (tile, tile)."""
    ramp = blend_ramp(tile, overlap)
    return ramp[:, None] * ramp[None, :]


class StripBlender:
    """Weighted accumulation of overlapping tile predictions over a strip of rows.

    The strip covers ``width`` columns and rows ``[top, top + capacity)`` of a region;
    :meth:`add` accumulates a tile, :meth:`release` returns the finished rows from the top
    (weighted mean) and moves the strip down. Works on any torch device.
    """

    def __init__(self, channels: int, width: int, capacity: int, device: torch.device | str = "cpu"):
        self.top = 0
        self.width = width
        self.capacity = capacity
        self._acc = torch.zeros(channels, capacity, width, device=device)
        self._wsum = torch.zeros(capacity, width, device=device)

    def add(self, pred: torch.Tensor, weights: torch.Tensor, window: Window) -> None:
        """Accumulate ``pred`` (C, h, w) with ``weights`` (h, w) at ``window`` (region
        coordinates); parts of the window outside the region are ignored."""
        region = Window(0, self.top, self.width, self.capacity)
        inside = window.intersection(region)
        if inside.empty:
            return
        if window.row_off < self.top:
            raise ValueError(f"tile at row {window.row_off} reaches above released row {self.top}")
        if window.bottom > self.top + self.capacity:
            raise ValueError(f"tile rows {window.row_off}..{window.bottom} reach below the strip "
                             f"({self.top}..{self.top + self.capacity}); give the blender more capacity")
        src_r, src_c = inside.relative_to(window).toslices()
        dst_r, dst_c = inside.translate(0, -self.top).toslices()
        w = weights[src_r, src_c]
        self._acc[:, dst_r, dst_c] += pred[:, src_r, src_c] * w
        self._wsum[dst_r, dst_c] += w

    def release(self, upto: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """Release rows ``[top, upto)``: returns (first row, weighted mean (C, n, W),
        weight sum (n, W)). Pixels no tile covered have weight 0 and value 0."""
        n = max(0, min(upto, self.top + self.capacity) - self.top)
        first = self.top
        wsum = self._wsum[:n].clone()
        mean = self._acc[:, :n] / wsum.clamp(min=1e-12)
        # move the strip down by n rows
        self._acc = torch.cat([self._acc[:, n:], torch.zeros_like(self._acc[:, :n])], dim=1)
        self._wsum = torch.cat([self._wsum[n:], torch.zeros_like(self._wsum[:n])], dim=0)
        self.top += n
        return first, mean, wsum
