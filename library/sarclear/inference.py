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

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .checkpoint import Model, load_model
from .devices import autocast, is_out_of_memory, resolve_device
from .errors import Cancelled, CheckpointError, DeviceError, InputError
from .evaluation import evaluate, map_paths
from .outputs import GEOTIFF, JSON, PNG, OutputSet
from .raster import (
    GeoTiffWriter,
    Grid,
    RasterStack,
    detect_optical_scaling,
    numpy_dtype,
    open_optical,
    open_sar,
    open_single_band,
    to_dtype,
)
from .scaling import OpticalScaling, network_to_reflectance, reflectance_to_network
from .tiling import StripBlender, Window, blend_weights, tile_offsets
from .validation import check_mask_grid, check_not_empty, check_options

log = logging.getLogger(__name__)

#: progress(done, total, what)
ProgressFn = Callable[[int, int, str], None]
#: cancel() -> True to stop
CancelFn = Callable[[], bool]


@dataclass
class DecloudOptions:
    """How to run a decloud; every field has a sensible default."""

    device: str = "auto"                 # auto, cpu, cuda, cuda:N
    precision: str = "auto"              # auto (bf16 on CUDA), bf16, fp32
    batch_size: int | None = None        # tiles per batch; None: 4 on CPU, 32 on CUDA
    overlap: int | None = None           # pixels shared by neighbouring tiles; None: tile / 4
    aoi: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax, optical CRS
    window: Window | None = None         # or a pixel window of the optical raster
    cloud_mask: str | None = None        # raster: 0 clear, > 0 cloud (float: cloud probability)
    mask_feather: float = 6.0            # pixels over which prediction fades into clear areas
    ms_bands: Sequence[str] | None = None      # names of unlabelled optical bands, in file order
    sar_channels: Sequence[str] | None = None  # names of unlabelled SAR bands, in file order
    sar_units: str = "auto"              # db, linear, auto
    ms_scale: float | None = None        # optical DN per unit reflectance; None: detect
    ms_offset: float = 0.0               # added to DN before scaling (L2A baseline >= 04.00: -1000)
    overwrite: bool = False
    cog: bool = False                    # write a Cloud Optimized GeoTIFF
    overviews: bool = False              # internal overviews in a plain GeoTIFF
    compress: str = "deflate"            # deflate (level 1), zstd (level 1), lzw, none
    io_threads: bool = True              # overlap reading, computing and writing
    panel_width: int = 4096              # columns processed at a time: bounds memory on wide rasters


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


def default_nodata(dtype: int) -> float:
    """Nodata for outputs whose input declared none: 0 for integers (Sentinel-2's own fill
    value), NaN for floating point."""
    return float("nan") if numpy_dtype(dtype).kind == "f" else 0.0


def area_window(grid: Grid, aoi: Sequence[float] | None, window: Window | None) -> Window:
    """The pixel window to process: ``window``, else ``aoi`` (bounds in the grid's CRS)
    snapped outward to whole pixels, else the whole grid."""
    if window is not None:
        win = window.intersection(grid.window)
        if win.empty:
            raise InputError(f"window {window} lies outside the optical raster ({grid.width} x {grid.height})")
        return win
    if aoi is not None:
        return grid.window_for_bounds(aoi)
    return grid.window


