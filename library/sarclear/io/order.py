"""Band order: a spectral plausibility check for optical bands whose order is only assumed.

When no band carries a name, sarclear reads them in the documented default order for their
count (:func:`sarclear.bands.default_s2_order`). Stacks built from a sorted file list
(``gdalbuildvrt -separate`` over ``B*.tif``, QGIS, some datasets such as EuroSAT) come in an
*alphabetical* order instead: ``B1, B10, B11, B12, B2, ...`` or, with zero-padded names,
``B01 ... B09, B10, B11, B12, B8A``. Reading those as the standard order feeds the network
the wrong bands, silently.

Real spectra are smooth in wavelength: the median over pixels of the total variation of the
log spectrum (bands sorted by wavelength; B1, B9, B10, the aerosol and absorption bands,
left out) is smallest for the true order. On real Sentinel-2 samples (Major TOM L2A, L1C
JP2, EuroSAT) the true order beats each alphabetical reading by a factor of 1.15 to 3.
:func:`check_band_order` compares the assumed reading with both alphabetical readings and
refuses when one of them fits clearly better; a 13-band stack whose cirrus band B10 is
brighter than blue gets a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..bands import S2_WAVELENGTH_NM

#: How much smoother an alternative reading must be to refuse the assumed one.
REFUSE_RATIO = 1.1
_SKIP = ("B1", "B9", "B10")


@dataclass(frozen=True)
class BandOrderCheck:
    """Outcome of the plausibility check of an assumed band order.

    ``verdict``: "plausible", "warning" or "implausible"; ``roughness``: the spectral
    roughness under each reading ("assumed", "alphabetical", "zero-padded alphabetical");
    ``likely``: the reading that fits best; ``detail``: a neutral sentence for the log."""

    verdict: str
    roughness: dict[str, float]
    likely: str
    detail: str

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "roughness": self.roughness, "likely": self.likely, "detail": self.detail}


def alphabetical(names: Sequence[str], padded: bool = False) -> list[str]:
    """``names`` sorted as a file listing sorts them (``B10`` before ``B2``; with ``padded``,
    ``B01``... and ``B8A`` after ``B12``)."""
    if padded:
        return sorted(names, key=lambda b: re.sub(r"B(\d)(?![\dA])", r"B0\1", b))
    return sorted(names)


def roughness(values: np.ndarray, names: Sequence[str]) -> float:
    """Median over pixels of the total variation of the log spectrum, bands ``names``
    (one per row of ``values``, (C, N) positive values) sorted by wavelength."""
    keep = [i for i, n in enumerate(names) if n not in _SKIP]
    order = sorted(keep, key=lambda i: S2_WAVELENGTH_NM[names[i]])
    logv = np.log(np.clip(values[order], 1e-6, None))
    return float(np.median(np.abs(np.diff(logv, axis=0)).sum(axis=0)))


def check_band_order(values: np.ndarray, names: Sequence[str]) -> BandOrderCheck:
    """Check the assumed order ``names`` of the rows of ``values`` ((C, N) valid pixels, any
    positive scale: DN or reflectance)."""
    values = np.asarray(values, np.float64)
    values = values[:, np.isfinite(values).all(axis=0) & (values > 0).all(axis=0)]
    if values.shape[1] < 50:
        return BandOrderCheck("plausible", {}, "assumed", "too few valid pixels to check the band order")
    assumed = list(names)
    readings = {"assumed": assumed}
    for label, padded in (("alphabetical", False), ("zero-padded alphabetical", True)):
        alt = alphabetical(assumed, padded)
        if alt != assumed:
            # slot k holds band alt[k]: read the values under that hypothesis
            readings[label] = alt
    rough = {k: round(roughness(values, v), 4) for k, v in readings.items()}
    likely = min(rough, key=rough.get)
    if likely != "assumed" and rough["assumed"] > REFUSE_RATIO * rough[likely]:
        return BandOrderCheck("implausible", rough, likely, (
            f"the values do not look like bands {', '.join(assumed)} in this order; they fit the {likely} order "
            f"({', '.join(readings[likely])}) much better (spectral roughness {rough['assumed']:.2f} vs "
            f"{rough[likely]:.2f})"))
    if "B10" in assumed and "B2" in assumed:
        b10, b2 = (float(np.median(values[assumed.index(b)])) for b in ("B10", "B2"))
        if b10 > b2:
            return BandOrderCheck("warning", rough, likely, (
                f"the band read as the cirrus band B10 (median {b10:.4g}) is brighter than blue B2 "
                f"(median {b2:.4g}); B10 is nearly dark except under cirrus: check the band order"))
    return BandOrderCheck("plausible", rough, "assumed", "the spectra are plausible for the assumed band order")
