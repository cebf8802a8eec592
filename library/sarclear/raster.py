"""GDAL raster I/O: find and stack bands, put every band on the optical grid, read windows,
write GeoTIFFs atomically.

Inputs come as users have them: one multi-band file, one file per band (SSL4EO-S12,
BigEarthNet, SAFE ``IMG_DATA`` folders), or a folder of such files. Bands are identified by
their description or file name (``B02``, ``B8A``, ``VV``...), else by the documented default
order (:func:`sarclear.bands.default_s2_order`). Every band is then read on one *target
grid*, the grid of the finest optical band: 20 m and 60 m bands and SAR on another grid or
CRS go through a GDAL warped VRT, computed window by window as it is read, so nothing is
ever read whole and the user never pre-co-registers anything.

A :class:`RasterStack` describes such a set of bands; :meth:`RasterStack.open` gives a
:class:`StackReader` (one per thread: GDAL handles are not shared between threads) whose
:meth:`~StackReader.read` returns a float32 ``(bands, rows, cols)`` block and a validity
mask. :class:`GeoTiffWriter` writes windows into a temporary file beside the target and
renames it into place only when everything was written.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array, osr

from .atomic import commit, part_path, remove_stale_parts
from .bands import S1_CHANNELS, S2_PAPER10, default_s2_order, normalise_s1_name, normalise_s2_name
from .errors import (
    BandMismatchError,
    GeoreferenceError,
    InputError,
    NoOverlapError,
    OutputError,
    ReadError,
)
from .scaling import S2_DN_PER_REFLECTANCE, OpticalScaling, linear_to_db
from .tiling import Window

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc", ".hdf", ".h5", ".dat", ".bil")
_IDENTITY_GT = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_RESAMPLING = ("nearest", "bilinear", "cubic", "cubicspline", "lanczos", "average")


# --------------------------------------------------------------------------- GDAL calls


class _CollectErrors:
    """Thread-local GDAL error handler that keeps failure messages instead of printing."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, err_class: int, err_no: int, message: str) -> None:
        if err_class >= gdal.CE_Failure:
            self.messages.append(message.strip())
        elif err_class == gdal.CE_Warning:
            log.debug("GDAL: %s", message.strip())

    def __enter__(self) -> _CollectErrors:
        gdal.PushErrorHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gdal.PopErrorHandler()


def gdal_call(what: str, fn, *args, error: type[Exception] = InputError, **kwargs):
    """Call a GDAL function; turn a None result, an error code or a GDAL exception into
    ``error`` with ``what`` and GDAL's own message. Works whether or not the host
    application (QGIS, user code) enabled GDAL exceptions."""
    with _CollectErrors() as errors:
        try:
            result = fn(*args, **kwargs)
        except RuntimeError as exc:  # the host enabled gdal.UseExceptions()
            errors.messages.append(str(exc))
            result = None
    if result is None or errors.messages:
        detail = "; ".join(dict.fromkeys(errors.messages)) or "GDAL gave no detail"
        raise error(f"{what}: {detail}")
    return result


def open_raster(path: str | os.PathLike, *, update: bool = False) -> gdal.Dataset:
    """Open a raster with GDAL, with an error that says which file and why.

    Blocks are decoded on the calling thread: GDAL 3.6's multi-threaded GeoTIFF decoding
    (open option NUM_THREADS) returns corrupted values for some many-band files (seen with
    the 13-band Sen1Floods11 sample: "Bad value 12 for ExtraSamples"), so it is not used."""
    path = str(path)
    if not path.startswith("/vsi") and not Path(path).exists():
        raise InputError(f"{path}: no such file; check the path")
    flags = gdal.OF_RASTER | (gdal.OF_UPDATE if update else gdal.OF_READONLY)
    ds = gdal_call(f"{path}: not a raster GDAL can read", gdal.OpenEx, path, flags)
    if ds.RasterCount == 0:
        raise InputError(f"{path}: has no raster bands (is it a container? open one of its "
                         "subdatasets, listed by gdalinfo)")
    return ds


def limit_gdal_cache(megabytes: int = 512) -> None:
    """Cap GDAL's block cache (by default 5 % of RAM: 6 GB on a 128 GB host) unless the user
    set ``GDAL_CACHEMAX``. Process-wide, so it is for programs that own their process (the
    command line, benchmarks), not for the library inside QGIS. sarclear streams each block
    once or twice, so a small cache costs nothing and keeps the memory bound honest."""
    if "GDAL_CACHEMAX" not in os.environ and gdal.GetConfigOption("GDAL_CACHEMAX") is None:
        gdal.SetCacheMax(megabytes * 2**20)


