"""Writing: values back to the output data type, output checks, atomic tiled GeoTIFFs."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..atomic import commit, part_path, remove_stale_parts
from ..errors import InputError, OutputError
from ..tiling import Window
from .gdalio import _CollectErrors, gdal_call, numpy_dtype
from .grid import Grid

log = logging.getLogger(__name__)


def to_dtype(values: np.ndarray, dtype: int, valid: np.ndarray, nodata: float | None) -> np.ndarray:
    """Float values -> ``dtype`` (GDAL type): rounded and clipped to the type's range for
    integers. Invalid pixels get ``nodata``; a valid pixel that would land on the nodata
    value is moved one step away so it is not mistaken for nodata."""
    np_type = numpy_dtype(dtype)
    # float32 holds every 8- and 16-bit integer exactly; wider types need float64
    out = values.astype(np.float32 if np_type.itemsize <= 2 else np.float64)
    if np_type.kind in "ui":
        info = np.iinfo(np_type)
        # in place, with bounds of the array's own type: numpy's fast path (7x faster on a strip)
        np.rint(out, out=out)
        np.clip(out, out.dtype.type(info.min), out.dtype.type(info.max), out=out)
        if nodata is not None:
            step = 1 if nodata < info.max else -1
            np.copyto(out, out.dtype.type(nodata + step), where=(out == nodata) & valid)
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
        raise OutputError(f"{target} exists; choose another name, remove it, or allow overwriting",
                          input="out", option="overwrite", path=str(target))
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file name such as {target / 'out.tif'}",
                          input="out", path=str(target))
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first", input="out",
                          path=str(target))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another folder", input="out",
                          path=str(target))
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
        scale_offset: tuple[float, float] | None = None,
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
        self.scale_offset = scale_offset  # GDAL band (scale, offset): physical = value x scale + offset
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
            if self.scale_offset is not None:
                band.SetScale(float(self.scale_offset[0]))
                band.SetOffset(float(self.scale_offset[1]))
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