class TileEngine:
    """Runs batches of tiles through a generator on one device, halving the batch on
    out-of-memory and remembering the size that fits."""

    def __init__(self, model: Model, device: torch.device, batch_size: int, precision: str = "auto"):
        self.model, self.device, self.batch_size, self.precision = model, device, batch_size, precision
        self.generator = model.generator.to(device).eval()
        self.notes: list[str] = []

    def __call__(self, ms: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        """Network-range tiles (N, C, H, W) -> reflectance predictions (N, C_out, H, W), fp32."""
        out = []
        i = 0
        while i < ms.shape[0]:
            n = min(self.batch_size, ms.shape[0] - i)
            try:
                with torch.inference_mode(), autocast(self.device, self.precision):
                    y = self.generator(ms[i:i + n], sar[i:i + n])
                if not bool(torch.isfinite(y).all()):
                    raise CheckpointError(
                        f"{self.model.path or self.model.config.preset}: the model computed NaN or infinite "
                        "values from valid inputs, so its weights are damaged (or were trained into "
                        "divergence); nothing was written. Use an intact model file")
                out.append(network_to_reflectance(y.float()))
                i += n
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if n == 1:
                    raise DeviceError(f"out of memory on {self.device} even with one tile per batch; "
                                      "use --device cpu or a smaller model") from None
                self.batch_size = max(1, n // 2)
                note = f"out of memory on {self.device} with {n} tiles per batch; retrying with {self.batch_size}"
                log.warning(note)
                self.notes.append(note)
        return torch.cat(out)


def _fill_invalid(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid/NaN pixels of (C, H, W) by each band's mean over valid pixels (0 if
    none), so nodata does not disturb the network's view of its neighbours."""
    ok = valid & torch.isfinite(x).all(dim=0)
    if bool(ok.all()):
        return x
    n = ok.sum()
    if n == 0:
        return torch.zeros_like(x)
    mean = torch.where(ok, x, 0).sum(dim=(1, 2)) / n
    return torch.where(ok, x, mean[:, None, None])


def _soft_mask(mask: torch.Tensor, feather: float) -> torch.Tensor:
    """Cloud mask (N, 1, H, W) in [0, 1] -> blending weight of the prediction: 1 on clouds,
    fading to 0 over about ``feather`` pixels into the clear area."""
    if feather <= 0:
        return mask
    radius = max(1, round(2 * feather))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    g = torch.exp(-(x**2) / (2 * feather**2))
    g = g / g.sum()
    m = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    m = F.conv2d(m, g.view(1, 1, 1, -1))
    m = F.conv2d(m, g.view(1, 1, -1, 1))
    return torch.maximum((2 * m).clamp(0, 1), mask)


def _mask_values(raw: np.ndarray, valid: np.ndarray, dtype: int) -> np.ndarray:
    """Cloud-mask raster values -> cloud weight in [0, 1]: integers: > 0 is cloud;
    floating point: a probability, clipped to [0, 1]. Nodata counts as cloud."""
    if numpy_dtype(dtype).kind == "f":
        m = np.clip(np.nan_to_num(raw, nan=1.0), 0.0, 1.0)
    else:
        m = (np.nan_to_num(raw, nan=1.0) > 0).astype(np.float32)
    m[~valid] = 1.0
    return m.astype(np.float32)


class _Strips:
    """Reads the strips of tile rows one strip ahead: each stack (optical, SAR, mask) on a
    thread of its own, with its own GDAL handles, so their reads and warps overlap each
    other and the computation. GDAL releases the GIL while it reads and warps."""

    def __init__(self, stacks: dict[str, RasterStack], threaded: bool):
        self.stacks = stacks
        self._pools = {k: ThreadPoolExecutor(1, thread_name_prefix=f"sarclear-read-{k}") for k in stacks} \
            if threaded else None
        self._local = threading.local()

    def _read(self, key: str, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read ``window``; rows it shares with the previous window of the same columns (the
        tile overlap) are taken from that read instead of being decoded and warped again."""
        readers = self._local.__dict__.setdefault("readers", {})
        last = self._local.__dict__.setdefault("last", {})
        if key not in readers:
            readers[key] = self.stacks[key].open()
        height = self.stacks[key].grid.height
        prev = last.get(key)
        if (prev is not None and (prev[0].col_off, prev[0].width) == (window.col_off, window.width)
                and prev[0].row_off < window.row_off < prev[0].bottom <= window.bottom <= height):
            p_win, p_data, p_valid = prev
            keep = p_win.bottom - window.row_off
            new = readers[key].read(Window(window.col_off, p_win.bottom, window.width, window.bottom - p_win.bottom))
            data = np.concatenate([p_data[:, -keep:], new[0]], axis=1)
            valid = np.concatenate([p_valid[-keep:], new[1]], axis=0)
        else:
            data, valid = readers[key].read(window)
        last[key] = (window, data, valid)
        return data, valid

    def submit(self, window: Window) -> dict:
        if self._pools is None:
            return {k: self._read(k, window) for k in self.stacks}
        return {k: pool.submit(self._read, k, window) for k, pool in self._pools.items()}

    @staticmethod
    def result(item: dict) -> dict:
        return {k: v.result() if isinstance(v, Future) else v for k, v in item.items()}

    def close(self) -> None:
        for pool in (self._pools or {}).values():
            pool.shutdown(wait=True, cancel_futures=True)


class _BlockWriter:
    """Buffers finished rows and writes them in whole 256-row blocks of the output GeoTIFF
    (optionally on a writer thread), converting reflectance to the output data type."""

    def __init__(self, writer: GeoTiffWriter, scaling: OpticalScaling, threaded: bool, block: int = 256,
                 col_off: int = 0):
        self.writer, self.scaling, self.block, self.col_off = writer, scaling, block, col_off
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []
        self._top = 0
        self._pending = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sarclear-write") if threaded else None
        self._futures: list[Future] = []
        self.valid_pixels = 0  # output pixels written as data (not nodata)

    def add(self, reflectance: np.ndarray, valid: np.ndarray, final: bool = False) -> None:
        self.valid_pixels += int(valid.sum())
        self._rows.append((reflectance, valid))
        self._pending += reflectance.shape[1]
        if final or self._pending >= self.block:
            n = self._pending if final else self._pending - (self._top + self._pending) % self.block
            self._flush(n)

    def _flush(self, n: int) -> None:
        if n <= 0:
            return
        refl = np.concatenate([r for r, _ in self._rows], axis=1)
        valid = np.concatenate([v for _, v in self._rows], axis=0)
        self._rows = [(refl[:, n:], valid[n:])] if refl.shape[1] > n else []
        self._pending -= n
        top, self._top = self._top, self._top + n
        job = (top, refl[:, :n], valid[:n])
        if self._pool is None:
            self._write(*job)
        else:
            self._check()
            self._futures.append(self._pool.submit(self._write, *job))

    def _write(self, top: int, refl: np.ndarray, valid: np.ndarray) -> None:
        dn = self.scaling.from_reflectance(refl)  # float32: integers up to 2^24 are exact
        out = to_dtype(dn, self.writer.dtype, valid, self.writer.nodata)
        self.writer.write(Window(self.col_off, top, refl.shape[2], refl.shape[1]), out)

    def _check(self) -> None:
        done = [f for f in self._futures if f.done()]
        for f in done:
            f.result()  # re-raise a failed write here
        self._futures = [f for f in self._futures if not f.done()]
        while len(self._futures) > 2:  # bound the queue: at most ~3 blocks in flight
            self._futures.pop(0).result()

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            if not wait:
                for f in self._futures:
                    f.cancel()
            self._pool.shutdown(wait=True)
            if wait:
                for f in self._futures:
                    f.result()


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
    # every output is checked (never an input, writable, named for its format) before any work
    outputs = OutputSet([ms, sar, reference, opts.cloud_mask, None if isinstance(model, Model) else model],
                        overwrite=opts.overwrite)
    staged_out = outputs.add(out, formats=GEOTIFF)
    targets = map_paths(out, reference is not None) if maps else {}
    staged = {name: outputs.add(p, formats=JSON if name == "metrics" else GEOTIFF) for name, p in targets.items()}
    staged_figure = outputs.add(figure, formats=PNG) if figure else None
    device = resolve_device(opts.device)
    mdl = model if isinstance(model, Model) else load_model(model, device)
    cfg = mdl.config
    ms_stack = open_optical(ms, cfg.bands, order=opts.ms_bands)
    declared = OpticalScaling(opts.ms_scale, opts.ms_offset) if opts.ms_scale else None
    if declared is None and opts.ms_offset:
        declared = OpticalScaling(offset=opts.ms_offset)
    scaling = detect_optical_scaling(ms_stack, declared)
    log.info("optical bands: %s", ", ".join(f"{b.name}={Path(b.path).name}:{b.index}" for b in ms_stack.bands))
    area = area_window(ms_stack.grid, opts.aoi, opts.window)
    stacks: dict[str, RasterStack] = {"ms": ms_stack}
    if cfg.uses_sar:
        if sar is None:
            raise InputError(f"this model ({cfg.preset}) fuses SAR: give the Sentinel-1 raster with "
                             f"channels {', '.join(cfg.sar_channels)} (--sar)")
        stacks["sar"] = open_sar(sar, cfg.sar_channels, ms_stack.grid, area=area,
                                 order=opts.sar_channels, units=opts.sar_units)
    elif sar is not None:
        log.warning("model %s takes no SAR input; the SAR raster is ignored", cfg.preset)
    if opts.cloud_mask:
        stacks["mask"] = open_single_band(opts.cloud_mask, ms_stack.grid)

    out_grid = ms_stack.grid.subgrid(area)
    nodata = ms_stack.nodata[0] if ms_stack.nodata[0] is not None else default_nodata(ms_stack.dtype)
    if opts.cloud_mask:
        check_mask_grid(opts.cloud_mask, ms_stack.grid, area)
    if opts.overlap is not None and opts.overlap >= cfg.tile_size:
        raise InputError(f"the tile overlap ({opts.overlap} px) must be smaller than the model's tiles "
                         f"({cfg.tile_size} px); the default is a quarter tile")
    batch = opts.batch_size or (32 if device.type == "cuda" else 4)
    engine = TileEngine(mdl, device, batch, opts.precision)
    metadata = {"SARCLEAR_VERSION": __version__, "SARCLEAR_MODEL": Path(mdl.path).name or cfg.preset,
                "SARCLEAR_PRESET": cfg.preset}
    result = DecloudResult(Path(out).absolute(), area, 0, 0.0, str(device), batch, notes=engine.notes)
    with outputs:  # all outputs appear at the end, or none
        with GeoTiffWriter(staged_out, out_grid, len(cfg.bands), ms_stack.dtype, nodata=nodata,
                           descriptions=_output_descriptions(ms_stack), metadata=metadata,
                           overwrite=True, cog=opts.cog, overviews=opts.overviews,
                           compress=opts.compress) as writer:
            stream = _Stream(stacks, area, cfg.sar_scaling() if cfg.uses_sar else None, scaling, engine,
                             writer, opts, progress, cancel)
            result.tiles = stream.run()
            check_not_empty(stream.valid_pixels, area, stacks)
        result.batch_size = engine.batch_size
        log.info("declouded %d tiles in %.1f s on %s", result.tiles, time.perf_counter() - t0, device)
        if maps:
            metrics = evaluate(staged_out, reference if reference is not None else ms, cfg.bands,
                               rmse_path=staged["rmse"], sam_path=staged["sam"], metrics_path=staged["metrics"],
                               reference_scaling=None if reference is not None else scaling,
                               reference_order=None if reference is not None else opts.ms_bands,
                               kind="error" if reference is not None else "change", overwrite=True, cancel=cancel)
            result.maps = {"rmse": targets["rmse"].absolute(), "sam": targets["sam"].absolute()}
            result.metrics, result.metrics_path = metrics, targets["metrics"].absolute()
        if staged_figure is not None:
            from .figures import decloud_figure

            decloud_figure(staged_figure, cloudy=ms, output=staged_out, bands=cfg.bands,
                           sar=sar if cfg.uses_sar else None, sar_channels=cfg.sar_channels or ("VV",),
                           reference=reference, rmse_map=staged.get("rmse"), sam_map=staged.get("sam"),
                           metrics=result.metrics, title=f"sarclear decloud: {Path(out).name}")
            result.figure = Path(figure).absolute()
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class _Tile:
    """One tile waiting for the network: where it goes and its inputs (views into a strip)."""

    strip: int
    col: int                          # column of the tile in the area
    ms: torch.Tensor                  # (C, t, t) network range
    sar: torch.Tensor                 # (S, t, t) network range
    valid: torch.Tensor               # (t, t) bool
    mask: torch.Tensor | None = None  # (t, t) cloud weight, with a cloud mask
    original: torch.Tensor | None = None  # (C, t, t) input reflectance, with a cloud mask


def panels(width: int, panel_width: int) -> list[tuple[int, int]]:
    """Column ranges of at most ``panel_width`` (rounded up to whole 256-pixel GeoTIFF
    blocks) that cover ``[0, width)``."""
    step = max(256, -(-panel_width // 256) * 256)
    return [(p, min(p + step, width)) for p in range(0, width, step)]


class _Stream:
    """The tile loop, panel by panel (column ranges, so memory is bounded in both
    directions): read strips of tile rows, queue their tiles, run full batches across strip
    boundaries, blend, release finished rows to the writer. Tiles of the global grid that
    straddle two panels are computed for both (each writes only its own columns), so the
    output is the same as without panels."""

    def __init__(self, stacks: dict[str, RasterStack], area: Window, sar_scaling, scaling: OpticalScaling,
                 engine: TileEngine, writer: GeoTiffWriter, opts: DecloudOptions,
                 progress: ProgressFn | None, cancel: CancelFn | None):
        self.stacks, self.area, self.sar_scaling, self.scaling = stacks, area, sar_scaling, scaling
        self.engine, self.writer, self.opts, self.progress, self.cancel = engine, writer, opts, progress, cancel
        self.tile = engine.model.config.tile_size
        self.overlap = self.tile // 4 if opts.overlap is None else opts.overlap
        self.row_offsets = tile_offsets(area.height, self.tile, self.overlap)
        col_offsets = tile_offsets(area.width, self.tile, self.overlap)
        self.plan = [(p0, p1, [c for c in col_offsets if c < p1 and c + self.tile > p0])
                     for p0, p1 in panels(area.width, opts.panel_width)]
        self.total = len(self.row_offsets) * sum(len(cols) for _, _, cols in self.plan)
        self.weights = blend_weights(self.tile, self.overlap).to(engine.device)
        self.done = 0
        self.valid_pixels = 0

    def run(self) -> int:
        """Decloud the whole area; returns the number of tiles computed."""
        reader = _Strips(self.stacks, self.opts.io_threads)
        try:
            for p0, p1, cols in self.plan:
                self._panel(reader, p0, p1, cols)
        finally:
            reader.close()
        return self.total

    def _check_cancel(self) -> None:
        if self.cancel and self.cancel():
            raise Cancelled("cancelled; no output was written")

    def _panel(self, reader: _Strips, p0: int, p1: int, cols: list[int]) -> None:
        engine, tile, rows = self.engine, self.tile, self.row_offsets
        n_out = engine.model.config.out_channels
        c_min, strip_width = cols[0], cols[-1] + tile - cols[0]
        # rows the blender must hold: the oldest unreleased strip to the newest one a batch reaches
        capacity = tile + (tile - self.overlap) * (-(-engine.batch_size // len(cols)) + 1)
        blender = StripBlender(n_out + 1, p1 - p0, capacity, engine.device)
        block_writer = _BlockWriter(self.writer, self.scaling, self.opts.io_threads, col_off=p0)
        remaining = [len(cols)] * len(rows)
        queue: deque[_Tile] = deque()
        released = 0

        def strip_window(k: int) -> Window:
            return Window(self.area.col_off + c_min, self.area.row_off + rows[k], strip_width, tile)

        def run_batch() -> None:
            nonlocal released
            self._check_cancel()
            batch = [queue.popleft() for _ in range(min(engine.batch_size, len(queue)))]
            pred = engine(torch.stack([t.ms for t in batch]), torch.stack([t.sar for t in batch]))
            for t, p in zip(batch, pred):
                if t.mask is not None:
                    soft = _soft_mask(t.mask[None, None], self.opts.mask_feather)[0]
                    p = soft * p + (1 - soft) * t.original
                blender.add(torch.cat([p, t.valid.to(p.dtype)[None]]), self.weights,
                            Window(t.col - p0, rows[t.strip], tile, tile))
                remaining[t.strip] -= 1
            self.done += len(batch)
            if self.progress:
                self.progress(self.done, self.total, "tiles")
            while released < len(rows) and remaining[released] == 0:  # strips finish in order
                last = released + 1 == len(rows)
                _, mean, wsum = blender.release(self.area.height if last else rows[released + 1])
                out_valid = (mean[n_out] > 0.5) & (wsum > 0)
                block_writer.add(mean[:n_out].cpu().numpy(), out_valid.cpu().numpy(), final=last)
                released += 1

        ok = False
        try:
            pending = reader.submit(strip_window(0))
            for k in range(len(rows)):
                self._check_cancel()
                data = reader.result(pending)
                if k + 1 < len(rows):
                    pending = reader.submit(strip_window(k + 1))
                queue.extend(self._strip_tiles(data, k, cols))
                while len(queue) >= engine.batch_size or (k + 1 == len(rows) and queue):
                    run_batch()
            ok = True
        finally:
            block_writer.close(wait=ok)
            self.valid_pixels += block_writer.valid_pixels

    def _strip_tiles(self, data: dict, k: int, cols: list[int]) -> list[_Tile]:
        """A strip's rasters (starting at column ``cols[0]``) -> network-range tiles (views,
        no copies)."""
        device, tile, c_min = self.engine.device, self.tile, cols[0]
        raw, valid = data["ms"]
        refl = self.scaling.to_reflectance(torch.from_numpy(raw).to(device))
        valid_t = torch.from_numpy(valid).to(device)
        ms_net = _fill_invalid(reflectance_to_network(refl), valid_t)
        if "sar" in data:
            sar_raw, sar_valid = data["sar"]
            sar_valid_t = torch.from_numpy(sar_valid).to(device)
            sar_net = _fill_invalid(self.sar_scaling.to_network(torch.from_numpy(sar_raw).to(device)), sar_valid_t)
            valid_t = valid_t & sar_valid_t
        else:
            sar_net = ms_net[:0]
        mask = original = None
        if "mask" in data:
            m_raw, m_valid = data["mask"]
            mask = torch.from_numpy(_mask_values(m_raw[0], m_valid, self.stacks["mask"].dtype)).to(device)
            original = torch.nan_to_num(refl)
        tiles = []
        for c in cols:
            x = slice(c - c_min, c - c_min + tile)
            tiles.append(_Tile(k, c, ms_net[:, :, x], sar_net[:, :, x], valid_t[:, x],
                               None if mask is None else mask[:, x], None if original is None else original[:, :, x]))
        return tiles