def gdal_dtype_name(dtype: int) -> str:
    return gdal.GetDataTypeName(dtype)


def numpy_dtype(dtype: int) -> np.dtype:
    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(dtype))


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """A raster's pixel grid: size, affine geotransform and CRS (WKT, '' if none)."""

    width: int
    height: int
    geotransform: tuple[float, ...]
    crs_wkt: str

    @classmethod
    def of(cls, ds: gdal.Dataset) -> Grid:
        gt = ds.GetGeoTransform(can_return_null=True)
        return cls(ds.RasterXSize, ds.RasterYSize, tuple(gt) if gt else _IDENTITY_GT,
                   ds.GetProjectionRef() or "")

    @property
    def georeferenced(self) -> bool:
        return self.geotransform != _IDENTITY_GT or bool(self.crs_wkt)

    @property
    def window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    @property
    def pixel_size(self) -> float:
        """Ground size of a pixel along x, in CRS units (rotation included)."""
        gt = self.geotransform
        return float(np.hypot(gt[1], gt[4]))

    def srs(self) -> osr.SpatialReference | None:
        if not self.crs_wkt:
            return None
        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return srs

    def subgrid(self, window: Window) -> Grid:
        """The grid of ``window``: same pixels, origin moved to its top-left corner."""
        gt = self.geotransform
        x0 = gt[0] + window.col_off * gt[1] + window.row_off * gt[2]
        y0 = gt[3] + window.col_off * gt[4] + window.row_off * gt[5]
        return Grid(window.width, window.height, (x0, gt[1], gt[2], y0, gt[4], gt[5]), self.crs_wkt)

    def bounds(self, window: Window | None = None) -> tuple[float, float, float, float]:
        """Axis-aligned envelope (xmin, ymin, xmax, ymax) of ``window`` in the grid's CRS."""
        w = window or self.window
        gt = self.geotransform
        xs, ys = [], []
        for c, r in ((w.col_off, w.row_off), (w.right, w.row_off), (w.col_off, w.bottom), (w.right, w.bottom)):
            xs.append(gt[0] + c * gt[1] + r * gt[2])
            ys.append(gt[3] + c * gt[4] + r * gt[5])
        return min(xs), min(ys), max(xs), max(ys)

    def window_for_bounds(self, bounds: Sequence[float]) -> Window:
        """Smallest window of whole pixels that covers ``bounds`` (xmin, ymin, xmax, ymax,
        in the grid's CRS), clipped to the grid; raises :class:`NoOverlapError` if empty."""
        xmin, ymin, xmax, ymax = bounds
        if not (xmax > xmin and ymax > ymin):
            raise InputError(f"area of interest {tuple(bounds)} is empty: need xmin < xmax and ymin < ymax")
        inv = gdal.InvGeoTransform(self.geotransform)
        if inv is None:
            raise GeoreferenceError("the optical raster's geotransform cannot be inverted")
        cols, rows = [], []
        for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)):
            c, r = gdal.ApplyGeoTransform(inv, x, y)
            cols.append(c)
            rows.append(r)
        eps = 1e-6  # bounds that fall on pixel edges must not grab a neighbour pixel
        c0, c1 = int(np.floor(min(cols) + eps)), int(np.ceil(max(cols) - eps))
        r0, r1 = int(np.floor(min(rows) + eps)), int(np.ceil(max(rows) - eps))
        win = Window(c0, r0, c1 - c0, r1 - r0).intersection(self.window)
        if win.empty:
            raise NoOverlapError(
                f"area of interest {tuple(round(v, 6) for v in bounds)} does not overlap the optical "
                f"raster, whose extent is {tuple(round(v, 6) for v in self.bounds())} in its CRS; "
                "give the area in the optical raster's CRS")
        return win

    def same_as(self, other: Grid) -> bool:
        """Same size, same pixel positions (to 1e-6 of a pixel) and the same CRS."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        tol = 1e-6 * max(abs(v) for v in self.geotransform[1:3] + self.geotransform[4:6])
        if any(abs(a - b) > tol for a, b in zip(self.geotransform, other.geotransform)):
            return False
        return same_crs(self.crs_wkt, other.crs_wkt)


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    if not wkt_a or not wkt_b:
        return not wkt_a and not wkt_b
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def bounds_in(grid: Grid, other: Grid) -> tuple[float, float, float, float]:
    """The envelope of ``other`` expressed in ``grid``'s CRS (densified edges)."""
    xmin, ymin, xmax, ymax = other.bounds()
    if same_crs(grid.crs_wkt, other.crs_wkt):
        return xmin, ymin, xmax, ymax
    src, dst = other.srs(), grid.srs()
    if src is None or dst is None:
        raise GeoreferenceError("cannot compare extents: one raster has a CRS, the other none")
    ct = osr.CoordinateTransformation(src, dst)
    return tuple(ct.TransformBounds(xmin, ymin, xmax, ymax, 21))


