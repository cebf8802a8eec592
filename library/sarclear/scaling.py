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
