"""GDAL calls with errors that name the file: open, call, cache limit, data types."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array

from ..errors import InputError

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc", ".hdf", ".h5", ".dat", ".bil")


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


_CONNECTION = re.compile(r"^[A-Z][A-Z0-9_]+:")


def is_connection_string(path: str) -> bool:
    """True for GDAL dataset names that are not file paths: ``DRIVER:...`` (the SENTINEL2
    driver's ``SENTINEL2_L2A:.../MTD_MSIL2A.xml:10m:EPSG_32633``, ``GTIFF_DIR:2:file.tif``...)."""
    return bool(_CONNECTION.match(path))


def open_raster(path: str | os.PathLike, *, update: bool = False) -> gdal.Dataset:
    """Open a raster with GDAL, with an error that says which file and why.

    Blocks are decoded on the calling thread: GDAL 3.6's multi-threaded GeoTIFF decoding
    (open option NUM_THREADS) returns corrupted values for some many-band files (seen with
    the 13-band Sen1Floods11 sample: "Bad value 12 for ExtraSamples"), so it is not used."""
    path = str(path)
    if not path.startswith("/vsi") and not is_connection_string(path) and not Path(path).exists():
        raise InputError(f"{path}: no such file; check the path", path=path)
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