def overlap_window(grid: Grid, other: Grid, area: Window) -> Window:
    """The part of ``area`` (pixels of ``grid``) that ``other`` covers; empty if none."""
    try:
        bounds = bounds_in(grid, other)
        return grid.window_for_bounds(bounds).intersection(area)
    except NoOverlapError:
        return Window(area.col_off, area.row_off, 0, 0)
    except InputError:  # degenerate (zero-area) transformed bounds
        return Window(area.col_off, area.row_off, 0, 0)


# --------------------------------------------------------------------------- band discovery


@dataclass(frozen=True)
class BandRef:
    """One band of one file, and the name it was identified as."""

    path: str
    index: int  # 1-based GDAL band index
    name: str


def _raster_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Expand the user's inputs (file, folder, or list of them) into raster file paths."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InputError("no input raster given")
    files: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES
                           and not f.name.endswith(".aux.xml"))
            if not found:
                raise InputError(f"{p}: folder holds no raster files ({', '.join(RASTER_SUFFIXES)})")
            files.extend(found)
        else:
            files.append(str(item))
    return files


def _band_label(ds: gdal.Dataset, index: int, path: str, single: bool) -> str:
    """The text that may name a band: its description, else (one-band files) the file name."""
    desc = ds.GetRasterBand(index).GetDescription() or ""
    return desc if desc.strip() or not single else Path(path).stem


def identify_bands(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    wanted: Sequence[str],
    *,
    sensor: str,
    order: Sequence[str] | None = None,
) -> list[BandRef]:
    """Find each band of ``wanted`` in ``inputs`` and return them in ``wanted``'s order.

    ``sensor`` is "optical" (Sentinel-2 names) or "sar" (polarisations). Bands are named
    by description or file name; failing that, by ``order`` (the user's explicit band list,
    in file order), else by the default order for the file's band count (optical) or the
    model's channel order (SAR). Where the same band appears at several resolutions (SAFE
    L2A ``R10m``/``R20m``/``R60m``), the finest wins.
    """
    all_refs, files = named_bands(inputs, sensor=sensor, order=order, wanted=wanted)
    chosen: dict[str, BandRef] = {}
    for ref in all_refs:
        if ref.name in wanted:
            prev = chosen.get(ref.name)
            if prev is None or _pixel_size(ref.path) < _pixel_size(prev.path):
                chosen[ref.name] = ref
    missing = [b for b in wanted if b not in chosen]
    if missing:
        found = sorted({r.name for r in all_refs if r.name}, key=_band_sort_key)
        what = "bands" if sensor == "optical" else "SAR channels"
        raise BandMismatchError(
            f"{', '.join(files) if len(files) < 4 else str(len(files)) + ' files'}: the model "
            f"needs {what} {', '.join(wanted)}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (found: {', '.join(found) or 'none'}). "
            "Supply the missing bands, name them (--ms-bands / --sar-channels), or use a model "
            "trained on the bands you have")
    return [chosen[b] for b in wanted]


