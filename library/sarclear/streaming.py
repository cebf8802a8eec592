"""The decloud tile loop: stream strips of tile rows through the model and write the result.

Tile rows are read one strip at a time on reader threads while the previous strip is
computed; tiles are batched through the model (:class:`~sarclear.inference.TileEngine`),
their predictions blended with smooth weights into a strip buffer, and finished rows handed
to a writer thread that converts them back to the input's data type. The area is processed
in column panels, so memory is bounded by one strip of one panel, whatever the raster's size.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .errors import Cancelled
from .io import GeoTiffWriter, RasterStack, to_dtype
from .radiometry import OpticalScaling, reflectance_to_network
from .sar_guide import SAR_MISSING
from .scene_prep import mask_encoding, mask_weight
from .tiling import StripBlender, Window, blend_weights, tile_offsets

if TYPE_CHECKING:
    from .callbacks import CancelFn, ProgressFn
    from .inference import DecloudOptions, TileEngine
    from .scene_prep import ClearStats


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


def estimate_weight(mask: torch.Tensor, feather: float) -> torch.Tensor:
    """Cloud weight (N, 1, H, W) in [0, 1] -> weight of the estimate against the observed
    pixel. Exactly 0 where the mask is 0, so a clear pixel is never changed; inside the
    masked area it rises from about half at the border to the mask's value over about
    ``feather`` pixels, so the estimate meets the observed image without a seam."""
    if feather <= 0:
        return mask
    radius = max(1, round(2 * feather))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    g = torch.exp(-(x**2) / (2 * feather**2))
    g = g / g.sum()
    clear = F.pad(1 - mask, (radius, radius, radius, radius), mode="replicate")
    clear = F.conv2d(F.conv2d(clear, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))  # local clear fraction
    return mask * (1 - clear).clamp(0, 1)


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
    (optionally on a writer thread), converting reflectance to the output data type (with
    ``scaling``; without, the values are written as they are)."""

    def __init__(self, writer: GeoTiffWriter, scaling: OpticalScaling | None, threaded: bool, block: int = 256,
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
        # float32: integers up to 2^24 are exact; no scaling: a map written as it is
        dn = self.scaling.from_reflectance(refl) if self.scaling is not None else refl
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


@dataclass
class _Tile:
    """One tile waiting for the network: where it goes and its inputs (views into a strip)."""

    strip: int
    col: int                          # column of the tile in the area
    ms: torch.Tensor                  # (C, t, t) network range (plain generator) or reflectance (mask-aware)
    sar: torch.Tensor                 # (S, t, t) network range
    valid: torch.Tensor               # (t, t) bool
    mask: torch.Tensor | None = None  # (t, t) cloud weight, with a cloud mask
    weight: torch.Tensor | None = None    # (t, t) weight of the estimate (0 on clear pixels)
    original: torch.Tensor | None = None  # (C, t, t) input reflectance, with a cloud mask


def panels(width: int, panel_width: int) -> list[tuple[int, int]]:
    """Column ranges of at most ``panel_width`` (rounded up to whole 256-pixel GeoTIFF
    blocks) that cover ``[0, width)``."""
    step = max(256, -(-panel_width // 256) * 256)
    return [(p, min(p + step, width)) for p in range(0, width, step)]


class TileStream:
    """The tile loop, panel by panel (column ranges, so memory is bounded in both
    directions): read strips of tile rows, queue their tiles, run full batches across strip
    boundaries, blend, release finished rows to the writer. Tiles of the global grid that
    straddle two panels are computed for both (each writes only its own columns), so the
    output is the same as without panels.

    With a cloud mask, a pixel the mask calls clear keeps its input value exactly; the
    estimate is used only inside the masked area (:func:`estimate_weight`). A mask-aware
    model (``kind == "gapfill"``) also gives a variance, written to ``sigma_writer`` as a
    standard deviation (reflectance, root mean square over the bands; 0 on kept pixels).
    """

    def __init__(self, stacks: dict[str, RasterStack], area: Window, sar_scaling, scaling: OpticalScaling,
                 engine: TileEngine, writer: GeoTiffWriter, opts: DecloudOptions,
                 progress: ProgressFn | None, cancel: CancelFn | None,
                 sigma_writer: GeoTiffWriter | None = None, stats: ClearStats | None = None):
        self.stacks, self.area, self.sar_scaling, self.scaling = stacks, area, sar_scaling, scaling
        self.engine, self.writer, self.opts, self.progress, self.cancel = engine, writer, opts, progress, cancel
        self.sigma_writer = sigma_writer
        self.gapfill = engine.model.config.kind == "gapfill"
        self.sar_optional = bool(engine.model.config.sar_guide)  # SAR guides the fill where there is some
        self.fallback = None if stats is None else torch.as_tensor(stats.background, dtype=torch.float32,
                                                                    device=engine.device)
        self.haze = 0.0 if stats is None else stats.haze
        self.classes = None if stats is None else stats.classes
        self.veil_level = stats.level if stats is not None and stats.veiled else None
        self.mask_encoding = mask_encoding(stacks["mask"]) if "mask" in stacks else None
        self.tile = engine.model.config.tile_size
        self.overlap = self.tile // 4 if opts.overlap is None else opts.overlap
        self.row_offsets = tile_offsets(area.height, self.tile, self.overlap)
        col_offsets = tile_offsets(area.width, self.tile, self.overlap)
        self.plan = [(p0, p1, [c for c in col_offsets if c < p1 and c + self.tile > p0])
                     for p0, p1 in panels(area.width, opts.panel_width)]
        self.total = len(self.row_offsets) * sum(len(cols) for _, _, cols in self.plan)
        self.weights = blend_weights(self.tile, self.overlap).to(engine.device)
        self.done = 0
        self.valid_pixels = 0  # output pixels written as data

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

    def _predict(self, batch: list[_Tile]) -> list[torch.Tensor]:
        """A batch of tiles -> per tile (C_out [+ 1 variance], t, t) reflectance, composed
        with the observed pixels where there is a mask."""
        sar = torch.stack([t.sar for t in batch])
        if self.gapfill:
            observed = torch.stack([t.ms for t in batch])
            clear = 1 - torch.stack([t.mask for t in batch])[:, None]  # a mask-aware tile always has one
            valid = torch.stack([t.valid for t in batch])[:, None]
            estimate, var = self.engine.fill(observed, clear, sar, self.fallback, valid, self.haze, self.classes,
                                             self.veil_level)
            var = var.mean(dim=1, keepdim=True)
        else:
            estimate, var = self.engine(torch.stack([t.ms for t in batch]), sar), None
        out = []
        for k, t in enumerate(batch):
            p = estimate[k]
            v = var[k] if var is not None else None
            if t.weight is not None:
                p = t.weight * p + (1 - t.weight) * t.original
                v = None if v is None else t.weight**2 * v
            out.append(p if self.sigma_writer is None else
                       torch.cat([p, v if v is not None else torch.zeros_like(p[:1])]))
        return out

    def _panel(self, reader: _Strips, p0: int, p1: int, cols: list[int]) -> None:
        engine, tile, rows = self.engine, self.tile, self.row_offsets
        n_out = engine.model.config.out_channels
        n_pred = n_out + (self.sigma_writer is not None)
        c_min, strip_width = cols[0], cols[-1] + tile - cols[0]
        # rows the blender must hold: the oldest unreleased strip to the newest one a batch reaches
        capacity = tile + (tile - self.overlap) * (-(-engine.batch_size // len(cols)) + 1)
        blender = StripBlender(n_pred + 1, p1 - p0, capacity, engine.device)
        writers = [_BlockWriter(self.writer, self.scaling, self.opts.io_threads, col_off=p0)]
        if self.sigma_writer is not None:
            writers.append(_BlockWriter(self.sigma_writer, None, self.opts.io_threads, col_off=p0))
        remaining = [len(cols)] * len(rows)
        queue: deque[_Tile] = deque()
        released = 0

        def strip_window(k: int) -> Window:
            return Window(self.area.col_off + c_min, self.area.row_off + rows[k], strip_width, tile)

        def run_batch() -> None:
            nonlocal released
            self._check_cancel()
            batch = [queue.popleft() for _ in range(min(engine.batch_size, len(queue)))]
            for t, p in zip(batch, self._predict(batch)):
                blender.add(torch.cat([p, t.valid.to(p.dtype)[None]]), self.weights,
                            Window(t.col - p0, rows[t.strip], tile, tile))
                remaining[t.strip] -= 1
            self.done += len(batch)
            if self.progress:
                self.progress(self.done, self.total, "tiles")
            while released < len(rows) and remaining[released] == 0:  # strips finish in order
                last = released + 1 == len(rows)
                _, mean, wsum = blender.release(self.area.height if last else rows[released + 1])
                out_valid = ((mean[n_pred] > 0.5) & (wsum > 0)).cpu().numpy()
                writers[0].add(mean[:n_out].cpu().numpy(), out_valid, final=last)
                if len(writers) > 1:
                    writers[1].add(mean[n_out:n_pred].clamp_min(0).sqrt().cpu().numpy(), out_valid, final=last)
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
            for w in writers:
                w.close(wait=ok)
            self.valid_pixels += writers[0].valid_pixels

    def _strip_tiles(self, data: dict, k: int, cols: list[int]) -> list[_Tile]:
        """A strip's rasters (starting at column ``cols[0]``) -> tiles (views, no copies):
        network range for the plain generator, reflectance for a mask-aware one."""
        device, tile, c_min = self.engine.device, self.tile, cols[0]
        raw, valid = data["ms"]
        refl = self.scaling.to_reflectance(torch.from_numpy(raw).to(device))
        valid_t = torch.from_numpy(valid).to(device)
        ms_in = _fill_invalid(refl if self.gapfill else reflectance_to_network(refl), valid_t)
        if "sar" in data:
            sar_raw, sar_valid = data["sar"]
            sar_valid_t = torch.from_numpy(sar_valid).to(device)
            sar_net = _fill_invalid(self.sar_scaling.to_network(torch.from_numpy(sar_raw).to(device)), sar_valid_t)
            if self.sar_optional:  # the SAR-guided fill: a pixel without SAR is kept, or filled without SAR
                sar_net = torch.where(sar_valid_t, sar_net, SAR_MISSING)
            else:
                valid_t = valid_t & sar_valid_t
        else:
            sar_net = ms_in[:0]
        mask = weight = original = None
        if "mask" in data:
            m_raw, m_valid = data["mask"]
            mask = torch.from_numpy(mask_weight(m_raw[0], m_valid, self.stacks["mask"].dtype,
                                                 self.mask_encoding)).to(device)
        elif self.gapfill:  # no mask: a mask-aware model keeps every pixel
            mask = torch.zeros_like(valid_t, dtype=torch.float32)
        if mask is not None:
            weight = estimate_weight(mask[None, None], self.opts.mask_feather)[0, 0]
            original = torch.nan_to_num(refl)
        tiles = []
        for c in cols:
            x = slice(c - c_min, c - c_min + tile)
            tiles.append(_Tile(k, c, ms_in[:, :, x], sar_net[:, :, x], valid_t[:, x],
                               *(None if v is None else v[..., x] for v in (mask, weight, original))))
        return tiles
