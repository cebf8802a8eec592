"""Sensor values <-> network range [-1, 1]: one documented, invertible mapping per sensor.

Sentinel-2 (optical)
    ``reflectance = (DN + offset) / dn_per_reflectance`` (L1C/L2A: 10000, offset 0; L2A
    processing baseline >= 04.00 declares offset -1000), clipped to [0, 1], then
    ``x = 2 * reflectance - 1``. Inverse: ``DN = (x + 1) / 2 * dn_per_reflectance - offset``.

Sentinel-1 (SAR)
    Backscatter in dB, clipped per polarisation to ``[lo, hi]`` (VV [-25, 0], VH [-32.5, 0];
    HH and HV share VV's and VH's ranges), then ``x = 2 * (dB - lo) / (hi - lo) - 1``.
    Inverse: ``dB = (x + 1) / 2 * (hi - lo) + lo``. Linear power is converted to dB first
    (``10 log10``), once, when it is read.

The functions accept NumPy arrays and torch tensors alike (channels on axis -3), so the same
code runs in the GDAL reader on the CPU and on the GPU. Nothing here stretches or equalises
values: the only change is this affine map and the clip to the sensor's valid range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeVar

import numpy as np

from .bands import S1_CHANNELS

Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor

#: Sentinel-2 L1C/L2A digital numbers per unit reflectance.
S2_DN_PER_REFLECTANCE: Final = 10_000.0

#: Default dB clipping range per Sentinel-1 polarisation.
_CO_POL, _CROSS_POL = (-25.0, 0.0), (-32.5, 0.0)
S1_DB_RANGE: Final = {c: (_CO_POL if c[0] == c[1] else _CROSS_POL) for c in S1_CHANNELS}


@dataclass(frozen=True)
class OpticalScaling:
    """How one optical raster's values relate to surface/top-of-atmosphere reflectance."""

    dn_per_reflectance: float = S2_DN_PER_REFLECTANCE
    offset: float = 0.0

    def to_reflectance(self, dn: Array) -> Array:
        """Digital numbers -> reflectance (unclipped)."""
        return (dn + self.offset) / self.dn_per_reflectance

    def from_reflectance(self, reflectance: Array) -> Array:
        """Reflectance -> digital numbers (exact inverse of :meth:`to_reflectance`)."""
        return reflectance * self.dn_per_reflectance - self.offset

    def to_network(self, dn: Array) -> Array:
        """Digital numbers -> network range [-1, 1]."""
        return reflectance_to_network(self.to_reflectance(dn))

    def from_network(self, x: Array) -> Array:
        """Network range [-1, 1] -> digital numbers (inverse of :meth:`to_network` on
        the unclipped domain, reflectance in [0, 1])."""
        return self.from_reflectance(network_to_reflectance(x))

    def gdal_scale_offset(self) -> tuple[float, float] | None:
        """GDAL band (scale, offset) that declare this mapping in a file (reflectance = value x
        scale + offset), when it carries an offset; None otherwise (plain DN x 10000 needs no
        declaration). Outputs written in the input's convention declare it so."""
        if not self.offset:
            return None
        return 1.0 / self.dn_per_reflectance, self.offset / self.dn_per_reflectance


@dataclass(frozen=True)
class SarScaling:
    """dB clipping ranges of the SAR channels a model uses, in the model's channel order."""

    channels: tuple[str, ...]
    db_range: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(S1_DB_RANGE))

    def __post_init__(self) -> None:
        missing = [c for c in self.channels if c not in self.db_range]
        if missing:
            raise ValueError(
                f"no dB range for SAR channel(s) {', '.join(missing)}; known: "
                f"{', '.join(self.db_range)}. Give one in the model config's sar_db_range")
        for c in self.channels:
            lo, hi = self.db_range[c]
            if not hi > lo:
                raise ValueError(f"SAR channel {c}: dB range [{lo}, {hi}] is empty")

    def _lo_hi(self, like: Array) -> tuple[Array, Array]:
        lo = np.array([self.db_range[c][0] for c in self.channels], np.float32)[:, None, None]
        hi = np.array([self.db_range[c][1] for c in self.channels], np.float32)[:, None, None]
        if not isinstance(like, np.ndarray):  # torch tensor: same device and dtype
            import torch

            lo = torch.as_tensor(lo, device=like.device, dtype=like.dtype)
            hi = torch.as_tensor(hi, device=like.device, dtype=like.dtype)
        return lo, hi

    def to_network(self, db: Array) -> Array:
        """dB (channels on axis -3) -> network range [-1, 1]."""
        lo, hi = self._lo_hi(db)
        return ((db - lo) / (hi - lo)).clip(0.0, 1.0) * 2.0 - 1.0

    def from_network(self, x: Array) -> Array:
        """Network range -> dB (inverse of :meth:`to_network` inside the clip range)."""
        lo, hi = self._lo_hi(x)
        return (x + 1.0) / 2.0 * (hi - lo) + lo