def named_bands(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    sensor: str,
    order: Sequence[str] | None = None,
    wanted: Sequence[str] = (),
) -> tuple[list[BandRef], list[str]]:
    """Every band of ``inputs`` with the name it is identified as (see
    :func:`identify_bands`), and the files they are in."""
    files = _raster_files(inputs)
    normalise = normalise_s2_name if sensor == "optical" else normalise_s1_name
    all_refs: list[BandRef] = []
    unnamed: list[tuple[str, int]] = []
    for path in files:
        ds = open_raster(path)
        single = ds.RasterCount == 1
        for i in range(1, ds.RasterCount + 1):
            name = normalise(_band_label(ds, i, path, single))
            if name is None:
                unnamed.append((path, i))
            all_refs.append(BandRef(path, i, name or ""))

    if order is not None:  # the user's explicit list overrides names
        if len(order) != len(all_refs):
            raise BandMismatchError(
                f"{len(order)} band names given ({', '.join(order)}) for {len(all_refs)} bands "
                f"in {', '.join(files)}; give one name per band, in file order")
        canonical = [normalise(o) or o for o in order]
        all_refs = [replace(r, name=n) for r, n in zip(all_refs, canonical)]
    elif unnamed and not (wanted and set(wanted) <= {r.name for r in all_refs}):
        # unnamed bands matter only when the wanted ones are not all found by name
        default = (default_s2_order(len(all_refs)) if sensor == "optical"
                   else tuple(wanted) if len(all_refs) == len(wanted) else None)
        if default is None or (len(files) > 1 and len(unnamed) < len(all_refs)):
            by_file: dict[str, list[int]] = {}
            for p, i in unnamed:
                by_file.setdefault(Path(p).name, []).append(i)
            where = "; ".join(f"{name} band{'s' if len(ix) > 1 else ''} "
                              f"{ix[0] if len(ix) == 1 else f'{ix[0]}-{ix[-1]}'}" for name, ix in by_file.items())
            expected = (f"13 (B1..B12), 12 (L2A, no B10) or 10 ({', '.join(S2_PAPER10)})"
                        if sensor == "optical" else f"{len(wanted)} ({', '.join(wanted)})")
            raise BandMismatchError(
                f"cannot tell which band is which: {where} carry no band name, and "
                f"{len(all_refs)} unnamed bands match no default order (expected {expected}). "
                "Name the bands in their descriptions or file names, or give the order "
                f"explicitly ({'--ms-bands B2,B3,...' if sensor == 'optical' else '--sar-channels VV,VH'})")
        log.debug("bands without names read in the default order: %s", ", ".join(default))
        all_refs = [replace(r, name=n) for r, n in zip(all_refs, default)]
    return all_refs, files


def _band_sort_key(name: str) -> tuple[int, str]:
    from .bands import S2_BANDS

    order = S2_BANDS + S1_CHANNELS
    return (order.index(name) if name in order else len(order), name)


def _pixel_size(path: str) -> float:
    return Grid.of(open_raster(path)).pixel_size


