"""Checks a decloud makes before and after its work: option values that cannot work, a
cloud mask that cannot be placed on the optical grid, and a result with nothing in it.
Each refusal is a :class:`~sarclear.errors.SarclearError` that names the problem and the fix."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import GeoreferenceError, InputError
from .product_level import LEVELS
from .raster import Grid, RasterStack, open_raster, overlap_window
from .tiling import Window

if TYPE_CHECKING:
    from .inference import DecloudOptions

log = logging.getLogger(__name__)

#: a warning when fewer than this share of the area's pixels could be reconstructed
MIN_VALID_SHARE = 0.01


def check_options(opts: DecloudOptions) -> None:
    """Refuse option values that cannot work, before any input is opened."""
    def bad(what: str, value: object, need: str) -> InputError:
        return InputError(f"{what} is {value!r}; it must be {need}")

    if opts.batch_size is not None and (isinstance(opts.batch_size, bool) or opts.batch_size < 1):
        raise bad("the batch size", opts.batch_size, "a whole number of tiles, 1 or more")
    if opts.overlap is not None and opts.overlap < 0:
        raise bad("the tile overlap", opts.overlap, "0 or more pixels")
    if not math.isfinite(opts.mask_feather) or opts.mask_feather < 0:
        raise bad("the mask feather", opts.mask_feather, "0 or more pixels")
    for what, value in (("the fill buffer", opts.fill_buffer), ("the mask buffer", opts.mask_buffer)):
        if value is None and what == "the fill buffer":
            continue  # the default for the mask in use (DecloudOptions.fill_buffer_px)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
            raise bad(what, value, "a whole number of pixels from 0 to 64")
    if opts.ms_scale is not None and (not math.isfinite(opts.ms_scale) or opts.ms_scale <= 0):
        raise bad("the optical scale", opts.ms_scale, "a positive number of digital numbers per unit reflectance")
    if opts.ms_offset is not None and not math.isfinite(opts.ms_offset):
        raise bad("the optical offset", opts.ms_offset, "a finite number")
    if not math.isfinite(opts.adapt_seconds) or opts.adapt_seconds < 0:
        raise bad("the adaptation time", opts.adapt_seconds, "0 or more seconds")
    if opts.mask_mode == "auto" and opts.mask_method not in ("auto", "csmask", "rules"):
        raise bad("the cloud detector", opts.mask_method, "auto, csmask or rules")
    if opts.product_level is not None and str(opts.product_level).lower() not in LEVELS:
        raise InputError(f"the product level is {opts.product_level!r}; it must be l1c (top of atmosphere) or l2a "
                         "(surface reflectance), or left out to take it from the product", option="product_level")
    if opts.sun_azimuth is not None and (isinstance(opts.sun_azimuth, bool) or not math.isfinite(opts.sun_azimuth)
                                         or not 0 <= opts.sun_azimuth <= 360):
        raise InputError(f"the sun azimuth is {opts.sun_azimuth!r}; it must be in degrees from true north, 0 to 360 "
                         "(the product's mean solar azimuth), or left out to take it from the product",
                         option="sun_azimuth")
    if opts.panel_width < 1:
        raise bad("the panel width", opts.panel_width, "1 or more pixels")


def check_not_empty(valid_pixels: int, area: Window, stacks: dict[str, RasterStack]) -> None:
    """An output without a single valid pixel is an error that says which input is empty;
    one with very few valid pixels is kept, with a warning."""
    total = area.width * area.height
    if valid_pixels >= MIN_VALID_SHARE * total:
        return
    if valid_pixels > 0:
        log.warning("only %d of %d pixels (%.2f %%) could be reconstructed; the rest of the output is "
                    "nodata (optical nodata or NaN, or no SAR there)", valid_pixels, total, 100 * valid_pixels / total)
        return
    empty = []
    for key, what in (("ms", "the optical raster"), ("sar", "the SAR raster")):
        if key in stacks:
            look = stacks[key].open().read_decimated(area, min(area.width, 512), min(area.height, 512))
            if not np.isfinite(look).all(axis=0).any():
                empty.append(f"{what} ({', '.join(sorted({Path(b.path).name for b in stacks[key].bands}))})")
    why = (" and ".join(empty) + (" holds" if len(empty) == 1 else " hold") + " only nodata or NaN there") if empty \
        else "no pixel has valid optical and SAR values at once"
    raise InputError(f"nothing to reconstruct: in the area processed ({area.width} x {area.height} px) {why}; "
                     "check the inputs and the area, nothing was written")


def check_mask_grid(path: str | os.PathLike, grid: Grid, area: Window) -> None:
    """A cloud mask must sit on the optical grid: without a georeference it must have the
    optical raster's size (it is then taken pixel for pixel); with one it is warped, and a
    mask that covers only part of the area is named in a warning (outside it every pixel
    counts as cloud, so it is reconstructed)."""
    native = Grid.of(open_raster(path))
    if not (native.georeferenced and grid.georeferenced):
        if (native.width, native.height) != (grid.width, grid.height):
            raise GeoreferenceError(
                f"{path}: the cloud mask is {native.width} x {native.height} px, the optical raster "
                f"{grid.width} x {grid.height} px, and without a georeference on both it cannot be placed on the "
                "optical grid; give the mask the optical raster's size, or georeference it")
        return
    covered = overlap_window(grid, native, area)
    share = covered.width * covered.height / (area.width * area.height)
    if share < 1:
        log.warning("the cloud mask %s covers %.1f %% of the area; outside it every pixel is treated as cloud "
                    "and reconstructed", path, 100 * share)
