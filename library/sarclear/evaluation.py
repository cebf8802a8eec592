"""Scoring a reconstruction: per-pixel RMSE and SAM maps (GeoTIFF) and metrics (JSON),
streamed block by block so rasters of any size are scored in bounded memory.

Used by ``sarclear evaluate`` and after ``sarclear decloud``: against a cloud-free
reference these are *error* maps; against the cloudy input they are *change* maps (how much
the decloud changed each pixel) and are named so.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from . import __version__
from .atomic import atomic_path
from .errors import Cancelled, InputError
from .io import GeoTiffWriter, open_optical, optical_scaling
from .metrics import MetricAccumulator, rmse_map, sam_map, ssim_map
from .outputs import GEOTIFF, JSON, OutputSet
from .radiometry import OpticalScaling, ScalingDecision
from .tiling import Window

log = logging.getLogger(__name__)

_SSIM_HALO = 5  # rows of context above and below a block for the 11 x 11 SSIM window


def map_paths(out: str | os.PathLike, is_reference: bool) -> dict[str, Path]:
    """Where the maps and metrics of ``out`` go: ``<stem>_rmse.tif``, ``<stem>_sam.tif``,
    ``<stem>_metrics.json`` (against a reference) or ``<stem>_change_*`` (against the input)."""
    out = Path(out)
    stem = out.with_suffix("").name + ("" if is_reference else "_change")
    return {"rmse": out.with_name(f"{stem}_rmse.tif"), "sam": out.with_name(f"{stem}_sam.tif"),
            "metrics": out.with_name(f"{stem}_metrics.json")}


def evaluate(
    prediction: str | os.PathLike | Sequence[str | os.PathLike],
    reference: str | os.PathLike | Sequence[str | os.PathLike],
    bands: Sequence[str],
    *,
    rmse_path: str | os.PathLike | None = None,
    sam_path: str | os.PathLike | None = None,
    metrics_path: str | os.PathLike | None = None,
    prediction_scaling: OpticalScaling | None = None,
    reference_scaling: OpticalScaling | None = None,
    reference_order: Sequence[str] | None = None,
    scale: float | None = None,
    offset: float | None = None,
    kind: str = "error",
    window: Window | None = None,
    block_rows: int = 256,
    overwrite: bool = False,
    cancel=None,
    provenance: dict | None = None,
) -> dict:
    """Compare ``prediction`` with ``reference`` on ``bands`` (reflectance); the reference is
    read on the prediction's grid (warped if it is on another). ``window``: only this pixel
    window of the prediction. ``scale``/``offset``: explicit radiometry for both rasters where
    ``prediction_scaling``/``reference_scaling`` are not given (else declared or detected).
    Writes the RMSE and SAM maps (float32, NaN nodata) and the metrics JSON where paths are
    given, as one set (all or none); returns the metrics."""
    outputs = OutputSet([prediction, reference], overwrite=overwrite)
    staged = {name: outputs.add(p, formats=JSON if name == "metrics" else GEOTIFF)
              for name, p in (("rmse", rmse_path), ("sam", sam_path), ("metrics", metrics_path)) if p is not None}
    pred = open_optical(prediction, bands)
    ref = open_optical(reference, bands, grid=pred.grid, order=reference_order)
    ps_decision = _decision(pred, prediction_scaling, "prediction", scale, offset)
    rs_decision = _decision(ref, reference_scaling, "reference", scale, offset)
    ps, rs = ps_decision.scaling, rs_decision.scaling
    area = pred.grid.window if window is None else window.intersection(pred.grid.window)
    if area.empty:
        raise InputError(f"window {window} lies outside {prediction}")
    grid = pred.grid.subgrid(area)
    acc = MetricAccumulator(tuple(bands))
    units = {"rmse": "reflectance", "sam": "degrees"}
    what = {"error": "against the reference", "change": "between cloudy input and output"}[kind]
    with outputs, ExitStack() as files:  # the maps and the metrics appear together, or not at all
        writers = {name: files.enter_context(GeoTiffWriter(
            staged[name], grid, 1, gdal.GDT_Float32, nodata=float("nan"), units=units[name], overwrite=True,
            descriptions=[f"{name.upper()} {what} ({units[name]})"], metadata={"SARCLEAR_MAP": f"{kind}_{name}"}))
            for name in ("rmse", "sam") if name in staged}
        pr, rr = pred.open(), ref.open()
        area_valid = 0
        for top in range(0, grid.height, block_rows):
            if cancel and cancel():
                raise Cancelled("cancelled; no map was written")
            n = min(block_rows, grid.height - top)
            lo, hi = max(0, top - _SSIM_HALO), min(grid.height, top + n + _SSIM_HALO)
            win = Window(area.col_off, area.row_off + lo, grid.width, hi - lo)
            p_raw, p_ok = pr.read(win)
            r_raw, r_ok = rr.read(win)
            x = ps.to_reflectance(torch.from_numpy(p_raw).double())
            y = rs.to_reflectance(torch.from_numpy(r_raw).double())
            valid = torch.from_numpy(p_ok & r_ok)
            xs, ys = torch.where(valid, x, 0), torch.where(valid, y, 0)
            ssim = ssim_map(xs, ys)[0]
            inner = slice(top - lo, top - lo + n)
            acc.update(x[:, inner], y[:, inner], valid[inner], ssim=ssim[inner])
            maps = {"rmse": rmse_map(x[:, inner], y[:, inner]), "sam": sam_map(x[:, inner], y[:, inner])}
            for name, w in writers.items():
                m = maps[name].float().numpy()
                m[~valid[inner].numpy()] = np.nan
                w.write(Window(0, top, grid.width, n), m)
            area_valid += int(p_ok[top - lo:top - lo + n].sum())
        metrics = acc.result()
        metrics.update({"kind": kind, "bands": list(bands), "area_pixels": grid.width * grid.height,
                        "prediction_pixels": area_valid})
        _check_coverage(metrics, kind, prediction, reference)
        metrics["provenance"] = {
            "sarclear_version": __version__, "prediction": _paths(prediction), "reference": _paths(reference),
            "prediction_bands": pred.band_mapping(), "reference_bands": ref.band_mapping(),
            "prediction_scaling": ps_decision.to_dict(), "reference_scaling": rs_decision.to_dict(),
            **(provenance or {})}
        if "metrics" in staged:
            files.close()  # the maps are complete before the metrics are written
            write_json(staged["metrics"], metrics)
    return metrics


def _decision(stack, declared: OpticalScaling | None, what: str, scale: float | None = None,
              offset: float | None = None) -> ScalingDecision:
    """``declared`` (an OpticalScaling) if given, else the rule with the caller's scale/offset."""
    if declared is None:
        return optical_scaling(stack, scale=scale, offset=offset, what=what)
    return optical_scaling(stack, scale=declared.dn_per_reflectance, offset=declared.offset, what=what)


