"""QGIS layer -> the files GDAL reads: a raster layer's path (with the way out for layers
that are not files), the raster files of band files, folders or a .SAFE, and the one with
the finest pixels (the grid a run uses). Library modules are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from qgis.core import QgsMapLayer, QgsProviderRegistry, QgsRasterLayer


def layer_paths(layer: QgsMapLayer | None) -> list[str]:
    """The file(s) GDAL reads for a raster layer; raises the library's InputError (with the
    way out) for layers that are not GDAL files (WMS, memory, database rasters...)."""
    from sarclear.errors import InputError

    if layer is None:
        raise InputError("no layer chosen")
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        raise InputError(f"layer '{layer.name()}' is not a valid raster layer")
    if layer.providerType() != "gdal":
        raise InputError(f"layer '{layer.name()}' is a {layer.providerType()} raster, not a file: save it as "
                         "GeoTIFF first (right-click > Export > Save As...) and use that layer")
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
    if not path.startswith("/vsi") and not Path(path).is_file():
        raise InputError(f"layer '{layer.name()}': its file {path} is not on disk (a subdataset or a "
                         "remote source?); save it as GeoTIFF first and use that layer")
    return [path]


def layers_paths(layers: Iterable[QgsMapLayer]) -> list[str]:
    return [p for layer in layers for p in layer_paths(layer)]


def raster_files(paths: Sequence[str]) -> list[str]:
    """The raster files of band files, folders or a .SAFE (the library's listing)."""
    from sarclear.io import RASTER_SUFFIXES

    files = []
    for path in paths:
        p = Path(path)
        files += (sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES) if p.is_dir()
                  else [str(p)])
    return files


def finest_file(paths: Sequence[str]) -> str | None:
    """The raster file with the smallest pixels among band files, folders or a SAFE: the
    grid a run on them uses (the library reads every band on its finest band's grid)."""
    from osgeo import gdal

    best, size = None, float("inf")
    for path in raster_files(paths):
        ds = gdal.Open(path)
        if ds is None:
            continue
        pixel = abs(ds.GetGeoTransform()[1])
        if pixel < size:
            best, size = path, pixel
    return best
