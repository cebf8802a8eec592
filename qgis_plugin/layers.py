"""Between QGIS layers and the library, gathered under one name: the dialog, the task and
the Processing algorithms import it as ``layers``. Each concern lives in its own module:

- :mod:`.layer_files`: layer -> the files GDAL reads;
- :mod:`.band_match`: band matching for display and the optical offset decision;
- :mod:`.layer_choice`: guessing the MS and SAR layers, extents in the MS layer's CRS,
  overlaps and where a layer lies;
- :mod:`.result_layers`: adding, naming and styling a run's result layers.

Library modules are imported inside the functions that need them, so importing this module
never imports torch.
"""

from __future__ import annotations

from .band_match import BandMatch, BandRow, OffsetDecision, band_source, match_bands, match_paths, offset_decision
from .layer_choice import (
    acquisition_date,
    area_pixels,
    by_date,
    extent_in_crs,
    guess_ms_layer,
    guess_sar_layers,
    intersects,
    is_visible,
    layer_rect_in,
    rank_layers,
    where_is,
)
from .layer_files import finest_file, layer_paths, layers_paths, raster_files
from .result_layers import (
    CLEAR_BLUE_REFLECTANCE,
    MASK_CLASSES,
    add_result_layers,
    apply_stretch,
    clear_stretch,
    map_units,
    result_layer_name,
    result_layer_names,
    rgb_band_numbers,
    style_map,
    style_mask,
    style_result,
    style_true_colour,
    unique_layer_name,
)

__all__ = [
    "CLEAR_BLUE_REFLECTANCE",
    "MASK_CLASSES",
    "BandMatch",
    "BandRow",
    "OffsetDecision",
    "acquisition_date",
    "add_result_layers",
    "apply_stretch",
    "area_pixels",
    "band_source",
    "by_date",
    "clear_stretch",
    "extent_in_crs",
    "finest_file",
    "guess_ms_layer",
    "guess_sar_layers",
    "intersects",
    "is_visible",
    "layer_paths",
    "layer_rect_in",
    "layers_paths",
    "map_units",
    "match_bands",
    "match_paths",
    "offset_decision",
    "rank_layers",
    "raster_files",
    "result_layer_name",
    "result_layer_names",
    "rgb_band_numbers",
    "style_map",
    "style_mask",
    "style_result",
    "style_true_colour",
    "unique_layer_name",
    "where_is",
]
