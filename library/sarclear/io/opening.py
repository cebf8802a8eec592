"""Open the optical, SAR and single-band (mask) stacks of a run on the optical grid."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ..bands import default_s2_order
from ..errors import BandOrderError, GeoreferenceError, InputError, NoOverlapError, ReadError
from ..tiling import Window
from .discovery import BandRef, _pixel_size, identify_bands
from .gdalio import gdal_call, numpy_dtype, open_raster
from .grid import Grid, bounds_in, native_offset, overlap_window
from .order import BandOrderCheck, check_band_order
from .stack import RasterStack, _sample

log = logging.getLogger(__name__)


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
    acquisition: str | None = None,
    check_order: bool = True,
) -> RasterStack:
    """The Sentinel-2 bands ``bands`` of ``inputs`` on the grid of their finest band, or on
    ``grid`` (a reference read on a prediction's grid, say). ``acquisition`` picks one
    acquisition of a folder that holds several. Bands read in an assumed default order are
    checked for spectral plausibility (:mod:`.order`): an implausible order raises
    :class:`~sarclear.errors.BandOrderError`, a doubtful one is logged."""
    refs = identify_bands(inputs, bands, sensor="optical", order=order, acquisition=acquisition)
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
    check = _check_assumed_order(refs) if check_order else None
    return RasterStack("optical", tuple(refs), grid, dtype, nodata, descs, resampling, order_check=check)


def _check_assumed_order(refs: Sequence[BandRef]) -> BandOrderCheck | None:
    """Check the order of a file whose bands were named by the default order (all its bands,
    decimated); None when no band's name was assumed."""
    assumed = [r for r in refs if r.how == "default order"]
    if not assumed:
        return None
    path = assumed[0].path
    ds = open_raster(path)
    names = default_s2_order(ds.RasterCount)
    if names is None:
        return None
    w, h = ds.RasterXSize, ds.RasterYSize
    unreadable = f"{path}: cannot be read (truncated or damaged?)"
    if max(w, h) <= 512 or ds.GetRasterBand(1).GetOverviewCount() > 0:  # decimated view
        scale = max(1, -(-max(w, h) // 128))
        values = gdal_call(unreadable, ds.ReadAsArray, buf_xsize=max(1, w // scale), buf_ysize=max(1, h // scale),
                           error=ReadError).astype(np.float64).reshape(ds.RasterCount, -1)
    else:  # 16 windows of 32 x 32: a decimated read would decode every block of every band
        wins = [(int((i + 0.5) * w / 4) - 16, int((j + 0.5) * h / 4) - 16) for j in range(4) for i in range(4)]
        values = np.concatenate([gdal_call(unreadable, ds.ReadAsArray, x, y, 32, 32, error=ReadError)
                                 .astype(np.float64).reshape(ds.RasterCount, -1) for x, y in wins], axis=1)
    for i in range(ds.RasterCount):
        nodata = ds.GetRasterBand(i + 1).GetNoDataValue()
        if nodata is not None:
            values[i][values[i] == nodata] = np.nan
    check = check_band_order(values, names)
    log.info("%s: band order %s (%s)", path, check.verdict, check.detail)
    if check.verdict == "implausible":
        raise BandOrderError(
            f"{path}: its bands carry no names and were to be read in the standard order, but {check.detail}. "
            "Name the bands in file order, or rebuild the stack in the standard order "
            f"({', '.join(names)})", input="ms", option="ms_bands", expected=tuple(names),
            found=check.likely, path=path)
    if check.verdict == "warning":
        log.warning("%s: %s", path, check.detail)
    return check


def open_sar(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    channels: Sequence[str],
    grid: Grid,
    *,
    area: Window | None = None,
    order: Sequence[str] | None = None,
    units: str = "auto",
    resampling: str = "bilinear",
    acquisition: str | None = None,
    optional: bool = False,
) -> RasterStack:
    """The SAR ``channels`` of ``inputs``, read on ``grid`` (warped if on another grid).
    ``optional``: the model fills without SAR where it has none (the SAR-guided fill), which
    the warning about a partial overlap says.

    ``units``: "db", "linear" (power, converted to dB on read) or "auto" (detected from the
    values: dB backscatter is mostly negative; linear power is non-negative and small).
    Raises :class:`NoOverlapError` when the SAR covers none of ``area`` (default: all of
    ``grid``); a partial overlap is logged and the uncovered part becomes nodata.
    """
    if not channels:
        raise InputError("this model takes no SAR input; leave the SAR raster out")
    refs = identify_bands(inputs, channels, sensor="sar", order=order, acquisition=acquisition)
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
        log.warning("SAR covers %.0f %% of the area; %s", 100 * frac,
                    "beyond it the clear pixels are kept and the hidden ones filled without SAR's guide" if optional
                    else "beyond it the output is nodata, as this model reads SAR at every pixel")
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
        "Calibrate to sigma0, or declare the units (dB or linear power)", input="sar", option="sar_units",
        path=refs[0].path)


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
