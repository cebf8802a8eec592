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


def threaded_decoding_unsafe() -> bool:
    """True where the user asked GDAL for multi-threaded decoding (``GDAL_NUM_THREADS``) and
    this GDAL decodes band-separate GeoTIFFs wrongly with it: 3.6.0 to 3.7.2 (worker threads
    fail with "Bad value N for ExtraSamples", and corrupted values were seen here with the
    13-band Sen1Floods11 sample; OSGeo/gdal#7963, fixed in 3.7.1, and a decoder/encoder clash,
    #8470, fixed in 3.7.3)."""
    threads = gdal.GetConfigOption("GDAL_NUM_THREADS")
    return 3060000 <= int(gdal.VersionInfo()) < 3070300 and threads not in (None, "", "1")


def open_raster(path: str | os.PathLike, *, update: bool = False) -> gdal.Dataset:
    """Open a raster with GDAL, with an error that says which file and why.

    The library never turns on GDAL's multi-threaded GeoTIFF decoding; where the user did
    (``GDAL_NUM_THREADS``) on a GDAL that decodes wrongly with it (:func:`threaded_decoding_unsafe`),
    a GeoTIFF is opened with it off (open option ``NUM_THREADS=1``)."""
    path = str(path)
    if not path.startswith("/vsi") and not is_connection_string(path) and not Path(path).exists():
        raise InputError(f"{path}: no such file; check the path", path=path)
    flags = gdal.OF_RASTER | (gdal.OF_UPDATE if update else gdal.OF_READONLY)
    ds = gdal_call(f"{path}: not a raster GDAL can read", gdal.OpenEx, path, flags)
    if ds.GetDriver().ShortName == "GTiff" and threaded_decoding_unsafe():
        log.info("%s: GDAL %s decodes GeoTIFFs wrongly on several threads; read on one (GDAL_NUM_THREADS=%s "
                 "ignored for it)", path, gdal.__version__, gdal.GetConfigOption("GDAL_NUM_THREADS"))
        ds = None
        ds = gdal_call(f"{path}: not a raster GDAL can read", gdal.OpenEx, path, flags,
                       open_options=["NUM_THREADS=1"])
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
