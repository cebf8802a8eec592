"""Cloud and shadow masks for whole rasters: :mod:`sarclear.masks`'s detection run over an
optical stack of any size, window by window, written as GeoTIFFs (classes, and the cloud
probability where the detector gives one).

:func:`detect_raster` streams a raster in windows of ``window_px`` with ``overlap_px`` of
context on each side: memory is about 70 bytes per pixel read, ~500 MB with the defaults (2048 +
2 x 320 px), whatever the raster's size. The 30 m blocks (step 1 of :mod:`sarclear.masks`) are
aligned to the raster's grid, so the spectral-rule result equals a single-window run exactly as
long as ``overlap_px`` covers the reach of the rules (shadow distance + 153 px of cloud
reconstruction + ``dilate_px``, 315 px with the defaults); the CNN's differs only where its
tiles see other context near window edges.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .callbacks import CancelFn, ProgressFn
from .errors import Cancelled, InputError
from .mask_detectors import (
    CLEAR,
    CLOUD,
    SHADOW,
    CsmaskRunner,
    csmask_band_order,
    csmask_core,
    rules_bands,
    shadow_reference,
)
from .masks import (
    NODATA,
    RULES_LABEL,
    MaskOptions,
    MaskSummary,
    announce,
    choose_method,
    class_fractions,
    count_classes,
    detect_window,
    scene_notes,
)
from .product_level import resolve_level
from .raster import GeoTiffWriter, RasterStack
from .scaling import OpticalScaling
from .sun import stack_sun
from .tiling import Window

log = logging.getLogger(__name__)


def grid_pixel_size_m(grid) -> tuple[float, list[str]]:
    """Ground size of a pixel of ``grid`` (a :class:`sarclear.raster.Grid`) in metres, and a
    note when it had to be assumed. Geographic CRSs are converted at the grid's centre."""
    gt = grid.geotransform
    dx, dy = math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])
    if not grid.georeferenced:
        note = "the optical raster has no georeference: its pixels are taken as 10 m"
        log.info(note)
        return 10.0, [note]
    srs = grid.srs()
    if srs is not None and srs.IsGeographic():
        lat = math.radians(gt[3] + gt[5] * grid.height / 2)
        dx, dy = dx * 111_320 * math.cos(lat), dy * 110_574
    elif srs is not None:
        dx, dy = dx * srs.GetLinearUnits(), dy * srs.GetLinearUnits()
    return math.sqrt(dx * dy), []