# --------------------------------------------------------------------------- stacks


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

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

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
        ``buf``: a decimated (w, h) read."""
        win = window.translate(src.col_off, src.row_off)
        part = win.intersection(Window(0, 0, src.width, src.height))
        if part.empty:
            return None
        if buf is not None and part != win:
            raise InputError("a decimated window must lie inside every band")
        bw, bh = buf or (part.width, part.height)
        path = self.stack.bands[src.slots[0]].path
        arr = gdal_call(f"{path}: cannot be read (truncated or damaged?)", src.ds.ReadAsArray, part.col_off,
                        part.row_off, part.width, part.height, buf_xsize=bw, buf_ysize=bh, band_list=src.indices,
                        error=ReadError)
        arr = arr.reshape(len(src.indices), bh, bw).astype(np.float32)
        for k, slot in enumerate(src.slots):
            nodata = self.stack.nodata[slot]
            if nodata is not None and not np.isnan(nodata):
                arr[k][arr[k] == np.float32(nodata)] = np.nan
        return arr, part.relative_to(win)

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
            arr, _ = self._read_source(src, window, (width, height))
            out[src.slots] = arr
        return linear_to_db(out) if self.stack.linear_power else out


def preview(stack: RasterStack, size: int = 768, window: Window | None = None) -> np.ndarray:
    """A decimated float32 view (at most ``size`` pixels a side, nodata as NaN) of a stack's
    ``window`` (default: all of it), for figures; never reads the full raster."""
    window = window or stack.grid.window
    scale = max(1.0, max(window.width, window.height) / size)
    w, h = max(1, round(window.width / scale)), max(1, round(window.height / scale))
    return stack.open().read_decimated(window, w, h)


def native_offset(native: Grid, target: Grid) -> tuple[int, int] | None:
    """(column, row) of ``target``'s origin in ``native``'s pixels, when ``target`` is the
    same pixel grid shifted by whole pixels (the grid of a window); None otherwise."""
    if native.same_as(target):
        return 0, 0
    a, b = native.geotransform, target.geotransform
    if a[1:3] != b[1:3] or a[4:6] != b[4:6] or not same_crs(native.crs_wkt, target.crs_wkt):
        return None
    inv = gdal.InvGeoTransform(a)
    if inv is None:
        return None
    col, row = gdal.ApplyGeoTransform(inv, b[0], b[3])
    rc, rr = round(col), round(row)
    if abs(col - rc) > 1e-6 or abs(row - rr) > 1e-6:
        return None
    return rc, rr


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
    """A decimated view of one band (at most ``size`` pixels a side), finite values only."""
    band = ds.GetRasterBand(index)
    scale = max(1, int(np.ceil(max(ds.RasterXSize, ds.RasterYSize) / size)))
    arr = band.ReadAsArray(buf_xsize=max(1, ds.RasterXSize // scale),
                           buf_ysize=max(1, ds.RasterYSize // scale)).astype(np.float64)
    nodata = band.GetNoDataValue()
    good = np.isfinite(arr) & ((arr != nodata) if nodata is not None else True)
    return arr[good]


def _stack_meta(refs: Sequence[BandRef]) -> tuple[int, tuple[float | None, ...], tuple[str, ...]]:
    dtypes, nodata, descs = [], [], []
    for ref in refs:
        ds = open_raster(ref.path)
        band = ds.GetRasterBand(ref.index)
        dtypes.append(band.DataType)
        nodata.append(band.GetNoDataValue())
        descs.append(band.GetDescription() or ref.name)
    dtype = max(dtypes, key=lambda t: (numpy_dtype(t).itemsize, numpy_dtype(t).kind == "f"))
    return dtype, tuple(nodata), tuple(descs)


def open_optical(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    bands: Sequence[str],
    *,
    order: Sequence[str] | None = None,
    resampling: str = "bilinear",
    grid: Grid | None = None,
) -> RasterStack:
    """The Sentinel-2 bands ``bands`` of ``inputs`` on the grid of their finest band, or on
    ``grid`` (a reference read on a prediction's grid, say)."""
    refs = identify_bands(inputs, bands, sensor="optical", order=order)
    finest = min(refs, key=lambda r: _pixel_size(r.path))
    native = Grid.of(open_raster(finest.path))
    if native.width == 0 or native.height == 0:
        raise InputError(f"{finest.path}: raster is empty ({native.width} x {native.height} pixels)")
    if grid is not None and not native.same_as(grid):
        if bool(grid.crs_wkt) != bool(native.crs_wkt):
            raise GeoreferenceError(f"{finest.path}: cannot be aligned with the other raster: one "
                                    "has a CRS, the other none")
        if grid.crs_wkt and overlap_window(grid, native, grid.window).empty:
            raise NoOverlapError(f"{finest.path} does not overlap the raster it is compared with")
    grid = grid or native
    for ref in refs:
        other = Grid.of(open_raster(ref.path))
        if not other.same_as(grid) and bool(other.crs_wkt) != bool(grid.crs_wkt):
            raise GeoreferenceError(f"{ref.path}: has {'no' if not other.crs_wkt else 'a'} CRS but "
                                    f"{finest.path} has {'no' if not grid.crs_wkt else 'one'}; "
                                    "assign the CRS (gdal_edit.py -a_srs EPSG:...) to all band files")
    dtype, nodata, descs = _stack_meta(refs)
    return RasterStack("optical", tuple(refs), grid, dtype, nodata, descs, resampling)


def detect_optical_scaling(stack: RasterStack, declared: OpticalScaling | None = None) -> OpticalScaling:
    """How the optical values map to reflectance: as declared, else by data type
    (integers: DN = reflectance x 10000) or, for floating point, by the values (at most
    about 2: already reflectance; otherwise DN x 10000). 8-bit data is ambiguous and must
    be declared."""
    if declared is not None:
        return declared
    kind = numpy_dtype(stack.dtype)
    if kind.itemsize == 1 and kind.kind in "ui":
        raise InputError(
            f"{stack.bands[0].path}: 8-bit optical data cannot be Sentinel-2 reflectance x 10000 "
            "(at most 255); declare how it maps to reflectance with --ms-scale (DN per unit "
            "reflectance, e.g. 255), or supply the original 16-bit product")
    if kind.kind in "ui":
        return OpticalScaling(S2_DN_PER_REFLECTANCE)
    ds = open_raster(stack.bands[0].path)
    values = _sample(ds, stack.bands[0].index)
    if values.size and np.percentile(values, 99) <= 2.0:
        log.info("%s: floating-point values <= 2: read as reflectance", stack.bands[0].path)
        return OpticalScaling(1.0)
    return OpticalScaling(S2_DN_PER_REFLECTANCE)


def open_sar(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    channels: Sequence[str],
    grid: Grid,
    *,
    area: Window | None = None,
    order: Sequence[str] | None = None,
    units: str = "auto",
    resampling: str = "bilinear",
) -> RasterStack:
    """The SAR ``channels`` of ``inputs``, read on ``grid`` (warped if on another grid).

    ``units``: "db", "linear" (power, converted to dB on read) or "auto" (detected from the
    values: dB backscatter is mostly negative; linear power is non-negative and small).
    Raises :class:`NoOverlapError` when the SAR covers none of ``area`` (default: all of
    ``grid``); a partial overlap is logged and the uncovered part becomes nodata.
    """
    if not channels:
        raise InputError("this model takes no SAR input; leave the SAR raster out")
    refs = identify_bands(inputs, channels, sensor="sar", order=order)
    area = area or grid.window
    sar_grid = Grid.of(open_raster(refs[0].path))
    aligned = sar_grid.same_as(grid)
    if not aligned:
        if not grid.georeferenced and not sar_grid.georeferenced:
            if (sar_grid.width, sar_grid.height) != (grid.width, grid.height):
                raise GeoreferenceError(
                    f"neither the optical raster nor {refs[0].path} is georeferenced, and their "
                    f"sizes differ ({grid.width}x{grid.height} vs {sar_grid.width}x{sar_grid.height}); "
                    "georeference both (gdal_translate -a_srs -a_ullr) so they can be aligned")
            log.warning("neither raster is georeferenced: SAR assumed pixel-aligned with the optical raster")
            sar_grid = grid
            aligned = True
        elif not grid.crs_wkt or not sar_grid.crs_wkt:
            which = "optical raster" if not grid.crs_wkt else refs[0].path
            raise GeoreferenceError(
                f"the {which} has no CRS, so SAR and optical cannot be aligned; assign it "
                "(gdal_edit.py -a_srs EPSG:<code> file.tif)")
    covered = area if aligned else overlap_window(grid, sar_grid, area)
    if covered.empty:
        a, b = grid.bounds(area), (bounds_in(grid, sar_grid) if grid.crs_wkt else sar_grid.bounds())
        raise NoOverlapError(
            f"the SAR raster {refs[0].path} does not overlap the optical area: optical "
            f"{tuple(round(v, 4) for v in a)}, SAR {tuple(round(v, 4) for v in b)} (optical CRS). "
            "Use a SAR scene that covers the optical one")
    if covered != area:
        frac = covered.width * covered.height / (area.width * area.height)
        log.warning("SAR covers %.0f %% of the area; the rest of the output is nodata", 100 * frac)
    dtype, nodata, descs = _stack_meta(refs)
    linear = _is_linear_power(refs, units)
    return RasterStack("sar", tuple(refs), grid, dtype, nodata, descs, resampling, linear,
                       covered if covered != area else None)


def _is_linear_power(refs: Sequence[BandRef], units: str) -> bool:
    if units not in ("auto", "db", "linear"):
        raise InputError(f"unknown SAR units {units!r}; use db, linear or auto")
    if units != "auto":
        return units == "linear"
    values = np.concatenate([_sample(open_raster(r.path), r.index) for r in refs])
    if values.size == 0:
        return False
    median, p99 = np.median(values), np.percentile(values, 99)
    if median < 0:
        return False
    if values.min() >= 0 and p99 <= 20:
        log.info("SAR values are non-negative with median %.4f: read as linear power, "
                 "converted to dB", median)
        return True
    raise InputError(
        f"{refs[0].path}: SAR values (median {median:.3g}, 99th percentile {p99:.3g}) look "
        "neither like backscatter in dB nor like linear power (uncalibrated amplitude?). "
        "Calibrate to sigma0, or declare the units with --sar-units db|linear")


# --------------------------------------------------------------------------- writing


def to_dtype(values: np.ndarray, dtype: int, valid: np.ndarray, nodata: float | None) -> np.ndarray:
    """Float values -> ``dtype`` (GDAL type): rounded and clipped to the type's range for
    integers. Invalid pixels get ``nodata``; a valid pixel that would land on the nodata
    value is moved one step away so it is not mistaken for nodata."""
    np_type = numpy_dtype(dtype)
    # float32 holds every 8- and 16-bit integer exactly; wider types need float64
    out = values.astype(np.float32 if np_type.itemsize <= 2 else np.float64)
    if np_type.kind in "ui":
        info = np.iinfo(np_type)
        out = np.clip(np.rint(out), info.min, info.max)
        if nodata is not None:
            step = 1 if nodata < info.max else -1
            out[valid & (out == nodata)] = nodata + step
    elif nodata is not None and not np.isnan(nodata):
        hit = valid & (out.astype(np_type) == np_type.type(nodata))
        out[hit] = np.nextafter(np_type.type(nodata), np_type.type(np.inf))
    out = out.astype(np_type)
    if nodata is not None:
        out[:, ~valid] = np_type.type(nodata)
    return out


def check_output_path(path: str | os.PathLike, overwrite: bool, size_hint: int = 0) -> Path:
    """Fail early, before any work, if ``path`` cannot be written: it exists (and
    ``overwrite`` is off), its folder is missing or read-only, or the disk has less free
    space than ``size_hint`` bytes."""
    target = Path(path).absolute()
    if target.exists() and not overwrite:
        raise OutputError(f"{target} exists; choose another name, remove it, or pass --overwrite")
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file name such as {target / 'out.tif'}")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another folder")
    free = shutil.disk_usage(folder).free
    if size_hint and free < size_hint:
        raise OutputError(f"{folder}: {free / 2**20:.0f} MiB free, the output may need up to "
                          f"{size_hint / 2**20:.0f} MiB; free some space or write elsewhere")
    return target


