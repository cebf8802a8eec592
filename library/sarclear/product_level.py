"""Which Sentinel-2 processing level an optical input is (L1C top-of-atmosphere or L2A surface
reflectance): the cloud detector picks its model and rules by it, and the fill's uncertainty its
typical dark ground (:data:`sarclear.fill.DARK_BLUE`). Decided once, here: what the
caller says, else what the input itself says (:func:`product_level_of`), else a guess from the
bands (:func:`guess_product_level`), which says that it guessed: :func:`resolve_level`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .clouds import scattering_shape
from .errors import InputError, SarclearError
from .scaling import OpticalScaling

if TYPE_CHECKING:  # GDAL is not needed to train: the module is imported by networks
    from .raster import RasterStack

log = logging.getLogger(__name__)

#: The processing levels the detector has a model and rules for.
LEVELS = ("l1c", "l2a")
#: Top-of-atmosphere minus surface reflectance at 490 nm: the atmosphere's path reflectance, which
#: an L1C product carries and an L2A product does not (:func:`path_reflectance`). Rayleigh single
#: scattering alone adds about 0.06 there (optical depth 0.157, sun 35 degrees from zenith) and the
#: atmosphere's transmittance takes some 0.01-0.02 of a typical ground's own signal back; on the one
#: scene with both levels of the same date (SSL4EO-S12 0000200, 2020-06-04) B2 differs by 0.041 on
#: average. Absorption, which the L2A correction also removes, is left out: it lowers NIR and SWIR
#: by 0.01-0.04 at the top of the atmosphere there.
PATH_REFLECTANCE_490 = 0.04


def path_reflectance(bands: Sequence[str]) -> np.ndarray:
    """What an L1C product adds to L2A's reflectance of the same ground, per band (C,):
    :data:`PATH_REFLECTANCE_490` falling off as ``(490 nm / wavelength) ** 2``, as skylight does
    (:func:`sarclear.clouds.scattering_shape`). The one rule by which the ground prior
    (:mod:`sarclear.ground_prior`) and the spectral cloud rules (:mod:`sarclear.mask_detectors`)
    carry a level's numbers to the other."""
    return PATH_REFLECTANCE_490 * scattering_shape(bands, 2).numpy()


def guess_product_level(product_level: str | None, bands: Sequence[str]) -> tuple[str, list[str]]:
    """The product level to use ("l1c" or "l2a") and a note when it was guessed."""
    if product_level is not None:
        level = product_level.lower()
        if level not in LEVELS:
            raise InputError(f"product level {product_level!r} is neither l1c nor l2a")
        return level, []
    level = "l1c" if "B10" in bands else "l2a"
    note = (f"product level not given: read as {level.upper()} because the cirrus band B10 is "
            f"{'present' if level == 'l1c' else 'absent'}")
    log.info(note)
    return level, [note]


def product_level_of(stack: RasterStack, scaling: OpticalScaling) -> str | None:
    """The product level ("l1c" or "l2a") that the optical input itself says, else None (the detector
    then guesses from the bands, :func:`guess_product_level`): the level the files' metadata
    declare (:data:`LEVEL_METADATA`), all alike; else the level the band files' paths name, when
    they name one only (Sentinel-2 product names carry MSIL1C or MSIL2A, SAFE folders included);
    "l2a" for a +1000-offset product; "l1c" / "l2a" for a single file with 13 / 12 bands (L1C
    has the cirrus band B10, L2A has not), whichever bands are read; and for band files in a
    folder, "l1c" when the folder holds B10 too, "l2a" when it holds B1 and B9 but not B10."""
    files = {b.path for b in stack.bands}
    opened = {f: opened_or_none(f) for f in files}  # None: does not open here; reading it will say why
    declared = {_declared_level(ds) for ds in opened.values()}
    if len(declared) == 1 and None not in declared:
        level = declared.pop()
        log.info("product level %s, as the input's metadata declares it", level.upper())
        return level
    found = {level for ref in stack.bands for level in LEVELS if f"MSI{level.upper()}" in ref.path.upper()}
    if len(found) == 1:
        level = found.pop()
        log.info("product level %s, from the file names", level.upper())
        return level
    if scaling.offset:
        return "l2a"
    if len(files) == 1:
        (ds,) = opened.values()
        return None if ds is None else {13: "l1c", 12: "l2a"}.get(ds.RasterCount)
    beside = _bands_beside(files)
    if "B10" in beside or {"B1", "B9"} <= beside:
        level = "l1c" if "B10" in beside else "l2a"
        log.info("product level %s: the band files' folder %s the cirrus band B10", level.upper(),
                 "holds" if level == "l1c" else "holds B1 and B9 but not")
        return level
    return None


#: Dataset metadata that declares the level: sarclear's own (a reconstruction carries it when the
#: level was known, as it keeps ten bands without B10, which alone would read as L2A), and GDAL's
#: SENTINEL2 driver's.
LEVEL_METADATA = {"PRODUCT_LEVEL": {"L1C": "l1c", "L2A": "l2a"},
                  "PROCESSING_LEVEL": {"LEVEL-1C": "l1c", "LEVEL-2A": "l2a"},
                  "PRODUCT_TYPE": {"S2MSI1C": "l1c", "S2MSI2A": "l2a"}}


def opened_or_none(path: str):
    """The GDAL dataset of ``path``, or None where it does not open."""
    from .io.gdalio import open_raster

    try:
        return open_raster(path)
    except SarclearError:
        return None


def _declared_level(ds) -> str | None:
    """The level a dataset's metadata declares (:data:`LEVEL_METADATA`), else None (no dataset)."""
    meta = (ds.GetMetadata() or {}) if ds is not None else {}
    for key, values in LEVEL_METADATA.items():
        level = values.get(str(meta.get(key, "")).strip().upper())
        if level:
            return level
    return None


def _bands_beside(files: set[str]) -> set[str]:
    """The Sentinel-2 bands that one-band files name in the folders of ``files``: a per-band
    product (a folder of B01.tif ... B12.tif) holds the cirrus band B10 only at L1C, even when
    the model reads ten other bands of it."""
    from .bands import normalise_s2_name
    from .io.gdalio import RASTER_SUFFIXES

    names: set[str] = set()
    for folder in {Path(f).parent for f in files}:
        try:
            entries = list(folder.iterdir())
        except OSError:  # a /vsi path or a folder gone: nothing to learn here
            continue
        names.update(n for f in entries if f.suffix.lower() in RASTER_SUFFIXES
                     for n in [normalise_s2_name(f.stem)] if n)
    return names


def resolve_level(stack: RasterStack, scaling: OpticalScaling, given: str | None = None) -> tuple[str, list[str]]:
    """The product level of an optical stack: ``given`` (the caller's), else what the input says
    (:func:`product_level_of`), else guessed from its bands; and a note when it was guessed."""
    return guess_product_level(given or product_level_of(stack, scaling), stack.names)