def linear_to_db(power: np.ndarray) -> np.ndarray:
    """Linear backscatter power -> dB. Zero or negative power (no echo) maps to -inf, which
    the network scaling then clips to the channel's floor."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (10.0 * np.log10(power)).astype(np.float32)


def db_to_linear(db: np.ndarray) -> np.ndarray:
    """dB -> linear backscatter power (inverse of :func:`linear_to_db`)."""
    return np.power(10.0, np.asarray(db, np.float64) / 10.0).astype(np.float32)


def reflectance_to_network(reflectance: Array) -> Array:
    """Reflectance -> network range; the model-side half of :class:`OpticalScaling`."""
    return reflectance.clip(0.0, 1.0) * 2.0 - 1.0


def network_to_reflectance(x: Array) -> Array:
    """Network range -> reflectance; inverse of :func:`reflectance_to_network` on [0, 1]."""
    return (x + 1.0) / 2.0


# --------------------------------------------------------------------------- the optical rule
#
# How an optical raster's values map to reflectance is decided once per input, by the first
# rule that applies:
#   1. "user":     an explicit scale and/or offset given by the caller;
#   2. "declared": what the input says about itself: GDAL band offset/scale, Sentinel-2
#                  metadata (BOA_ADD_OFFSET / RADIO_ADD_OFFSET, QUANTIFICATION_VALUE,
#                  PROCESSING_BASELINE in the SENTINEL2 driver's metadata or the SAFE's
#                  MTD_MSIL*.xml), or the processing baseline in the product id (N0400...);
#   3. "dtype":    integers are DN = reflectance x 10000 (8-bit data is refused: ambiguous);
#   4. "values":   floating point with values <= ~2 is already reflectance, else x 10000.
# Rules 3 and 4 look at the visible bands: when almost no valid DN is below 1000 the data
# look like an offset product whose offset nobody declared, and the decision carries a
# warning that names the fix (declare offset -1000).

#: Offset of Sentinel-2 processing baseline >= 04.00 products (L1C and L2A), in DN.
S2_BASELINE4_OFFSET: Final = -1000.0
#: Fraction of valid visible-band DN below 1000 under which data look offset.
OFFSET_LOOK_FRACTION: Final = 0.005


@dataclass(frozen=True)
class Declaration:
    """What an input declares about its own radiometry (any field may be unknown)."""

    source: str                              # where it was read, for the log and the metrics
    offset: float | None = None              # DN added before scaling (-1000 for baseline >= 04.00)
    dn_per_reflectance: float | None = None  # DN per unit reflectance (10000)
    baseline: str | None = None              # Sentinel-2 processing baseline, "04.00"


@dataclass(frozen=True)
class ScalingDecision:
    """The decision on one optical input: the scaling used, the rule that chose it and why.

    ``warning`` is set when the data contradict the decision (e.g. they look like an offset
    product but no offset was declared); ``suggested_offset`` is then the offset that would
    fix it, for callers that name their own option for it."""

    scaling: OpticalScaling
    rule: str                # user | declared | dtype | values
    reason: str
    source: str = ""
    warning: str | None = None
    suggested_offset: float | None = None

    @property
    def offset(self) -> float:
        return self.scaling.offset

    @property
    def dn_per_reflectance(self) -> float:
        return self.scaling.dn_per_reflectance

    def to_dict(self) -> dict:
        """JSON-ready record (metrics, logs)."""
        return {"rule": self.rule, "dn_per_reflectance": self.dn_per_reflectance, "offset": self.offset,
                "reason": self.reason, "source": self.source, "warning": self.warning}


def baseline_offset(baseline: str | None) -> float | None:
    """The DN offset implied by a Sentinel-2 processing baseline ("04.00", "N0400", "0400"):
    -1000 from 04.00 on, 0 before; None when unknown (N9999 marks reprocessing without
    a baseline in the name)."""
    if not baseline:
        return None
    digits = baseline.upper().lstrip("N").replace(".", "")
    if not digits.isdigit() or len(digits) != 4 or digits == "9999":
        return None
    return S2_BASELINE4_OFFSET if int(digits) >= 400 else 0.0


def offset_look(visible: np.ndarray, offset: float) -> bool:
    """True when the valid visible-band DN (after ``offset``) look like an undeclared
    +1000 offset: enough pixels and almost none below 1000."""
    values = np.asarray(visible, np.float64) + offset
    values = values[np.isfinite(values) & (values > 0)]
    return values.size >= 100 and float(np.mean(values < 1000)) < OFFSET_LOOK_FRACTION


def _check_scale(scale: float | None, offset: float | None) -> None:
    from .errors import ScalingError

    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ScalingError(f"optical scale {scale}: must be a positive number of DN per unit reflectance",
                           input="ms", option="ms_scale", found=scale)
    if offset is not None and not np.isfinite(offset):
        raise ScalingError(f"optical offset {offset}: must be a finite number", input="ms",
                           option="ms_offset", found=offset)


def decide_optical_scaling(
    dtype: np.dtype,
    *,
    scale: float | None = None,
    offset: float | None = None,
    declared: Declaration | None = None,
    visible: np.ndarray | None = None,
    first_band: np.ndarray | None = None,
    what: str = "the optical raster",
) -> ScalingDecision:
    """Apply the rule (module comment above) to one optical input.

    ``dtype``: its numpy data type; ``scale``/``offset``: the caller's explicit values;
    ``declared``: what the input declares; ``visible``: valid DN sampled from its visible
    bands (for the offset look); ``first_band``: valid values of its first band (for
    floating-point data)."""
    from .errors import ScalingError

    _check_scale(scale, offset)
    dtype = np.dtype(dtype)
    d = declared or Declaration("")
    declared_offset = d.offset if d.offset is not None else baseline_offset(d.baseline)
    if scale is not None or offset is not None:
        s = scale if scale is not None else d.dn_per_reflectance or S2_DN_PER_REFLECTANCE
        o = offset if offset is not None else declared_offset or 0.0
        decision = ScalingDecision(OpticalScaling(s, o), "user", "given explicitly", d.source)
    elif d.dn_per_reflectance is not None or declared_offset is not None:
        s = d.dn_per_reflectance or S2_DN_PER_REFLECTANCE
        o = declared_offset or 0.0
        why = f"baseline {d.baseline}" if d.offset is None and d.baseline else "declared offset/scale"
        decision = ScalingDecision(OpticalScaling(s, o), "declared", why, d.source)
    elif dtype.kind in "ui" and dtype.itemsize == 1:
        raise ScalingError(
            f"{what}: 8-bit optical data cannot be Sentinel-2 reflectance x 10000 (at most 255); declare "
            "how it maps to reflectance (DN per unit reflectance, e.g. 255) or supply the original 16-bit "
            "product", input="ms", option="ms_scale", found=str(dtype))
    elif dtype.kind in "ui":
        decision = ScalingDecision(OpticalScaling(), "dtype", "integer data: DN = reflectance x 10000")
    else:
        sample = first_band if first_band is not None else np.zeros(0)
        sample = sample[np.isfinite(sample)]
        if sample.size and np.percentile(sample, 99) <= 2.0:
            return ScalingDecision(OpticalScaling(1.0), "values",
                                   "floating-point values <= 2: already reflectance")
        decision = ScalingDecision(OpticalScaling(), "values", "floating-point values > 2: DN = reflectance x 10000")
    if visible is not None and decision.offset == 0 and decision.dn_per_reflectance == S2_DN_PER_REFLECTANCE \
            and offset is None and offset_look(visible, 0.0):
        warning = (f"{what}: almost no valid visible-band value is below 1000, as in Sentinel-2 products of "
                   "processing baseline 04.00 or later, whose values carry +1000; none was declared, so "
                   f"none is removed. If this is such a product, give the offset {S2_BASELINE4_OFFSET:g}")
        decision = ScalingDecision(decision.scaling, decision.rule, decision.reason, decision.source,
                                   warning, S2_BASELINE4_OFFSET)
    return decision
