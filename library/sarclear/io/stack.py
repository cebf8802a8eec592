"""Stacks of bands read together on one target grid, window by window (warped VRTs for
bands on another grid or CRS)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import GeoreferenceError, InputError, ReadError
from ..radiometry import linear_to_db
from ..tiling import Window
from .discovery import BandRef
from .gdalio import gdal_call, open_raster
from .grid import Grid, native_offset, same_crs

log = logging.getLogger(__name__)

_RESAMPLING = ("nearest", "bilinear", "cubic", "cubicspline", "lanczos", "average")


@dataclass(frozen=True)
class RasterStack:
    """A set of bands read together on one target grid.

    ``kind`` is "optical" or "sar"; SAR stacks know whether their values are linear
    power (converted to dB on read). ``covered`` is the part of the area the bands cover
    when that is not all of it (SAR may cover only part of the optical raster; outside it,
    reads are NaN, hence invalid).
    """

    kind: str
    bands: tuple[BandRef, ...]
    grid: Grid
    dtype: int
    nodata: tuple[float | None, ...]
    descriptions: tuple[str, ...]
    resampling: str = "bilinear"
    linear_power: bool = False
    covered: Window | None = None
    order_check: object = None  # io.order.BandOrderCheck of an assumed band order

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band_mapping(self) -> list[dict]:
        """Which file and band each stack band is read from, and how it was identified
        (for the log and the metrics JSON)."""
        return [{"band": b.name, "file": b.path, "index": b.index, "how": b.how} for b in self.bands]

    def open(self) -> StackReader:
        """A reader with its own GDAL handles (use one per thread)."""
        return StackReader(self)


@dataclass
class _Source:
    """Bands of one dataset read together: their places in the stack and in the dataset,
    and where the stack's grid lies in the dataset's pixels."""

    ds: gdal.Dataset
    slots: list[int]      # positions in the stack
    indices: list[int]    # 1-based band numbers in ``ds``
    col_off: int
    row_off: int
    width: int
    height: int


class StackReader:
    """Reads windows of a :class:`RasterStack` as float32 arrays with a validity mask.

    A band whose file is on the stack's grid, or on a grid that contains it at a whole-pixel
    offset (an area of interest cut from it), is read directly, all bands of one file in one
    call; any other band through a warped VRT. Nodata becomes NaN.
    """

    def __init__(self, stack: RasterStack):
        self.stack = stack
        self._sources: list[_Source] = []
        by_file: dict[str, tuple[list[int], list[int]]] = {}  # path -> (slots, band numbers)
        for slot, ref in enumerate(stack.bands):
            slots, indices = by_file.setdefault(ref.path, ([], []))
            slots.append(slot)
            indices.append(ref.index)
        for path, (slots, indices) in by_file.items():
            ds = open_raster(path)
            native = Grid.of(ds)
            offset = native_offset(native, stack.grid)
            if offset is None:  # one warped VRT for all this file's bands
                warped = warp_to_grid(ds, stack.grid, stack.resampling, indices)
                self._sources.append(_Source(warped, slots, list(range(1, len(indices) + 1)), 0, 0,
                                             stack.grid.width, stack.grid.height))
            else:
                self._sources.append(_Source(ds, slots, indices, *offset, native.width, native.height))

    def _read_source(self, src: _Source, window: Window,
                     buf: tuple[int, int] | None = None) -> tuple[np.ndarray, Window] | None:
        """The source's bands over ``window`` (stack grid), as (n, h, w) float32 with nodata
        as NaN, and where they lie in ``window``; None when the window misses the source.
        ``buf``: a decimated (w, h) read of ``window``; then where they lie is in that buffer
        (a source that covers part of the window fills the same part of it)."""
        win = window.translate(src.col_off, src.row_off)
        part = win.intersection(Window(0, 0, src.width, src.height))
        if part.empty:
            return None
        rel = part.relative_to(win)
        where = rel
        if buf is not None:
            sx, sy = buf[0] / win.width, buf[1] / win.height
            x0, y0 = round(rel.col_off * sx), round(rel.row_off * sy)
            where = Window(x0, y0, round(rel.right * sx) - x0, round(rel.bottom * sy) - y0)
            if where.empty:
                return None
        bw, bh = where.width, where.height
        path = self.stack.bands[src.slots[0]].path
        arr = gdal_call(f"{path}: cannot be read (truncated or damaged?)", src.ds.ReadAsArray, part.col_off,
                        part.row_off, part.width, part.height, buf_xsize=bw, buf_ysize=bh, band_list=src.indices,
                        error=ReadError)
        arr = arr.reshape(len(src.indices), bh, bw).astype(np.float32)
        for k, slot in enumerate(src.slots):
            nodata = self.stack.nodata[slot]
            if nodata is not None and not np.isnan(nodata):
                arr[k][arr[k] == np.float32(nodata)] = np.nan
        return arr, where

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read ``window`` of the stack's grid. Returns (float32 (C, h, w) values, bool
        (h, w) valid), a pixel being valid when every band has a finite, non-nodata value.
        Parts of the window outside the grid are invalid and filled by mirroring the
        inside, so a network sees plausible context there."""
        inside = window.intersection(self.stack.grid.window)
        c = len(self.stack.bands)
        if inside.empty:
            return np.zeros((c, window.height, window.width), np.float32), \
                np.zeros((window.height, window.width), bool)
        block = np.full((c, inside.height, inside.width), np.nan, np.float32)
        for src in self._sources:
            got = self._read_source(src, inside)
            if got is not None:
                arr, where = got
                block[(src.slots, *where.toslices())] = arr
        if self.stack.linear_power:
            block = linear_to_db(block)
        ok = np.isfinite(block).all(axis=0)
        if inside == window:
            return block, ok
        p = inside.relative_to(window)
        pad = ((p.row_off, window.height - p.bottom), (p.col_off, window.width - p.right))
        return np.pad(block, ((0, 0), *pad), mode="symmetric"), np.pad(ok, pad, constant_values=False)

    def read_decimated(self, window: Window, width: int, height: int) -> np.ndarray:
        """``window`` of every band resampled (GDAL's nearest decimation, overviews where
        the files have them) to ``width`` x ``height``; nodata as NaN."""
        out = np.full((len(self.stack.bands), height, width), np.nan, np.float32)
        for src in self._sources:
            got = self._read_source(src, window, (width, height))
            if got is not None:
                arr, where = got
                out[(src.slots, *where.toslices())] = arr
        return linear_to_db(out) if self.stack.linear_power else out


