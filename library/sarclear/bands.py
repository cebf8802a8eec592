"""Sentinel-2 and Sentinel-1 band definitions: the only place band names, order and
resolutions exist.

A *band set* is the ordered tuple of Sentinel-2 bands a model reads and writes. The
paper (Grohnfeldt et al. 2018) uses the ten 10 m and 20 m bands (``paper10``); ``all13``
keeps the 60 m bands as well. Sentinel-1 channels are named by polarisation (VV, VH, HH,
HV); a model may use any number of them, in the order of its config.

Every other module imports these names; nothing else spells them out.
"""

from __future__ import annotations

import re
from typing import Final

#: All thirteen Sentinel-2 MSI bands in the product order (L1C).
S2_BANDS: Final = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")

#: Native ground sampling distance of each Sentinel-2 band, metres.
S2_RESOLUTION_M: Final = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
    "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}

#: Central wavelength of each Sentinel-2 band (S2A), nanometres.
S2_WAVELENGTH_NM: Final = {
    "B1": 443, "B2": 490, "B3": 560, "B4": 665, "B5": 705, "B6": 740, "B7": 783, "B8": 842,
    "B8A": 865, "B9": 945, "B10": 1375, "B11": 1610, "B12": 2190,
}

#: The paper's ten bands: all but the 60 m bands B1, B9, B10.
S2_PAPER10: Final = tuple(b for b in S2_BANDS if S2_RESOLUTION_M[b] != 60)

#: Level-2A products carry twelve bands: no cirrus band B10.
S2_L2A12: Final = tuple(b for b in S2_BANDS if b != "B10")

#: Named band sets a model can be trained on.
BAND_SETS: Final = {"paper10": S2_PAPER10, "all13": S2_BANDS}
DEFAULT_BAND_SET: Final = "paper10"

#: The true-colour display bands (red, green, blue).
S2_RGB: Final = ("B4", "B3", "B2")

#: Sentinel-1 polarisation channels known to the library, in their conventional order.
S1_CHANNELS: Final = ("VV", "VH", "HH", "HV")
DEFAULT_SAR_CHANNELS: Final = ("VV", "VH")

_S2_NAME = re.compile(r"(?<![A-Z0-9])B0?(\d{1,2}A?)(?![A-Z0-9])")
_S1_NAME = re.compile(r"(?<![A-Z])(VV|VH|HH|HV)(?![A-Z])")


def band_set(name: str) -> tuple[str, ...]:
    """Return the ordered bands of the band set ``name`` (``paper10`` or ``all13``)."""
    try:
        return BAND_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown band set {name!r}; choose one of {', '.join(BAND_SETS)}"
        ) from None


def normalise_s2_name(text: str) -> str | None:
    """Find a Sentinel-2 band name in ``text`` ("B02", "b8a", "S2_B11.tif" -> B2, B8A, B11).

    Returns None when ``text`` names no band or more than one.
    """
    found = {f"B{m}" for m in _S2_NAME.findall(text.upper())}
    found &= set(S2_BANDS)
    return found.pop() if len(found) == 1 else None


def normalise_s1_name(text: str) -> str | None:
    """Find a Sentinel-1 polarisation in ``text`` ("VV", "s1_vh.tif" -> VV, VH), else None."""
    found = set(_S1_NAME.findall(text.upper()))
    return found.pop() if len(found) == 1 else None


def default_s2_order(count: int) -> tuple[str, ...] | None:
    """The documented band order of an unlabelled multi-band Sentinel-2 raster of ``count``
    bands: 13 -> all bands B1..B12 (L1C), 12 -> L2A order without B10, 10 -> ``paper10``.
    Anything else has no default order and needs band names.
    """
    return {13: S2_BANDS, 12: S2_L2A12, 10: S2_PAPER10}.get(count)