#: GeoTIFF compression choices and their levels. Level 1 codecs: DEFLATE level 1 writes about
#: 3x faster than GDAL's default level 6 on Sentinel-2 data at the same ratio (BENCHMARKS.md);
#: DEFLATE is the default because every GIS reads it; ZSTD is faster still.
_COMPRESSION: dict[str, int | None] = {"DEFLATE": 1, "ZSTD": 1, "LZW": None, "NONE": None}


def _compression_options(codec: str, driver: str) -> list[str]:
    """Creation options for ``codec`` at its level: the GTiff driver names the level per
    codec (ZLEVEL, ZSTD_LEVEL), the COG driver has one LEVEL option."""
    level = _COMPRESSION[codec]
    if level is None:
        return [f"COMPRESS={codec}"]
    name = "LEVEL" if driver == "COG" else {"DEFLATE": "ZLEVEL", "ZSTD": "ZSTD_LEVEL"}[codec]
    return [f"COMPRESS={codec}", f"{name}={level}"]


class GeoTiffWriter:
    """Write a GeoTIFF window by window into a temporary file, renamed into place on
    success and removed on failure or cancel. Use as a context manager.

    Tiled (256 x 256), compressed (DEFLATE level 1 with a predictor, or ``compress``), BigTIFF
    when needed; with ``cog`` the result is a Cloud Optimized GeoTIFF with overviews, with
    ``overviews`` a plain GeoTIFF with internal overviews.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        grid: Grid,
        count: int,
        dtype: int,
        *,
        nodata: float | None = None,
        descriptions: Sequence[str] = (),
        units: str = "",
        metadata: dict[str, str] | None = None,
        overwrite: bool = False,
        cog: bool = False,
        overviews: bool = False,
        compress: str = "deflate",
    ):
        if compress.upper() not in _COMPRESSION:
            raise InputError(f"unknown compression {compress!r}; use {', '.join(c.lower() for c in _COMPRESSION)}")
        self.compress = compress.upper()
        itemsize = numpy_dtype(dtype).itemsize
        self.target = check_output_path(path, overwrite, grid.width * grid.height * count * itemsize // 2)
        self.grid, self.count, self.dtype = grid, count, dtype
        self.nodata, self.descriptions, self.units = nodata, tuple(descriptions), units
        self.metadata = metadata or {}
        self.cog, self.overviews = cog, overviews
        self.overwrite = overwrite
        self.part = part_path(self.target)
        self._ds: gdal.Dataset | None = None

    def __enter__(self) -> GeoTiffWriter:
        for stale in remove_stale_parts(self.target):
            log.info("removed %s, left by an interrupted run", stale)
        predictor = "3" if numpy_dtype(self.dtype).kind == "f" else "2"
        options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS",
                   *_compression_options(self.compress, "GTiff")]
        if self.compress != "NONE":
            options.append(f"PREDICTOR={predictor}")
        if self.count > 1:
            options.append("INTERLEAVE=PIXEL")
        driver = gdal.GetDriverByName("GTiff")
        self._ds = gdal_call(f"creating {self.part}", driver.Create, str(self.part), self.grid.width,
                             self.grid.height, self.count, self.dtype, options, error=OutputError)
        self._ds.SetGeoTransform(self.grid.geotransform)
        if self.grid.crs_wkt:
            self._ds.SetProjection(self.grid.crs_wkt)
        for i in range(self.count):
            band = self._ds.GetRasterBand(i + 1)
            if self.nodata is not None:
                band.SetNoDataValue(float(self.nodata))
            if i < len(self.descriptions):
                band.SetDescription(self.descriptions[i])
            if self.units:
                band.SetUnitType(self.units)
        if self.metadata:
            self._ds.SetMetadata({k: str(v) for k, v in self.metadata.items()})
        return self

    def write(self, window: Window, array: np.ndarray) -> None:
        """Write ``array`` ((C, h, w) or (h, w) for one band) at ``window``."""
        if self._ds is None:
            raise RuntimeError("GeoTiffWriter.write outside its with-block")
        arr = array[None] if array.ndim == 2 else array
        with _CollectErrors() as errors:
            err = self._ds.WriteRaster(window.col_off, window.row_off, window.width, window.height,
                                       np.ascontiguousarray(arr).tobytes(), window.width, window.height,
                                       self.dtype, list(range(1, self.count + 1)))
        if err != 0 or errors.messages:
            raise OutputError(f"writing {self.part}: {'; '.join(errors.messages) or 'write failed'} "
                              "(disk full or file too large?)")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise

    def _commit(self) -> None:
        ds, self._ds = self._ds, None
        if self.overviews and not self.cog:
            factors = _overview_factors(self.grid)
            if factors:
                gdal_call("building overviews", ds.BuildOverviews, "AVERAGE", factors, error=OutputError)
        with _CollectErrors() as errors:
            ds.FlushCache()
            ds = None  # closing writes the last blocks and the directory
        if errors.messages:
            raise OutputError(f"writing {self.part}: {'; '.join(errors.messages)} (disk full or file too large?)")
        final_part = self.part
        if self.cog:
            final_part = self.part.with_name(self.part.name + ".cog")
            gdal_call("writing the Cloud Optimized GeoTIFF", gdal.Translate, str(final_part),
                      str(self.part), format="COG",
                      creationOptions=[*_compression_options(self.compress, "COG"), "OVERVIEWS=AUTO",
                                       "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS"], error=OutputError)
            self.part.unlink(missing_ok=True)
        commit(final_part, self.target, overwrite=self.overwrite)
        log.info("wrote %s", self.target)

    def _abort(self) -> None:
        self._ds = None
        for p in (self.part, self.part.with_name(self.part.name + ".cog"), Path(str(self.part) + ".ovr")):
            p.unlink(missing_ok=True)


def _overview_factors(grid: Grid) -> list[int]:
    factors, f = [], 2
    while max(grid.width, grid.height) / f >= 256:
        factors.append(f)
        f *= 2
    return factors


def open_single_band(path: str | os.PathLike, grid: Grid, *, name: str = "mask",
                     resampling: str = "nearest") -> RasterStack:
    """Band 1 of ``path`` read on ``grid`` (a cloud mask, say); must overlap it."""
    ds = open_raster(path)
    native = Grid.of(ds)
    if native_offset(native, grid) is None:
        if bool(grid.crs_wkt) != bool(native.crs_wkt):
            raise GeoreferenceError(f"{path}: cannot be aligned with the optical raster: one has a "
                                    "CRS, the other none")
        if overlap_window(grid, native, grid.window).empty:
            raise NoOverlapError(f"{path} does not overlap the optical raster")
    band = ds.GetRasterBand(1)
    return RasterStack("single", (BandRef(str(path), 1, name),), grid, band.DataType,
                       (band.GetNoDataValue(),), (band.GetDescription() or name,), resampling)