def detect_raster(stack: RasterStack, scaling: OpticalScaling, out_path: str | os.PathLike,
                  area: Window | None = None, product_level: str | None = None,
                  options: MaskOptions | None = None, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None, overwrite: bool = False,
                  probability_path: str | os.PathLike | None = None, sun_azimuth: float | None = None) -> MaskSummary:
    """Detect cloud and shadow over ``area`` (default: all) of an optical stack and write the
    classes as a tiled uint8 GeoTIFF on the area's grid (band "class", nodata 255), and the
    cloud probability, where the detector gives one, to ``probability_path`` (default: beside it
    as ``<name>_probability.tif``; float32, band "cloud_probability", nodata NaN). Windows of
    ``window_px`` are read with ``overlap_px`` of context on each side, so memory does not
    grow with the raster. Both
    files appear complete or not at all. ``sun_azimuth``: the sun's azimuth in degrees from true
    north for the shadow check (:mod:`sarclear.masks`, step 3); None: from the input
    (:func:`sarclear.sun.stack_sun`), unless ``options`` gives it in the grid's frame."""
    from osgeo import gdal

    opts = options or MaskOptions()
    area = (area or stack.grid.window).intersection(stack.grid.window)
    if area.empty:
        raise InputError("the area to mask does not overlap the optical raster")
    level, notes = resolve_level(stack, scaling, product_level)
    pixel_m, more = grid_pixel_size_m(stack.grid)
    if opts.sun_azimuth_deg is None:
        sun, how = stack_sun(stack, sun_azimuth)
        log.info(how)
        opts = replace(opts, sun_azimuth_deg=sun)
    factor = max(1, round(opts.working_resolution_m / pixel_m))
    margin = -(-opts.overlap_px // factor) * factor
    seen = min(min(stack.grid.width, area.width + 2 * margin), min(stack.grid.height, area.height + 2 * margin))
    method, why = choose_method(opts, stack.names, seen * pixel_m)
    if method == "csmask":  # whole CNN tiles per window
        step = csmask_core(opts.window_px // factor, margin // factor) * factor
    else:
        step = max(factor, opts.window_px // factor * factor)
    names = csmask_band_order(stack.names)[1] if method == "csmask" else rules_bands(stack.names)
    keep = [stack.names.index(b) for b in names]
    sub = replace(stack, bands=tuple(stack.bands[i] for i in keep),
                  nodata=tuple(stack.nodata[i] for i in keep),
                  descriptions=tuple(stack.descriptions[i] for i in keep))
    runner = CsmaskRunner(level, names, opts.threads) if method == "csmask" else None
    reader = sub.open()
    reference = None if runner else _scene_reference(reader, area, scaling, names, level, factor)

    out_path = Path(out_path)
    prob_path = (Path(probability_path) if probability_path else out_path.with_name(f"{out_path.stem}_probability.tif")
                 ) if runner else None
    grid = stack.grid.subgrid(area)
    label = runner.label if runner else RULES_LABEL
    meta = {"CLASSES": f"{CLEAR}=clear,{CLOUD}=cloud,{SHADOW}=shadow,{NODATA}=nodata", "METHOD": label,
            "PRODUCT_LEVEL": level.upper()}
    if opts.sun_azimuth_deg is not None:  # in the grid's frame, as the shadow check used it
        meta["SUN_AZIMUTH_GRID"] = f"{opts.sun_azimuth_deg:.2f}"
    cores = [Window(area.col_off + c, area.row_off + r, min(step, area.width - c), min(step, area.height - r))
             for r in range(0, area.height, step) for c in range(0, area.width, step)]
    counts = np.zeros(3, np.int64)
    with contextlib.ExitStack() as files:
        out = files.enter_context(GeoTiffWriter(out_path, grid, 1, gdal.GDT_Byte, nodata=NODATA,
                                                descriptions=["class"], metadata=meta, overwrite=overwrite))
        prob_out = None if prob_path is None else files.enter_context(
            GeoTiffWriter(prob_path, grid, 1, gdal.GDT_Float32, nodata=float("nan"),
                          descriptions=["cloud_probability"], metadata=meta, overwrite=overwrite))
        for k, core in enumerate(cores):
            if cancel and cancel():
                raise Cancelled("cancelled; no cloud mask was written")
            c0 = max(0, (core.col_off - margin) // factor * factor)
            r0 = max(0, (core.row_off - margin) // factor * factor)
            win = Window(c0, r0, min(stack.grid.width, core.right + margin) - c0,
                         min(stack.grid.height, core.bottom + margin) - r0)
            x, ok = reader.read(win)
            x += np.float32(scaling.offset)  # to reflectance, in place
            x /= np.float32(scaling.dn_per_reflectance)
            res = detect_window(x, names, ok, level, pixel_m, opts, runner, reference)
            inner = core.relative_to(win).toslices()
            classes = res.classes[inner]
            counts += count_classes(classes)
            out.write(core.relative_to(area), classes)
            if prob_out is not None:
                prob_out.write(core.relative_to(area), res.probability[inner])
            if progress:
                progress(k + 1, len(cores), "cloud mask windows")
    cloud_f, shadow_f, valid = class_fractions(*counts.tolist())
    notes = notes + more + announce(label, why + scene_notes(cloud_f, shadow_f, valid, opts))
    return MaskSummary(out_path, label, cloud_f, shadow_f, valid, notes, prob_path)


def _scene_reference(reader, area: Window, scaling: OpticalScaling, names: Sequence[str], level: str,
                     factor: int) -> tuple[float, float]:
    """The spectral rules' shadow reference from a decimated read of the whole area (at most
    1024 px a side), so that every window measures shadow against the same scene."""
    scale = max(factor, -(-max(area.width, area.height) // 1024))
    w, h = max(1, area.width // scale), max(1, area.height // scale)
    x = scaling.to_reflectance(reader.read_decimated(area, w, h))
    return shadow_reference(x, names, np.isfinite(x).all(axis=0) & (x > 0).any(axis=0), level)
