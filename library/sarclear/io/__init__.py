"""GDAL input/output: open (file, per-band files, folder, SAFE), discover band names and
order, stack, warp onto the optical grid, read windows, write GeoTIFFs atomically.

:func:`open_inputs` is the one entry that opens everything a run reads. The modules:

- :mod:`.gdalio`     GDAL calls with errors that name the file; data types
- :mod:`.grid`       pixel grids, bounds, overlaps
- :mod:`.discovery`  files and folders -> named bands (descriptions, file names, VRT sources,
                     acquisitions)
- :mod:`.stack`      :class:`RasterStack` and its window reader, warped VRTs
- :mod:`.opening`    optical, SAR and single-band stacks on the optical grid
- :mod:`.declared`   what an input declares about its radiometry; the scaling decision
- :mod:`.write`      output checks, dtype conversion, atomic GeoTIFF writer
- :mod:`.inputs`     :func:`open_inputs`
"""

from .declared import detect_optical_scaling, optical_scaling, read_declaration
from .discovery import BandRef, identify_bands, named_bands, raster_files, sar_channel_names
from .gdalio import RASTER_SUFFIXES, gdal_call, gdal_dtype_name, limit_gdal_cache, numpy_dtype, open_raster
from .grid import Grid, bounds_in, native_offset, overlap_window, same_crs
from .inputs import InputOptions, RunInputs, area_window, open_inputs
from .opening import open_optical, open_sar, open_single_band
from .order import BandOrderCheck, check_band_order
from .stack import RasterStack, StackReader, preview, warp_to_grid
from .write import GeoTiffWriter, check_output_path, to_dtype

__all__ = [
    "RASTER_SUFFIXES",
    "BandOrderCheck",
    "BandRef",
    "GeoTiffWriter",
    "Grid",
    "InputOptions",
    "RasterStack",
    "RunInputs",
    "StackReader",
    "area_window",
    "bounds_in",
    "check_band_order",
    "check_output_path",
    "detect_optical_scaling",
    "gdal_call",
    "gdal_dtype_name",
    "identify_bands",
    "limit_gdal_cache",
    "named_bands",
    "native_offset",
    "numpy_dtype",
    "open_inputs",
    "open_optical",
    "open_raster",
    "open_sar",
    "open_single_band",
    "optical_scaling",
    "overlap_window",
    "preview",
    "raster_files",
    "read_declaration",
    "same_crs",
    "sar_channel_names",
    "to_dtype",
    "warp_to_grid",
]
