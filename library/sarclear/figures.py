"""Figures in the spirit of the paper: quick-looks, error maps, band-wise errors and a
spectral profile (Figs. 2-4), and RMSE/SAM training curves (Fig. 5).

Quick-looks are stretched for display only (2nd-98th percentile of the reference, or of
the output when there is none, applied identically to every panel so they compare
honestly); the data written by sarclear is never stretched. Figures read decimated views,
never whole rasters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display needed; figures are files
import matplotlib.pyplot as plt
import numpy as np

from .atomic import atomic_path
from .bands import S2_RGB, S2_WAVELENGTH_NM
from .tiling import Window

if TYPE_CHECKING:  # raster reading (GDAL) is imported where used: the curves need no GDAL
    from .raster import RasterStack


def _save(fig: plt.Figure, path: str | os.PathLike, dpi: int) -> Path:
    """Save atomically (temp file + rename) and close the figure."""
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _rgb(refl: np.ndarray, names: Sequence[str], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    idx = [list(names).index(b) for b in S2_RGB]
    img = (refl[idx] - lo[:, None, None]) / (hi - lo)[:, None, None]
    return np.nan_to_num(np.clip(img, 0, 1)).transpose(1, 2, 0)


def _stretch(refl: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    idx = [list(names).index(b) for b in S2_RGB]
    sel = refl[idx].reshape(3, -1)
    lo = np.nanpercentile(sel, 2, axis=1)
    hi = np.nanpercentile(sel, 98, axis=1)
    return lo, np.maximum(hi, lo + 1e-6)


def _reflectance_preview(stack: RasterStack, size: int, window: Window | None = None) -> np.ndarray:
    from .raster import detect_optical_scaling, preview

    return detect_optical_scaling(stack).to_reflectance(preview(stack, size, window).astype(np.float64))


def _center_spectrum(stack: RasterStack, window: Window) -> np.ndarray:
    from .raster import detect_optical_scaling

    c = Window(window.col_off + window.width // 2, window.row_off + window.height // 2, 1, 1)
    raw, _ = stack.open().read(c)
    return detect_optical_scaling(stack).to_reflectance(raw[:, 0, 0].astype(np.float64))


def decloud_figure(
    path: str | os.PathLike,
    *,
    cloudy: str | os.PathLike | Sequence,
    output: str | os.PathLike,
    bands: Sequence[str],
    sar: str | os.PathLike | Sequence | None = None,
    sar_channels: Sequence[str] | None = None,
    reference: str | os.PathLike | Sequence | None = None,
    rmse_map: str | os.PathLike | None = None,
    sam_map: str | os.PathLike | None = None,
    metrics: dict | None = None,
    title: str = "",
    size: int = 512,
) -> Path:
    """A paper-style figure of one decloud: cloudy input, SAR, output and reference
    quick-looks; RMSE and SAM maps; band-wise RMSE; the spectra at the centre pixel."""
    from .raster import open_optical, open_raster, open_sar, preview

    out_stack = open_optical(output, bands)
    grid = out_stack.grid
    cloudy_stack = open_optical(cloudy, bands, grid=grid)
    ref_stack = open_optical(reference, bands, grid=grid) if reference is not None else None
    whole = grid.window
    views = {"Cloudy input": _reflectance_preview(cloudy_stack, size),
             "Output (sarclear)": _reflectance_preview(out_stack, size)}
    if ref_stack is not None:
        views["Reference (cloud-free)"] = _reflectance_preview(ref_stack, size)
    lo, hi = _stretch(views.get("Reference (cloud-free)", views["Output (sarclear)"]), bands)

    is_error = reference is not None
    fig, axes = plt.subplots(2, 4, figsize=(17, 8.6))
    panels = list(views.items())
    if sar is not None:
        if not sar_channels:  # as a run names them (descriptions, file names, VV/VH order)
            from .io import sar_channel_names

            sar_channels = sar_channel_names(sar) or ("VV",)
        sar_stack = open_sar(sar, sar_channels, grid)
        panels.insert(1, (f"SAR {sar_channels[0]} (dB)", preview(sar_stack, size)[0]))
    for ax, (name, img) in zip(axes[0], panels):
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=np.nanpercentile(img, 2), vmax=np.nanpercentile(img, 98))
        else:
            ax.imshow(_rgb(img, bands, lo, hi))
        ax.set_title(name)
    for ax in axes[0][len(panels):]:
        ax.axis("off")
    for ax in axes[0][:len(panels)]:
        ax.set_xticks([])
        ax.set_yticks([])

    kind = "error vs reference" if is_error else "change, input vs output"
    for ax, (name, p, unit, cmap) in zip(axes[1][:2], (("RMSE", rmse_map, "reflectance", "magma"),
                                                       ("SAM", sam_map, "degrees", "viridis"))):
        if p is None:
            ax.axis("off")
            continue
        ds = open_raster(p)
        scale = max(1.0, max(ds.RasterXSize, ds.RasterYSize) / size)
        m = ds.GetRasterBand(1).ReadAsArray(buf_xsize=max(1, round(ds.RasterXSize / scale)),
                                            buf_ysize=max(1, round(ds.RasterYSize / scale))).astype(np.float32)
        vmax = np.nanpercentile(m, 99) if np.isfinite(m).any() else 1.0
        im = ax.imshow(m, cmap=cmap, vmin=0, vmax=vmax)
        ax.set_title(f"{name} map ({kind})")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, label=unit)

    ax = axes[1][2]
    if metrics and "rmse_per_band" in metrics:
        names = list(metrics["rmse_per_band"])
        ax.bar(names, [metrics["rmse_per_band"][b] for b in names], color="tab:blue")
        ax.set_ylabel("RMSE (reflectance)")
        ax.set_title(f"Band-wise RMSE ({kind})\nRMSE {metrics['rmse']:.4f}, SAM {metrics['sam_deg']:.2f} deg")
        ax.tick_params(axis="x", rotation=45)
    else:
        ax.axis("off")

    ax = axes[1][3]
    wl = [S2_WAVELENGTH_NM[b] for b in bands]
    for name, stack, style in (("cloudy input", cloudy_stack, "r--"), ("output", out_stack, "b-"),
                               ("reference", ref_stack, "k-")):
        if stack is not None:
            ax.plot(wl, _center_spectrum(stack, whole), style, marker="o", ms=3, label=name)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("reflectance")
    ax.set_title("Spectral profile at the centre pixel")
    ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=90)


def training_curves_figure(path: str | os.PathLike, histories: dict[str, list[dict]], title: str = "") -> Path:
    """The paper's Fig. 5: overall RMSE and SAM per epoch, train vs test, for each model
    trained (e.g. SAR-Opt-cGAN and Opt-cGAN). ``histories`` maps a model name to its
    per-evaluation records with keys epoch, split ("train"/"test"), rmse, sam_deg."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, records) in enumerate(histories.items()):
        for split, style in (("train", "--"), ("test", "-")):
            rows = sorted((r for r in records if r["split"] == split), key=lambda r: r["epoch"])
            if not rows:
                continue
            x = [r["epoch"] for r in rows]
            for ax, key in zip(axes, ("rmse", "sam_deg")):
                ax.plot(x, [r[key] for r in rows], style, marker="o", color=colours[k % len(colours)],
                        label=f"{name} {split}")
    for ax, label in zip(axes, ("RMSE (reflectance)", "SAM (degrees)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=100)


def fill_curves_figure(path: str | os.PathLike, losses: list[dict], history: list[dict], title: str = "") -> Path:
    """Gap-fill training curves: the loss parts per step (left) and the validation RMSE under
    the mask of the model against normalized-convolution and mean fill (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if losses:
        x = [r["step"] for r in losses]
        for key in ("l1", "nll", "gate_bce"):
            if key in losses[0]:
                axes[0].plot(x, [r[key] for r in losses], label=key)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    if history:
        x = [r["step"] for r in history]
        for key, label, style in (("model_all", "model", "-o"), ("nc_all", "normalized convolution", "--"),
                                  ("mean_all", "mean fill", ":")):
            if key in history[0]:
                axes[1].plot(x, [r[key] for r in history], style, label=label)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("validation RMSE under the mask (reflectance)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=100)
