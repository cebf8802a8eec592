"""Seamless tiled inference: decloud an optical raster of any size with SAR, streaming.

The area (the whole optical raster or an area of interest) is cut into overlapping tiles of
the model's size (:mod:`sarclear.tiling`). Tile rows are read one strip at a time on a
reader thread while the previous strip is computed; tiles are batched through the
generator (bf16 autocast on CUDA, fp32 on the CPU), their predictions blended with smooth
weights into a strip buffer, and finished rows handed to a writer thread that converts them
back to the input's data type and writes them into a temporary GeoTIFF, renamed into place
at the end. Memory is bounded by one strip (tile height x area width), whatever the height.

Pixels where the optical input is nodata, or where SAR is missing, are nodata in the
output. With a cloud mask, pixels the mask calls clear keep their original values and the
prediction is blended in smoothly at the mask's borders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from osgeo import gdal

from . import __version__
from .callbacks import CancelFn, ProgressFn
from .checkpoint import Model, load_model
from .defaults import MASK_BUFFER_PX, fill_buffer_px
from .dehaze import dehaze_veil
from .devices import autocast, is_out_of_memory, resolve_device
from .errors import CheckpointError, DeviceError, InputError
from .evaluation import evaluate, map_paths
from .fill import fill_sources, fill_variance
from .io import (
    GeoTiffWriter,
    InputOptions,
    RasterStack,
    area_window,  # noqa: F401  (public here since 0.1)
    numpy_dtype,
    open_inputs,
    open_single_band,
)
from .outputs import GEOTIFF, JSON, PNG, OutputSet
from .product_level import resolve_level
from .provenance import run_provenance
from .radiometry import network_to_reflectance
from .sar_guide import SAR_MISSING, model_prior
from .scene_prep import (
    DETECTED_MASK,
    adapt_to_scene,
    clear_stats,
    detect_mask,
    fill_notes,
    scene_view,
    user_mask_notes,
)
from .streaming import TileStream, panels  # noqa: F401  (panels: public here)
from .thin_cloud import keep_detail
from .tiling import Window
from .validation import check_mask_grid, check_not_empty, check_options

log = logging.getLogger(__name__)


@dataclass
class DecloudOptions:
    """How to run a decloud; every field has a sensible default."""

    device: str = "auto"                 # auto, cpu, cuda, cuda:N
    precision: str = "auto"              # auto (bf16 on CUDA), bf16, fp32
    batch_size: int | None = None        # tiles per batch; None: 4 on CPU, 32 on CUDA
    overlap: int | None = None           # pixels shared by neighbouring tiles; None: tile / 4
    aoi: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax, optical CRS
    window: Window | None = None         # or a pixel window of the optical raster
    cloud_mask: str | None = "auto"      # "auto": detect clouds and shadows; None/"none": no mask;
                                         # else a raster: 0 clear, > 0 cloud (float: cloud probability)
    mask_method: str = "auto"            # detector for "auto": auto (ukis-csmask, else rules), csmask, rules
    product_level: str | None = None     # "l1c" / "l2a" for the detector and the fill's uncertainty; None:
                                         # what the input says (product_level.product_level_of), else guessed
    mask_feather: float = 0.0            # pixels inside the mask over which the estimate fades in (0: none)
    fill_buffer: int | None = None       # clear pixels this close to the mask do not feed the fill (fill.fill_sources);
                                         # None: 90 m past the cloud's edge (defaults.fill_buffer_px: 0 when detected)
    mask_buffer: int = MASK_BUFFER_PX    # "auto": detected cloud and shadow grow by this many pixels (masks.py)
    sun_azimuth: float | None = None     # "auto": the sun's azimuth, degrees from true north, for the shadow check;
                                         # None: from the input (sarclear.sun), else no such check
    ms_bands: Sequence[str] | None = None      # names of unlabelled optical bands, in file order
    sar_channels: Sequence[str] | None = None  # names of unlabelled SAR bands, in file order
    sar_units: str = "auto"              # db, linear, auto
    ms_scale: float | None = None        # optical DN per unit reflectance; None: declared or detected
    ms_offset: float | None = None       # added to DN before scaling (baseline >= 04.00: -1000); None: declared
    ms_acquisition: str | None = None    # date, sensing time or product id: one acquisition of a folder
    sar_acquisition: str | None = None
    overwrite: bool = False
    cog: bool = False                    # write a Cloud Optimized GeoTIFF
    overviews: bool = False              # internal overviews in a plain GeoTIFF
    compress: str = "deflate"            # deflate (level 1), zstd (level 1), lzw, none
    io_threads: bool = True              # overlap reading, computing and writing
    panel_width: int = 4096              # columns processed at a time: bounds memory on wide rasters
    adapt: bool = False                  # fine-tune a copy of the model on the scene's clear pixels first
    adapt_seconds: float = 180.0         # time budget of that fitting
    adapt_size: int = 1024               # side of the central window (pixels) it learns from

    @property
    def mask_mode(self) -> str:
        """How ``cloud_mask`` is meant: "auto" (detect), "none" (no mask) or "file"."""
        text = str(self.cloud_mask).lower()
        return text if self.cloud_mask is None or text in ("auto", "none") else "file"

    @property
    def fill_buffer_px(self) -> int:
        """The fill buffer in use: ``fill_buffer``, else the default for this kind of mask."""
        detected = self.mask_mode == "auto"
        return self.fill_buffer if self.fill_buffer is not None else fill_buffer_px(detected, self.mask_buffer)


@dataclass
class DecloudResult:
    """What a decloud wrote and measured."""

    output: Path
    window: Window
    tiles: int
    seconds: float
    device: str
    batch_size: int
    maps: dict[str, Path] = field(default_factory=dict)
    metrics: dict | None = None
    metrics_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    figure: Path | None = None
    product_level: str | None = None  # "l1c" / "l2a", where the detector or the fill's uncertainty used it
    haze: float = 0.0                 # the clear pixels' sarclear.fill.haze_excess (mask-aware models)


def side_paths(out: str | os.PathLike) -> dict[str, Path]:
    """Where the detected cloud mask (``<stem>_mask.tif``), its cloud probability
    (``<stem>_mask_probability.tif``, when the detector gives one) and the uncertainty map
    (``<stem>_uncertainty.tif``) of ``out`` go."""
    out = Path(out)
    stem = out.with_suffix("").name
    return {"mask": out.with_name(f"{stem}_mask.tif"), "probability": out.with_name(f"{stem}_mask_probability.tif"),
            "uncertainty": out.with_name(f"{stem}_uncertainty.tif")}


def default_nodata(dtype: int) -> float:
    """Nodata for outputs whose input declared none: 0 for integers (Sentinel-2's own fill
    value), NaN for floating point."""
    return float("nan") if numpy_dtype(dtype).kind == "f" else 0.0


class TileEngine:
    """Runs batches of tiles through a generator on one device, halving the batch on
    out-of-memory and remembering the size that fits."""

    def __init__(self, model: Model, device: torch.device, batch_size: int, precision: str = "auto",
                 fill_buffer: int = 0):
        self.model, self.device, self.batch_size, self.precision = model, device, batch_size, precision
        self.fill_buffer = fill_buffer
        self.generator = model.generator.to(device).eval()
        self.notes: list[str] = []

    def __call__(self, ms: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """Plain generator: network-range tiles (N, C, H, W) -> reflectance predictions
        (N, C_out, H, W), fp32."""
        return self._batched(lambda m, s: (network_to_reflectance(self.generator(m, s).float()),), ms, sar)[0]

    def fill(self, observed: torch.Tensor, clear: torch.Tensor, sar: torch.Tensor,
             fallback: torch.Tensor | None = None, valid: torch.Tensor | None = None, haze: float = 0.0,
             classes: dict[tuple[int, ...], torch.Tensor] | None = None, veil_level: str | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask-aware generator: observed reflectance (N, C, H, W), clear weight (N, 1, H, W),
        SAR in network range (N, S, H, W), and optionally the pixels with data (N, 1, H, W; bool)
        -> (estimate, variance), reflectance, fp32.

        Hidden pixels keep their observed (cloudy, hazy) values: the network de-hazes thin cloud
        from them. The prior is each tile's normalized-convolution fill of its clear pixels farther
        than ``fill_buffer`` from the mask (:func:`sarclear.fill.classical_fill`), fading to
        ``fallback`` (2, C: the scene's clear mean and standard deviation) beyond
        ``FILL_REACH_PX`` of them; a tile with no clear pixel takes the fallback throughout (a
        SAR-guided model: each SAR class fades to its scene mean, ``classes``). A
        model whose config has ``fill_sigma`` reports the variance of that fill from its spread
        and the scene's ``haze`` (:func:`sarclear.fill.fill_variance`); the others their own
        ``log_var``. A model
        whose config has ``keep_detail`` adds the observed detail under thin cloud to its estimate
        (:func:`sarclear.thin_cloud.keep_detail`); with ``veil_level`` (the product level of a scene
        that a veil hides whole, :attr:`~sarclear.scene_prep.ClearStats.veiled`) its estimate is the
        observed pixels de-hazed instead where a veil is what they see
        (:func:`sarclear.dehaze.dehaze_veil`): there is no clear ground to fill from, and the veiled
        ground is nearer the truth than any fill of it."""
        config = self.model.config

        def run(obs: torch.Tensor, clr: torch.Tensor, s: torch.Tensor, ok: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
            sources = fill_sources(clr.float(), self.fill_buffer)
            sar_db = sar_valid = None
            if config.sar_guide:
                sar_db = config.sar_scaling().from_network(s.float())
                sar_valid = (s > SAR_MISSING / 2).all(dim=1, keepdim=True)
            classical = model_prior(obs.float(), sources, fallback, sar_db=sar_db, db_range=config.sar_ranges,
                                    step_db=config.sar_guide, hidden=(clr < 0.5) & ok, sar_valid=sar_valid,
                                    with_spread=bool(config.fill_sigma), scene=classes)
            estimate, log_var = self.generator(obs, clr, classical.prior, s)
            if config.keep_detail > 0:
                estimate = keep_detail(obs.float(), estimate.float(), config.bands, config.keep_detail, ok,
                                       sources)
            if config.fill_sigma:
                variance = fill_variance(classical.spread, config.fill_sigma, haze)
            else:
                variance = torch.exp(log_var.float().clamp(-30, 10))
            if config.keep_detail > 0 and veil_level is not None:
                estimate, variance = dehaze_veil(obs.float(), estimate.float(), variance.float(), config.bands,
                                                 veil_level, ok)
            return estimate.float(), variance.float()

        if valid is None:
            valid = torch.ones_like(clear, dtype=torch.bool)
        return self._batched(run, observed, clear, sar, valid)

    def _batched(self, fn, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Apply ``fn`` to batches of ``inputs`` (first dimension), halving the batch on
        out-of-memory; returns the outputs concatenated."""
        outs: list[tuple[torch.Tensor, ...]] = []
        i, total = 0, inputs[0].shape[0]
        while i < total:
            n = min(self.batch_size, total - i)
            try:
                with torch.inference_mode(), autocast(self.device, self.precision):
                    y = fn(*(t[i:i + n] for t in inputs))
                if not all(bool(torch.isfinite(t).all()) for t in y):
                    raise CheckpointError(
                        f"{self.model.path or self.model.config.preset}: the model computed NaN or infinite "
                        "values from valid inputs, so its weights are damaged (or were trained into "
                        "divergence); nothing was written. Use an intact model file")
                outs.append(y)
                i += n
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if n == 1:
                    raise DeviceError(f"out of memory on {self.device} even with one tile per batch; "
                                      "use the CPU or a smaller model", option="device") from None
                self.batch_size = max(1, n // 2)
                note = f"out of memory on {self.device} with {n} tiles per batch; retrying with {self.batch_size}"
                log.warning(note)
                self.notes.append(note)
        return tuple(torch.cat(parts) for parts in zip(*outs))


def _output_descriptions(stack: RasterStack) -> tuple[str, ...]:
    """The input's band descriptions where they name the band, else the band name."""
    from .bands import normalise_s2_name

    return tuple(d if d and normalise_s2_name(d) == b.name else b.name
                 for d, b in zip(stack.descriptions, stack.bands))


def decloud(
    ms: str | os.PathLike | Sequence[str | os.PathLike],
    sar: str | os.PathLike | Sequence[str | os.PathLike] | None,
    model: str | os.PathLike | Model,
    out: str | os.PathLike,
    *,
    reference: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    maps: bool = True,
    figure: str | os.PathLike | None = None,
    options: DecloudOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> DecloudResult:
    """Remove clouds from the optical raster ``ms`` using ``sar`` and ``model``; write the
    reconstruction to ``out`` (GeoTIFF, the input's data type, CRS, geotransform, nodata
    and band descriptions).

    With ``maps``, also write per-pixel RMSE and SAM maps and a metrics JSON beside
    ``out``: against ``reference`` when given (``<out>_rmse.tif``, ``<out>_sam.tif``,
    ``<out>_metrics.json``), else between input and output, named as change maps
    (``<out>_change_rmse.tif`` ...). With ``figure``, also a PNG figure of the run.
    The outputs are one set (:class:`~sarclear.outputs.OutputSet`): all of them appear at the
    end, or none; no output may be one of the inputs. Raises
    :class:`~sarclear.errors.SarclearError` subclasses with a message that names the
    problem and the fix.
    """
    opts = options or DecloudOptions()
    t0 = time.perf_counter()
    check_options(opts)
    opts = dataclasses.replace(opts, fill_buffer=opts.fill_buffer_px)  # the default resolved once, for every use
    # every output is checked (never an input, writable, named for its format) before any work
    mask_mode = opts.mask_mode
    mask_file = opts.cloud_mask if mask_mode == "file" else None
    outputs = OutputSet([ms, sar, reference, mask_file, None if isinstance(model, Model) else model],
                        overwrite=opts.overwrite)
    staged_out = outputs.add(out, formats=GEOTIFF)
    targets = map_paths(out, reference is not None) if maps else {}
    staged = {name: outputs.add(p, formats=JSON if name == "metrics" else GEOTIFF) for name, p in targets.items()}
    staged_figure = outputs.add(figure, formats=PNG) if figure else None
    device = resolve_device(opts.device)
    mdl = model if isinstance(model, Model) else load_model(model, device)
    cfg = mdl.config
    if opts.adapt:  # refused before any work (cloud detection included)
        from .adapt import fit_problem

        problem = fit_problem(cfg, mdl.info)
        if problem:
            raise InputError(problem, input="model", option="adapt")
    side = side_paths(out)
    gapfill = cfg.kind == "gapfill"
    input_options = dataclasses.replace(InputOptions.of(opts), cloud_mask=mask_file)
    inputs = open_inputs(ms, sar, cfg.bands, cfg.sar_channels if cfg.uses_sar else (), reference=reference,
                         options=input_options, model_name=f"this model ({cfg.preset})",
                         sar_optional=bool(cfg.sar_guide))
    ms = inputs.files("ms")  # the chosen acquisition's files, read again for the change maps
    ms_stack, area, stacks, scaling = inputs.ms, inputs.area, inputs.stacks, inputs.scaling.scaling
    staged_mask = {k: outputs.add(side[k], formats=GEOTIFF) for k in ("mask", "probability")} \
        if mask_mode == "auto" else {}
    staged_sigma = outputs.add(side["uncertainty"], formats=GEOTIFF) if gapfill else None
    notes: list[str] = []
    if gapfill and mask_mode == "none":
        notes.append("no cloud mask: a mask-aware model changes only masked pixels, so the output equals the input")
        log.warning(notes[-1])
    out_grid = ms_stack.grid.subgrid(area)
    nodata = ms_stack.nodata[0] if ms_stack.nodata[0] is not None else default_nodata(ms_stack.dtype)
    if mask_file is not None:
        check_mask_grid(mask_file, ms_stack.grid, area)
    if opts.overlap is not None and opts.overlap >= cfg.tile_size:
        raise InputError(f"the tile overlap ({opts.overlap} px) must be smaller than the model's tiles "
                         f"({cfg.tile_size} px); the default is a quarter tile")
    batch = opts.batch_size or (32 if device.type == "cuda" else 4)
    metadata = {"SARCLEAR_VERSION": __version__, "SARCLEAR_MODEL": Path(mdl.path).name or cfg.preset,
                "SARCLEAR_PRESET": cfg.preset}
    result = DecloudResult(Path(out).absolute(), area, 0, 0.0, str(device), batch, notes=notes)
    with outputs:  # all outputs appear at the end, or none
        level = None  # the product level, where the detector or the fill's uncertainty needs it
        if staged_mask or gapfill:
            level, level_notes = resolve_level(ms_stack, scaling, opts.product_level)
            notes.extend(level_notes)
            result.product_level = level
            if not level_notes:  # known, not guessed: the output says it (its ten bands lack B10)
                metadata["PRODUCT_LEVEL"] = level.upper()
        if staged_mask:
            summary = detect_mask(ms_stack, scaling, staged_mask, area, level, opts, notes, progress, cancel)
            stacks["mask"] = open_single_band(staged_mask["mask"], ms_stack.grid, name=DETECTED_MASK)
            result.maps["mask"] = side["mask"].absolute()
            if summary.probability_path is None:
                outputs.drop(side["probability"])
            else:
                result.maps["cloud_probability"] = side["probability"].absolute()
        provenance = run_provenance(mdl, inputs, opts)
        if staged_mask:
            provenance["mask"] = f"detected ({summary.method}): {side['mask']}"
        view = scene_view(stacks, area) if gapfill or mask_file is not None else None  # read once
        if mask_file is not None:
            for note in user_mask_notes(view, stacks["mask"], Path(mask_file).name):
                log.warning(note)
                notes.append(note)
        stats = clear_stats(view, stacks, scaling, area, level, cfg) if gapfill else None
        for note in fill_notes(stats):
            log.warning(note)
            notes.append(note)
        result.haze = stats.haze if stats is not None else 0.0
        if opts.adapt:
            mdl = adapt_to_scene(mdl, stacks, scaling, area, opts, device, notes, progress, cancel)
        engine = TileEngine(mdl, device, batch, opts.precision, opts.fill_buffer)
        engine.notes = notes
        notes.extend(w for w in [inputs.scaling.warning] if w)
        with contextlib.ExitStack() as writers:
            writer = writers.enter_context(GeoTiffWriter(
                staged_out, out_grid, len(cfg.bands), ms_stack.dtype, nodata=nodata,
                descriptions=_output_descriptions(ms_stack), metadata=metadata, overwrite=True,
                scale_offset=scaling.gdal_scale_offset(), cog=opts.cog, overviews=opts.overviews,
                compress=opts.compress))
            sigma_writer = None if staged_sigma is None else writers.enter_context(GeoTiffWriter(
                staged_sigma, out_grid, 1, gdal.GDT_Float32, nodata=float("nan"), units="reflectance",
                descriptions=("sigma (reflectance, RMS over bands)",), metadata=metadata, overwrite=True,
                compress=opts.compress))
            stream = TileStream(stacks, area, cfg.sar_scaling() if cfg.uses_sar else None, scaling, engine,
                                writer, opts, progress, cancel, sigma_writer=sigma_writer, stats=stats)
            result.tiles = stream.run()
            check_not_empty(stream.valid_pixels, area, stacks)
        if staged_sigma is not None:
            result.maps["uncertainty"] = side["uncertainty"].absolute()
        result.batch_size = engine.batch_size
        log.info("declouded %d tiles in %.1f s on %s", result.tiles, time.perf_counter() - t0, device)
        if maps:
            result.metrics = evaluate(
                staged_out, reference if reference is not None else ms, cfg.bands,
                rmse_path=staged["rmse"], sam_path=staged["sam"], metrics_path=staged["metrics"],
                reference_scaling=None if reference is not None else scaling,
                reference_order=None if reference is not None else opts.ms_bands,
                kind="error" if reference is not None else "change", overwrite=True, cancel=cancel,
                provenance=provenance)
            result.maps.update({"rmse": targets["rmse"].absolute(), "sam": targets["sam"].absolute()})
            result.metrics_path = targets["metrics"].absolute()
        if staged_figure is not None:
            from .figures import decloud_figure

            decloud_figure(staged_figure, cloudy=ms, output=staged_out, bands=cfg.bands,
                           sar=inputs.files("sar") if cfg.uses_sar else None,
                           sar_channels=cfg.sar_channels or ("VV",),
                           reference=reference, rmse_map=staged.get("rmse"), sam_map=staged.get("sam"),
                           metrics=result.metrics, title=f"sarclear decloud: {Path(out).name}")
            result.figure = Path(figure).absolute()
    result.seconds = time.perf_counter() - t0
    return result
