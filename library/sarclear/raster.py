"""Deprecated import path: raster I/O lives in the :mod:`sarclear.io` package."""

from .io import *  # noqa: F403
from .io import __all__  # noqa: F401
from .io.discovery import _band_label, _band_sort_key, _pixel_size, _raster_files  # noqa: F401
from .io.gdalio import _CollectErrors  # noqa: F401
from .io.opening import _is_linear_power, _stack_meta  # noqa: F401
from .io.stack import _sample  # noqa: F401
from .io.write import _COMPRESSION, _compression_options, _overview_factors  # noqa: F401
from .tiling import Window  # noqa: F401