def preview(stack: RasterStack, size: int = 768, window: Window | None = None) -> np.ndarray:
    """A decimated float32 view (at most ``size`` pixels a side, nodata as NaN) of a stack's
    ``window`` (default: all of it), for figures; never reads the full raster."""
    window = window or stack.grid.window
    scale = max(1.0, max(window.width, window.height) / size)
    w, h = max(1, round(window.width / scale)), max(1, round(window.height / scale))
    return stack.open().read_decimated(window, w, h)


def warp_to_grid(ds: gdal.Dataset, grid: Grid, resampling: str, bands: Sequence[int] | None = None) -> gdal.Dataset:
    """A warped VRT of ``ds`` (or of some of its bands, in that order) on ``grid``: computed
    lazily, window by window, as it is read; all bands share one coordinate transformation.
    Outside the source: NaN (float32)."""
    if resampling not in _RESAMPLING:
        raise InputError(f"unknown resampling {resampling!r}; choose one of {', '.join(_RESAMPLING)}")
    src = ds
    if bands is not None and list(bands) != list(range(1, ds.RasterCount + 1)):
        src = gdal_call("selecting bands", gdal.Translate, "", ds, format="VRT", bandList=list(bands))
    src_nodata = src.GetRasterBand(1).GetNoDataValue()
    xmin, ymin, xmax, ymax = grid.bounds()
    gt = grid.geotransform
    if gt[2] != 0 or gt[4] != 0:
        raise GeoreferenceError("the optical raster has a rotated geotransform; warp it north-up "
                                "first (gdalwarp in.tif out.tif) so bands can be aligned to it")
    src_grid = Grid.of(src)
    sxmin, symin, sxmax, symax = src_grid.bounds()
    margin = src_grid.pixel_size
    if (same_crs(src_grid.crs_wkt, grid.crs_wkt) and src_grid.geotransform[2] == 0
            and src_grid.geotransform[4] == 0 and sxmin <= xmin + margin and sxmax >= xmax - margin
            and symin <= ymin + margin and symax >= ymax - margin):
        # same CRS, source covers the grid: a resampling VRT, which (unlike the warper)
        # clamps at the source's edge instead of losing the outermost target pixels
        out = gdal_call("resampling a band to the optical grid", gdal.Translate, "", src, format="VRT",
                        projWin=[xmin, ymax, xmax, ymin], width=grid.width, height=grid.height,
                        resampleAlg=resampling, outputType=gdal.GDT_Float32)
        out._src = src
        return out
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(xmin, ymin, xmax, ymax), width=grid.width, height=grid.height,
        dstSRS=grid.crs_wkt or None, resampleAlg=resampling, outputType=gdal.GDT_Float32,
        srcNodata=src_nodata, dstNodata=float("nan"), multithread=True, warpOptions=["NUM_THREADS=ALL_CPUS"])
    out = gdal_call("aligning a raster to the optical grid", gdal.Warp, "", src, options=options)
    out._src = src  # keep the band-selection VRT alive as long as the warp
    return out


def _sample(ds: gdal.Dataset, index: int, size: int = 512) -> np.ndarray:
    """Finite, non-nodata values of one band, about ``size`` x ``size`` of them: a decimated
    view of small rasters or rasters with overviews; on large rasters without overviews
    (where a decimated read would decode every block) a 4 x 4 grid of windows instead."""
    band = ds.GetRasterBand(index)
    w, h = ds.RasterXSize, ds.RasterYSize
    if max(w, h) <= 4 * size or band.GetOverviewCount() > 0:
        scale = max(1, int(np.ceil(max(w, h) / size)))
        arr = band.ReadAsArray(buf_xsize=max(1, w // scale), buf_ysize=max(1, h // scale)).astype(np.float64)
    else:
        n, side = 4, size // 4
        parts = [band.ReadAsArray(int((i + 0.5) * w / n - side / 2), int((j + 0.5) * h / n - side / 2), side, side)
                 for j in range(n) for i in range(n)]
        arr = np.stack(parts).astype(np.float64)
    nodata = band.GetNoDataValue()
    good = np.isfinite(arr) & ((arr != nodata) if nodata is not None else True)
    return arr[good]