def _paths(value) -> str | list[str]:
    return str(value) if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


#: a warning when the pixels scored are fewer than this share of the prediction's valid pixels
MIN_SCORED_SHARE = 0.05


def _check_coverage(metrics: dict, kind: str, prediction, reference) -> None:
    """No pixel to score is an error; a small share of the prediction scored, a warning."""
    scored, valid = metrics["pixels"], metrics["prediction_pixels"]
    against = "the reference" if kind == "error" else "the input"
    if scored == 0:
        raise InputError(f"nothing to score: no pixel is valid in both the prediction ({prediction}) and "
                         f"{against} ({reference}) (nodata or NaN everywhere, or no overlap)")
    if scored < MIN_SCORED_SHARE * valid:
        log.warning("the scores cover only %d of the prediction's %d valid pixels (%.2f %%): %s is nodata or "
                    "NaN elsewhere, so they may not represent the whole image", scored, valid,
                    100 * scored / valid, against)


def error_maps(out: str | os.PathLike, reference, bands: Sequence[str], *, is_reference: bool,
               reference_scaling: OpticalScaling | None = None,
               reference_order: Sequence[str] | None = None,
               overwrite: bool = False, cancel=None,
               provenance: dict | None = None) -> tuple[dict[str, Path], dict, Path]:
    """The maps and metrics written after a decloud (see :func:`map_paths`)."""
    paths = map_paths(out, is_reference)
    metrics = evaluate(out, reference, bands, rmse_path=paths["rmse"], sam_path=paths["sam"],
                       metrics_path=paths["metrics"], reference_scaling=reference_scaling,
                       reference_order=reference_order, kind="error" if is_reference else "change",
                       overwrite=overwrite, cancel=cancel, provenance=provenance)
    return {"rmse": paths["rmse"], "sam": paths["sam"]}, metrics, paths["metrics"]


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as strict JSON, atomically (temp file + rename): NaN and infinities
    (an undefined or unbounded score, e.g. PSNR of identical images) become ``null``, so
    every JSON reader can parse the file."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def json_safe(value):
    """``value`` with non-finite floats as None and numpy scalars and paths as plain values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
