"""What an optical input declares about its radiometry, and the scaling decision for it.

Sources, first found wins: GDAL band offset/scale (``GetOffset``/``GetScale``, physical =
DN x scale + offset); Sentinel-2 metadata keys in the dataset or band metadata (the
SENTINEL2 driver's BOA_ADD_OFFSET*, RADIO_ADD_OFFSET*, *QUANTIFICATION_VALUE,
PROCESSING_BASELINE); the ``MTD_MSIL2A.xml``/``MTD_MSIL1C.xml`` of an enclosing ``.SAFE``;
the processing baseline in a product id in the path (``..._N0400_...``). The decision itself
is :func:`sarclear.radiometry.decide_optical_scaling`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..bands import S2_RGB
from ..errors import ScalingError
from ..radiometry import Declaration, ScalingDecision, decide_optical_scaling
from .discovery import BandRef
from .gdalio import numpy_dtype, open_raster
from .stack import RasterStack, _sample

log = logging.getLogger(__name__)

_PRODUCT_ID = re.compile(r"S2[A-D]_MSI(L1C|L2A)_\d{8}T\d{6}_(N\d{4})_R\d{3}_T[0-9A-Z]{5}_\d{8}T\d{6}")
_XML_OFFSET = re.compile(r"<(?:BOA|RADIO)_ADD_OFFSET\b[^>]*>\s*(-?[\d.]+)\s*<")
_XML_QUANT = re.compile(r"<(?:BOA_)?QUANTIFICATION_VALUE\b[^>]*>\s*([\d.]+)\s*<")
_XML_BASELINE = re.compile(r"<PROCESSING_BASELINE>\s*([\d.]+)\s*<")
_MTD_NAMES = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")


def _one(values: Sequence[float], what: str, where: str) -> float | None:
    """The single value of ``values`` (None if empty); differing values are refused."""
    distinct = sorted(set(values))
    if len(distinct) > 1:
        raise ScalingError(f"{where}: the bands declare different {what}s ({', '.join(f'{v:g}' for v in distinct)}); "
                           "sarclear applies one to all bands: convert the bands to a common one first",
                           input="ms", option="ms_offset", found=distinct)
    return distinct[0] if distinct else None


def _from_gdal_bands(refs: Sequence[BandRef]) -> Declaration | None:
    """Band offset/scale: physical = DN x scale + offset. A scale below 0.01 means physical
    values are reflectance; otherwise they are reflectance x 10000."""
    pairs = []
    for ref in refs:
        ds = open_raster(ref.path)  # keep the dataset alive while its band is used
        band = ds.GetRasterBand(ref.index)
        scale, offset = band.GetScale(), band.GetOffset()
        pairs.append((1.0 if scale in (None, 0) else float(scale), 0.0 if offset is None else float(offset)))
    if all(p == (1.0, 0.0) for p in pairs):
        return None
    scale = _one([p[0] for p in pairs], "scale", refs[0].path)
    offset = _one([p[1] for p in pairs], "offset", refs[0].path)
    per_refl = 1.0 if scale < 0.01 else 10_000.0
    return Declaration("GDAL band offset/scale", offset=offset / scale, dn_per_reflectance=per_refl / scale)


def _from_metadata(refs: Sequence[BandRef]) -> Declaration | None:
    """SENTINEL2-driver style metadata keys, in the dataset's or the band's metadata."""
    offsets, quant, baseline = [], [], None
    for ref in refs:
        ds = open_raster(ref.path)
        md = {**(ds.GetMetadata() or {}), **(ds.GetRasterBand(ref.index).GetMetadata() or {})}
        for key, value in md.items():
            k = key.upper()
            try:
                if re.fullmatch(r"(BOA|RADIO)_ADD_OFFSET(_B\w+)?", k):
                    offsets.append(float(value))
                elif re.fullmatch(r"(BOA_)?QUANTIFICATION_VALUE", k):
                    quant.append(float(value))
                elif k == "PROCESSING_BASELINE":
                    baseline = value.strip()
            except ValueError:
                log.debug("%s: unreadable metadata %s=%r", ref.path, key, value)
    if not (offsets or quant or baseline):
        return None
    return Declaration("Sentinel-2 metadata", offset=_one(offsets, "offset", refs[0].path),
                       dn_per_reflectance=_one(quant, "quantification value", refs[0].path), baseline=baseline)


def _safe_metadata_file(path: str) -> Path | None:
    """The MTD_MSIL*.xml of the ``.SAFE`` product that holds ``path``, if any."""
    for parent in list(Path(path).resolve().parents)[:8]:
        for name in _MTD_NAMES:
            if (parent / name).is_file():
                return parent / name
        if parent.suffix.upper() == ".SAFE":
            return None
    return None


def _from_safe(refs: Sequence[BandRef]) -> Declaration | None:
    mtd = _safe_metadata_file(refs[0].path)
    if mtd is None:
        return None
    text = mtd.read_text(errors="replace")  # read as text: no XML parser, no entity expansion
    offsets = [float(v) for v in _XML_OFFSET.findall(text)]
    quant = [float(v) for v in _XML_QUANT.findall(text)]
    base = _XML_BASELINE.search(text)
    return Declaration(str(mtd), offset=_one(offsets, "offset", str(mtd)),
                       dn_per_reflectance=_one(quant, "quantification value", str(mtd)),
                       baseline=base.group(1) if base else None)


def _from_product_id(refs: Sequence[BandRef]) -> Declaration | None:
    found = {m.group(2) for r in refs for m in [_PRODUCT_ID.search(str(Path(r.path).resolve()))] if m}
    if len(found) != 1:
        return None
    baseline = found.pop()
    return Declaration(f"processing baseline {baseline} in the product id", baseline=baseline)


def read_declaration(refs: Sequence[BandRef]) -> Declaration | None:
    """What the files of ``refs`` declare (see the module docstring); None if nothing."""
    for source in (_from_gdal_bands, _from_metadata, _from_safe, _from_product_id):
        found = source(refs)
        if found is not None and (found.offset is not None or found.dn_per_reflectance is not None
                                  or found.baseline is not None):
            from ..radiometry import baseline_offset

            if found.offset is None and found.dn_per_reflectance is None and baseline_offset(found.baseline) is None:
                continue  # a baseline that implies nothing (N9999)
            return found
    return None


def optical_scaling(stack: RasterStack, *, scale: float | None = None, offset: float | None = None,
                    what: str | None = None) -> ScalingDecision:
    """The scaling decision for an optical stack: the caller's ``scale``/``offset``, else
    what the files declare, else the data type and values (see
    :func:`sarclear.radiometry.decide_optical_scaling`). Logs the decision and any warning."""
    what = what or stack.bands[0].path
    declared = read_declaration(stack.bands)
    visible = [r for r in stack.bands if r.name in S2_RGB] or list(stack.bands[:1])
    samples = [_sample(open_raster(r.path), r.index, 256) for r in visible]
    samples = [s[s != 0] for s in samples]
    vis = np.concatenate(samples) if samples else np.zeros(0)
    first = _sample(open_raster(stack.bands[0].path), stack.bands[0].index)
    decision = decide_optical_scaling(numpy_dtype(stack.dtype), scale=scale, offset=offset, declared=declared,
                                      visible=vis, first_band=first, what=what)
    log.info("%s: reflectance = (value %+g) / %g (%s: %s%s)", what, decision.offset, decision.dn_per_reflectance,
             decision.rule, decision.reason, f"; {decision.source}" if decision.source else "")
    if decision.warning:
        log.warning(decision.warning)
    return decision


def detect_optical_scaling(stack: RasterStack, declared=None):
    """Compatibility wrapper: the :class:`~sarclear.radiometry.OpticalScaling` of
    :func:`optical_scaling`, with ``declared`` (an OpticalScaling) as the caller's values."""
    if declared is not None:
        return optical_scaling(stack, scale=declared.dn_per_reflectance, offset=declared.offset).scaling
    return optical_scaling(stack).scaling



