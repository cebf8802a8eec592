"""One call opens everything a run reads: :func:`open_inputs`.

It opens the optical raster (file, per-band files, folder or SAFE), identifies its bands,
decides its radiometry once (:mod:`.declared`), resolves the area (AOI or window), opens the
SAR on the optical grid (warped if needed), the optional cloud mask and reference, and
validates everything before any tile is computed. The returned :class:`RunInputs` is what
the tile loop reads, and what the metrics JSON records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InputError
from ..radiometry import ScalingDecision
from ..tiling import Window
from .declared import optical_scaling
from .grid import Grid
from .opening import open_optical, open_sar, open_single_band
from .stack import RasterStack

log = logging.getLogger(__name__)

Paths = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class InputOptions:
    """How to read a run's inputs; every field has a default (detect/none)."""

    ms_bands: Sequence[str] | None = None      # names of unlabelled optical bands, in file order
    sar_channels: Sequence[str] | None = None  # names of unlabelled SAR bands, in file order
    sar_units: str = "auto"                    # db, linear, auto
    ms_scale: float | None = None              # optical DN per unit reflectance; None: declared or detected
    ms_offset: float | None = None             # DN added before scaling; None: declared or detected
    ms_acquisition: str | None = None          # date / sensing time / product id in a folder of several
    sar_acquisition: str | None = None
    aoi: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax in the optical CRS
    window: Window | None = None               # or a pixel window of the optical raster
    cloud_mask: str | os.PathLike | None = None

    @classmethod
    def of(cls, options: object) -> InputOptions:
        """The input-reading fields of any options object that has them (DecloudOptions)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls) if hasattr(options, f.name)})


@dataclass
class RunInputs:
    """Everything a run reads, opened and validated.

    ``stacks`` maps "ms", and where present "sar" and "mask", to their stacks on the optical
    grid (what the tile loop reads); ``area`` is the pixel window to process; ``scaling`` the
    optical radiometry decision; ``reference`` (read on the optical grid) and its decision
    are set when a reference was given."""

    ms: RasterStack
    area: Window
    scaling: ScalingDecision
    sar: RasterStack | None = None
    mask: RasterStack | None = None
    reference: RasterStack | None = None
    reference_scaling: ScalingDecision | None = None
    sources: dict[str, object] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return self.ms.grid

    def files(self, key: str = "ms") -> list[str]:
        """The files read for ``key`` ("ms", "sar", "mask", "reference"), in band order,
        each once: what a later step should read again (a folder's chosen acquisition)."""
        stack = {"ms": self.ms, "sar": self.sar, "mask": self.mask, "reference": self.reference}[key]
        return [] if stack is None else list(dict.fromkeys(b.path for b in stack.bands))

    @property
    def stacks(self) -> dict[str, RasterStack]:
        return {k: v for k, v in (("ms", self.ms), ("sar", self.sar), ("mask", self.mask)) if v is not None}

    def provenance(self) -> dict:
        """JSON-ready record of what was read and how: inputs, band mappings, radiometry,
        band-order checks, mask source, area."""
        rec: dict[str, object] = {
            "inputs": {k: _as_list(v) for k, v in self.sources.items() if v is not None},
            "ms_bands": self.ms.band_mapping(),
            "ms_scaling": self.scaling.to_dict(),
            "area": {"col_off": self.area.col_off, "row_off": self.area.row_off, "width": self.area.width,
                     "height": self.area.height},
        }
        if self.ms.order_check is not None:
            rec["ms_band_order_check"] = self.ms.order_check.to_dict()
        if self.sar is not None:
            rec["sar_channels"] = self.sar.band_mapping()
            rec["sar_units"] = "linear power (converted to dB)" if self.sar.linear_power else "dB"
        rec["mask"] = str(self.mask.bands[0].path) if self.mask is not None else None
        if self.reference is not None:
            rec["reference_bands"] = self.reference.band_mapping()
            if self.reference_scaling is not None:
                rec["reference_scaling"] = self.reference_scaling.to_dict()
        return rec


def _as_list(value: object) -> object:
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return value


def area_window(grid: Grid, aoi: Sequence[float] | None, window: Window | None) -> Window:
    """The pixel window to process: ``window``, else ``aoi`` (bounds in the grid's CRS)
    snapped outward to whole pixels, else the whole grid."""
    if window is not None:
        win = window.intersection(grid.window)
        if win.empty:
            raise InputError(f"window {window} lies outside the optical raster ({grid.width} x {grid.height})",
                             input="aoi", option="window")
        return win
    if aoi is not None:
        return grid.window_for_bounds(aoi)
    return grid.window


def open_inputs(
    ms: Paths,
    sar: Paths | None,
    bands: Sequence[str],
    sar_channels: Sequence[str] = (),
    *,
    reference: Paths | None = None,
    options: InputOptions | None = None,
    model_name: str = "the model",
    sar_optional: bool = False,
) -> RunInputs:
    """Open and validate everything a run reads.

    ``bands``/``sar_channels``: what the model reads (no channels: an MS-only model, and
    ``sar`` is ignored with a warning); ``sar_optional``: the model fills without SAR where
    there is none (:func:`open_sar`'s ``optional``). Raises :class:`~sarclear.errors.SarclearError`
    subclasses whose ``input``/``option`` fields say which input and which option fix it.
    """
    opts = options or InputOptions()
    ms_stack = open_optical(ms, bands, order=opts.ms_bands, acquisition=opts.ms_acquisition)
    scaling = optical_scaling(ms_stack, scale=opts.ms_scale, offset=opts.ms_offset, what="optical input")
    log.info("optical bands: %s", ", ".join(f"{b.name}={Path(b.path).name}:{b.index} ({b.how or 'name'})"
                                            for b in ms_stack.bands))
    area = area_window(ms_stack.grid, opts.aoi, opts.window)
    run = RunInputs(ms_stack, area, scaling,
                    sources={"ms": ms, "sar": sar, "reference": reference, "mask": opts.cloud_mask})
    if sar_channels:
        if sar is None:
            raise InputError(f"{model_name} fuses SAR: give the Sentinel-1 raster with channels "
                             f"{', '.join(sar_channels)}", input="sar", option="sar",
                             expected=tuple(sar_channels))
        run.sar = open_sar(sar, sar_channels, ms_stack.grid, area=area, order=opts.sar_channels,
                           units=opts.sar_units, acquisition=opts.sar_acquisition, optional=sar_optional)
        log.info("SAR channels: %s", ", ".join(f"{b.name}={Path(b.path).name}:{b.index}" for b in run.sar.bands))
    elif sar is not None:
        log.warning("%s takes no SAR input; the SAR raster is ignored", model_name)
    if opts.cloud_mask:
        run.mask = open_single_band(opts.cloud_mask, ms_stack.grid)
    if reference is not None:
        run.reference = open_optical(reference, bands, grid=ms_stack.grid)
        run.reference_scaling = optical_scaling(run.reference, what="reference")
    return run
