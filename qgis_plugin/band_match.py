"""Band matching for the dialog: the bands of some layers or files as the library names
them, which ones the model reads, and how the library will scale the optical values into
reflectance. Band names and their order belong to the library (:mod:`sarclear.io`); this
module only asks it, importing it inside the functions (never torch at import time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsMapLayer

from .layer_files import layer_paths


@dataclass
class BandRow:
    """One band of an input as the dialog shows it."""

    layer: str          # layer name (or file name for files picked outside the project)
    path: str
    index: int          # 1-based band number in its file
    name: str           # name identified by the library ("" if none)
    use: int | None = None  # position among the model's inputs (0-based), None if unused
    source: str = ""    # the file a virtual raster's band reads (its name often names the band)
    how: str = ""       # how the library named it: description, file name, VRT source, given, default order


@dataclass
class BandMatch:
    """How the bands of some layers match what a model reads."""

    rows: list[BandRow] = field(default_factory=list)
    problem: str | None = None   # the library's message when they do not match
    named: bool = True           # False: the library could not name the bands at all
    warning: str | None = None   # the library's doubt (e.g. a band order that may be wrong)

    @property
    def ok(self) -> bool:
        return self.problem is None


def band_source(path: str, index: int) -> str:
    """The file a band of a virtual raster (VRT) reads, "" for other rasters."""
    from osgeo import gdal

    if not path.lower().endswith(".vrt"):
        return ""
    ds = gdal.Open(path)
    info = ds.GetRasterBand(index).GetMetadataItem("Pixel_0_0", "LocationInfo") if ds is not None else None
    if not info or "<File>" not in info:
        return ""
    return info.split("<File>", 1)[1].split("</File>", 1)[0]


def match_bands(layers: Sequence[QgsMapLayer], sensor: str, wanted: Sequence[str] | None,
                order: Sequence[str] | None = None) -> BandMatch:
    """Identify the bands of ``layers`` ("optical" or "sar") the way a run will, and say
    which ones the model (``wanted``, None if unknown) reads. ``order``: names the user
    gave, one per band in file order. Never raises for a band problem: the library's
    message is in ``problem``."""
    from sarclear.errors import SarclearError

    try:
        sources = [(layer.name(), path) for layer in layers for path in layer_paths(layer)]
    except SarclearError as exc:
        return BandMatch(problem=str(exc), named=False)
    return match_paths(sources, sensor, wanted, order)


def match_paths(sources: Sequence[tuple[str, str]], sensor: str, wanted: Sequence[str] | None,
                order: Sequence[str] | None = None) -> BandMatch:
    """:func:`match_bands` for files: ``sources`` are (label, path) pairs; a path may be a
    folder or a .SAFE (the library lists its band files)."""
    from osgeo import gdal

    from sarclear.errors import SarclearError
    from sarclear.io import identify_bands, named_bands, open_optical

    match = BandMatch()
    try:
        paths = [path for _, path in sources]
        if not paths:
            match.problem = "no layer chosen"
            return match
        refs, _ = named_bands(paths, sensor=sensor, order=order, wanted=tuple(wanted or ()))
        label = {path: name for name, path in sources}
        for ref in refs:
            match.rows.append(BandRow(label.get(ref.path, Path(ref.path).name), ref.path, ref.index, ref.name,
                                      source=band_source(ref.path, ref.index), how=getattr(ref, "how", "")))
        if wanted:
            if sensor == "optical":  # as a run opens it: with the library's band-order check
                stack = open_optical(paths, wanted, order=order)
                used = list(stack.bands)
                check = getattr(stack, "order_check", None)
                if check is not None and check.verdict == "warning":
                    match.warning = f"the band order may be wrong: {check.detail}"
            else:
                used = identify_bands(paths, wanted, sensor=sensor, order=order)
            position = {(r.path, r.index): k for k, r in enumerate(used)}
            for row in match.rows:
                row.use = position.get((row.path, row.index))
    except SarclearError as exc:
        from .messages import describe

        match.problem = describe(exc)
        match.named = any(r.name for r in match.rows)
        if not match.rows:  # show the bands, unnamed, so they can be named
            for name, path in sources:
                ds = gdal.Open(path) if Path(path).is_file() else None
                count = ds.RasterCount if ds is not None else 0
                match.rows.extend(BandRow(name, path, i, "", source=band_source(path, i))
                                  for i in range(1, count + 1))
    return match


@dataclass
class OffsetDecision:
    """The optical radiometry a run will use, as the dialog shows it."""

    offset: float
    dn_per_reflectance: float
    text: str                     # what was decided and why (the library's words)
    warning: str | None = None    # the data contradict it (e.g. look offset, none declared)
    suggested: float | None = None


def offset_decision(paths: Sequence[str], bands: Sequence[str], order: Sequence[str] | None = None,
                    offset: float | None = None) -> OffsetDecision:
    """How the library will turn the optical values into reflectance, with ``offset``
    (None: its automatic rule: declared by the product, else detected), as its decision
    object (:func:`sarclear.io.declared.optical_scaling`) says."""
    from sarclear.io import open_optical
    from sarclear.io.declared import optical_scaling

    stack = open_optical(list(paths), bands, order=order, check_order=False)
    d = optical_scaling(stack, offset=offset, what="the Sentinel-2 input")
    where = f" ({d.source})" if d.source else ""
    return OffsetDecision(d.offset, d.dn_per_reflectance,
                          f"reflectance = (value {d.offset:+g}) / {d.dn_per_reflectance:g}: {d.reason}{where}",
                          d.warning, d.suggested_offset)
