"""Corrupt a clear Sentinel-2 raster with synthetic clouds, haze and shadows, window by
window (``sarclear clouds``): a cloudy raster in the input's data type and a cloud-opacity
raster, for testing a model where the truth is known."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from .bands import S2_BANDS
from .callbacks import CancelFn, ProgressFn
from .clouds import CloudConfig, CloudField
from .errors import Cancelled, InputError
from .inference import default_nodata
from .io import GeoTiffWriter, named_bands, open_optical, optical_scaling, preview, to_dtype
from .outputs import GEOTIFF, OutputSet
from .tiling import Window


def cloud_raster(
    clear: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    opacity_out: str | os.PathLike | None = None,
    config: CloudConfig | None = None,
    seed: int = 0,
    bands: Sequence[str] | None = None,
    block_rows: int = 256,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    order: Sequence[str] | None = None,
    scale: float | None = None,
    offset: float | None = None,
) -> dict[str, float]:
    """Write ``out``: the Sentinel-2 bands of ``clear`` (all it has, or ``bands``) with
    clouds, haze and shadows added (``order``: names of unlabelled bands in file order;
    ``scale``/``offset``: explicit radiometry, else declared or detected); and
    ``opacity_out``: the cloud + haze opacity (float32, 0..1). Returns summary statistics
    (mean opacity, fraction under thick cloud)."""
    outputs = OutputSet([clear], overwrite=overwrite)  # both rasters appear, or neither
    staged_out = outputs.add(out, formats=GEOTIFF)
    staged_opacity = outputs.add(opacity_out, formats=GEOTIFF) if opacity_out is not None else None
    if bands is None:
        refs, _ = named_bands(clear, sensor="optical", order=order)
        found = {r.name for r in refs}
        bands = [b for b in S2_BANDS if b in found]
    stack = open_optical(clear, bands, order=order)
    scaling = optical_scaling(stack, scale=scale, offset=offset).scaling
    grid = stack.grid
    field = CloudField(1, grid.height, grid.width, config, seed=seed)
    look = scaling.to_reflectance(preview(stack, 512).astype(np.float64))
    p98 = torch.tensor(np.nanpercentile(look.reshape(len(bands), -1), 98, axis=1), dtype=torch.float32)[None]
    nodata = stack.nodata[0] if stack.nodata[0] is not None else default_nodata(stack.dtype)
    reader = stack.open()
    covered, opacity_sum, pixels = 0.0, 0.0, 0
    with outputs, ExitStack() as files:
        writer = files.enter_context(GeoTiffWriter(
            staged_out, grid, len(bands), stack.dtype, nodata=nodata, descriptions=bands, overwrite=True,
            metadata={"SARCLEAR_SYNTHETIC_CLOUDS_SEED": str(seed)}, scale_offset=scaling.gdal_scale_offset()))
        opacity_writer = None if staged_opacity is None else files.enter_context(GeoTiffWriter(
            staged_opacity, grid, 1, gdal.GDT_Float32, nodata=float("nan"), overwrite=True,
            descriptions=["cloud and haze opacity at 490 nm (0..1)"]))
        total = (grid.height + block_rows - 1) // block_rows
        for k, top in enumerate(range(0, grid.height, block_rows)):
            if cancel and cancel():
                raise Cancelled("cancelled; nothing was written")
            win = Window(0, top, grid.width, min(block_rows, grid.height - top))
            raw, valid = reader.read(win)
            refl = torch.from_numpy(scaling.to_reflectance(raw.astype(np.float64)).astype(np.float32))[None]
            result = field.apply(torch.nan_to_num(refl), bands, top, 0, scene_p98=p98)
            dn = scaling.from_reflectance(result.cloudy[0].double().numpy())
            writer.write(win, to_dtype(dn, stack.dtype, valid, nodata))
            opacity = result.opacity[0, 0].numpy().copy()
            opacity[~valid] = np.nan
            if opacity_writer is not None:
                opacity_writer.write(win, opacity)
            covered += float(result.mask[0, 0].numpy()[valid].sum())
            opacity_sum += float(np.nansum(opacity))
            pixels += int(valid.sum())
            if progress:
                progress(k + 1, total, "blocks")
        if pixels == 0:
            raise InputError(f"{clear}: no valid pixel (nodata or NaN everywhere), so there is nothing to add "
                             "clouds to; nothing was written")
    return {"mean_opacity": opacity_sum / max(pixels, 1), "thick_cloud_fraction": covered / max(pixels, 1),
            "pixels": pixels, "output": str(Path(out))}
