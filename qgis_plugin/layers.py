"""Between QGIS layers and the library: layer -> file paths, band matching for display,
extents -> the MS layer's CRS, and adding and styling the result layers.

Band names, their order and the pixel-grid snapping belong to the library
(:mod:`sarclear.bands`, :mod:`sarclear.raster`); this module only asks it. Library modules
are imported inside the functions that need them, so importing this module never imports
torch.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from qgis.core import (
    QgsBasicNumericFormat,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGradientColorRamp,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

# --------------------------------------------------------------------------- layer -> files


def layer_paths(layer: QgsMapLayer | None) -> list[str]:
    """The file(s) GDAL reads for a raster layer; raises the library's InputError (with the
    way out) for layers that are not GDAL files (WMS, memory, database rasters...)."""
    from sarclear.errors import InputError

    if layer is None:
        raise InputError("no layer chosen")
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        raise InputError(f"layer '{layer.name()}' is not a valid raster layer")
    if layer.providerType() != "gdal":
        raise InputError(f"layer '{layer.name()}' is a {layer.providerType()} raster, not a file: save it as "
                         "GeoTIFF first (right-click > Export > Save As...) and use that layer")
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
    if not path.startswith("/vsi") and not Path(path).is_file():
        raise InputError(f"layer '{layer.name()}': its file {path} is not on disk (a subdataset or a "
                         "remote source?); save it as GeoTIFF first and use that layer")
    return [path]


def layers_paths(layers: Iterable[QgsMapLayer]) -> list[str]:
    return [p for layer in layers for p in layer_paths(layer)]


def raster_files(paths: Sequence[str]) -> list[str]:
    """The raster files of band files, folders or a .SAFE (the library's listing)."""
    from sarclear.io import RASTER_SUFFIXES

    files = []
    for path in paths:
        p = Path(path)
        files += (sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES) if p.is_dir()
                  else [str(p)])
    return files


def finest_file(paths: Sequence[str]) -> str | None:
    """The raster file with the smallest pixels among band files, folders or a SAFE: the
    grid a run on them uses (the library reads every band on its finest band's grid)."""
    from osgeo import gdal

    best, size = None, float("inf")
    for path in raster_files(paths):
        ds = gdal.Open(path)
        if ds is None:
            continue
        pixel = abs(ds.GetGeoTransform()[1])
        if pixel < size:
            best, size = path, pixel
    return best


# --------------------------------------------------------------------------- band matching


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


def guess_ms_layer(layers: Sequence[QgsRasterLayer], bands: Sequence[str]) -> QgsRasterLayer | None:
    """The first layer whose bands include all the model's ``bands``."""
    for layer in layers:
        if match_bands([layer], "optical", bands).ok:
            return layer
    return None


_DATE = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?:T\d{6})?(?!\d)")


def acquisition_date(layer: QgsMapLayer) -> date | None:
    """The acquisition date in a Sentinel product or file name (..._20200607T010800_...),
    from the layer's file path, else its name."""
    for text in (layer.source(), layer.name()):
        for match in _DATE.finditer(Path(text).name if text == layer.source() else text):
            with contextlib.suppress(ValueError):
                return date(*(int(g) for g in match.groups()))
    return None


def by_date(candidates: Sequence[QgsRasterLayer], ms: QgsMapLayer | None) -> list[QgsRasterLayer]:
    """``candidates`` with those acquired closest to ``ms``'s date first (stable otherwise):
    the SAR pass nearest in time shows the ground the clouds hide."""
    when = acquisition_date(ms) if ms is not None else None
    if when is None:
        return list(candidates)

    def gap(layer):
        other = acquisition_date(layer)
        return abs((other - when).days) if other is not None else 10**6

    return sorted(candidates, key=gap)


def guess_sar_layers(layers: Sequence[QgsRasterLayer], channels: Sequence[str]) -> list[QgsRasterLayer]:
    """SAR layers that together provide ``channels``: one layer with all of them, else one
    single-channel layer per channel (one file per polarisation)."""
    if not channels:
        return []
    for layer in layers:
        if match_bands([layer], "sar", channels).ok:
            return [layer]
    chosen: dict[str, QgsRasterLayer] = {}
    for layer in layers:
        if layer.bandCount() != 1:
            continue
        m = match_bands([layer], "sar", None)
        name = m.rows[0].name if m.rows else ""
        if name in channels and name not in chosen:
            chosen[name] = layer
    return [chosen[c] for c in channels if c in chosen] if len(chosen) == len(channels) else []


# --------------------------------------------------------------------------- extents


def extent_in_crs(rect: QgsRectangle, source: QgsCoordinateReferenceSystem,
                  target: QgsCoordinateReferenceSystem,
                  project: QgsProject | None = None) -> tuple[float, float, float, float]:
    """``rect`` (in ``source``) as (xmin, ymin, xmax, ymax) in ``target``: the bounding box
    of its densified outline, so a reprojected extent still covers all of ``rect``."""
    if source.isValid() and target.isValid() and source != target:
        transform = QgsCoordinateTransform(source, target, project or QgsProject.instance())
        rect = transform.transformBoundingBox(rect)
    return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()


def area_pixels(ms_path: str, aoi: Sequence[float] | None) -> tuple[int, int]:
    """Width and height in pixels of the area a run on ``aoi`` will cover (the library snaps
    the area to the MS raster's pixel grid); raises the library's error if it is empty."""
    from sarclear.raster import Grid, open_raster

    grid = Grid.of(open_raster(ms_path))
    window = grid.window if aoi is None else grid.window_for_bounds(aoi)
    return window.width, window.height


# --------------------------------------------------------------------------- result layers


def rgb_band_numbers(path: str) -> tuple[int, int, int] | None:
    """GDAL band numbers of red, green and blue (:data:`sarclear.bands.S2_RGB`) in ``path``."""
    from sarclear.bands import S2_RGB
    from sarclear.errors import SarclearError
    from sarclear.raster import named_bands

    try:
        refs, _ = named_bands(path, sensor="optical")
    except SarclearError:
        return None
    index = {r.name: r.index for r in refs if r.name}
    if not all(b in index for b in S2_RGB):
        return None
    red, green, blue = (index[b] for b in S2_RGB)
    return red, green, blue


def style_true_colour(layer: QgsRasterLayer) -> bool:
    """Render ``layer`` as true colour (B4/B3/B2) with a 2-98 % cumulative-cut stretch;
    the data are untouched. False if the layer lacks one of those bands."""
    bands = rgb_band_numbers(layer_paths(layer)[0])
    if bands is None:
        return False
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), *bands))
    layer.setContrastEnhancement(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    layer.triggerRepaint()
    return True


def _map_ramp():
    ramp = QgsStyle.defaultStyle().colorRamp("Magma")
    if ramp is None:  # a style database without the matplotlib ramps
        ramp = QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191))
    return ramp


def map_units(path: str) -> str:
    """The unit the library wrote into a map's band ("reflectance", "degrees")."""
    from osgeo import gdal

    ds = gdal.Open(path)
    return ds.GetRasterBand(1).GetUnitType() if ds is not None else ""


def style_map(layer: QgsRasterLayer, units: str) -> tuple[float, float]:
    """Single-band pseudocolour from 0 to the 98th percentile, with a continuous legend
    labelled in ``units``. Returns the (min, max) of the colour scale."""
    provider = layer.dataProvider()
    _, high = provider.cumulativeCut(1, 0.0, 0.98, QgsRectangle(), 250_000)  # a sample: never blocks long
    if not high > 0:
        high = max(provider.bandStatistics(1).maximumValue, 1e-6)
    function = QgsColorRampShader(0.0, high, _map_ramp(), QgsColorRampShader.Type.Interpolated)
    function.classifyColorRamp(5, 1)
    legend = QgsColorRampLegendNodeSettings()
    legend.setUseContinuousLegend(True)
    legend.setSuffix("°" if units == "degrees" else f" {units}" if units else "")
    number_format = QgsBasicNumericFormat()
    number_format.setNumberDecimalPlaces(1 if units == "degrees" else 3)
    legend.setNumericFormat(number_format)
    function.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return 0.0, high


def style_result(layer: QgsRasterLayer, key: str) -> None:
    """Style a run's output ("output": true colour) or map (pseudocolour in its units)."""
    if key == "output":
        style_true_colour(layer)
    elif key == "mask":
        style_mask(layer)
    elif key == "uncertainty":
        style_map(layer, "reflectance")
    else:
        style_map(layer, map_units(layer_paths(layer)[0]))


#: how the classes of a detected cloud mask are drawn: (value, colour, label)
MASK_CLASSES = ((0, QColor(0, 0, 0, 0), "clear (kept as it is)"), (1, QColor(255, 255, 255), "cloud"),
                (2, QColor(40, 40, 160), "cloud shadow"))


def style_mask(layer: QgsRasterLayer) -> None:
    """A detected cloud mask as classes: clear transparent, cloud white, shadow dark blue."""
    from qgis.core import QgsPalettedRasterRenderer

    classes = [QgsPalettedRasterRenderer.Class(v, c, label) for v, c, label in MASK_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def result_layer_names(kind: str, model: str = "") -> dict[str, str]:
    """Layer names of a run's outputs; ``kind`` is the metrics' kind, "error" (against a
    reference) or "change" (input vs output); ``model``: the model's label ("... (demo
    model)"), so a demo's output is never taken for a real one."""
    output = f"reconstruction (true colour, {model})" if model else "reconstruction (true colour)"
    side = {"mask": "cloud mask (detected)", "uncertainty": "uncertainty (1 sigma)"}
    if kind == "error":
        return {"output": output, "rmse": "RMSE error vs reference", "sam": "SAM error vs reference", **side}
    return {"output": output, "rmse": "RMSE change, input vs output", "sam": "SAM change, input vs output", **side}


def result_layer_name(key: str, kind: str, path: str, model: str = "") -> str:
    """The name of one output ("output", "rmse", "sam", "mask", "uncertainty") with the map's units."""
    units = "reflectance" if key == "uncertainty" else "" if key in ("output", "mask") else map_units(str(path))
    return result_layer_names(kind, model).get(key, key) + (f" ({units})" if units else "")


def add_result_layers(name: str, output: str, maps: dict[str, str], kind: str, project: QgsProject | None = None,
                      model: str = "") -> tuple[QgsLayerTreeGroup, list[QgsRasterLayer]]:
    """Add a run's reconstruction and maps in a new group ``name`` at the top of the layer
    tree: the reconstruction in true colour (visible), the RMSE and SAM maps in
    pseudocolour with their units in the name and legend, the detected cloud mask (classes)
    and the uncertainty map, where the run wrote them (hidden, below it)."""
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, name)
    added = []
    order = ("rmse", "sam", "mask", "uncertainty")
    for key, path in [("output", output), *sorted(maps.items(), key=lambda kv: order.index(kv[0])
                                                  if kv[0] in order else len(order))]:
        layer_name = unique_layer_name(result_layer_name(key, kind, path, model), project)
        layer = QgsRasterLayer(str(path), layer_name, "gdal")
        if not layer.isValid():
            continue
        style_result(layer, key)
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        if key != "output":
            node.setItemVisibilityChecked(False)
            node.setExpanded(True)
        added.append(layer)
    return group, added


# --------------------------------------------------------------------------- which layer, where


_COMPASS = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")


def layer_rect_in(layer: QgsMapLayer, crs: QgsCoordinateReferenceSystem,
                  project: QgsProject | None = None) -> QgsRectangle:
    """``layer``'s extent as a rectangle in ``crs``."""
    return QgsRectangle(*extent_in_crs(layer.extent(), layer.crs(), crs, project))


def intersects(layer: QgsMapLayer, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> bool:
    """True if ``layer`` covers some of ``rect`` (in ``crs``)."""
    try:
        return layer_rect_in(layer, crs).intersects(rect)
    except Exception:  # a transform that fails: treat as not overlapping
        return False


def where_is(rect: QgsRectangle, crs: QgsCoordinateReferenceSystem, area: QgsRectangle,
             area_crs: QgsCoordinateReferenceSystem) -> str:
    """Where ``rect`` lies seen from ``area``, in words: "40 km to the east" (the gap between
    their nearest edges on the WGS84 ellipsoid, and the compass direction from the area's
    centre to the rectangle's)."""
    from qgis.core import QgsDistanceArea, QgsPointXY

    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    project = QgsProject.instance()
    other = QgsRectangle(*extent_in_crs(rect, crs, area_crs))
    # nearest points of the two rectangles, in the area's CRS
    ax = min(max(other.xMinimum(), area.xMinimum()), area.xMaximum())
    ay = min(max(other.yMinimum(), area.yMinimum()), area.yMaximum())
    bx = min(max(ax, other.xMinimum()), other.xMaximum())
    by = min(max(ay, other.yMinimum()), other.yMaximum())
    to_wgs84 = QgsCoordinateTransform(area_crs, wgs84, project)
    a, b = to_wgs84.transform(QgsPointXY(ax, ay)), to_wgs84.transform(QgsPointXY(bx, by))
    c1, c2 = to_wgs84.transform(area.center()), to_wgs84.transform(other.center())
    distance = QgsDistanceArea()
    distance.setEllipsoid("WGS84")
    metres = distance.measureLine(a, b)
    bearing = math.degrees(distance.bearing(c1, c2)) % 360.0
    if not (math.isfinite(metres) and math.isfinite(bearing)):
        return "outside it (the two places cannot be compared: check both CRSs)"
    direction = _COMPASS[int((bearing + 22.5) // 45) % 8]
    far = f"{metres:,.0f} m" if metres < 1000 else f"{metres / 1000:,.0f} km"
    return f"{far} to the {direction}"


def is_visible(layer: QgsMapLayer, project: QgsProject | None = None) -> bool:
    """True if ``layer`` is ticked in the layer tree (and its groups are)."""
    node = (project or QgsProject.instance()).layerTreeRoot().findLayer(layer.id())
    return node is not None and node.isVisible()


def rank_layers(candidates: Sequence[QgsRasterLayer], selected: Sequence[QgsMapLayer], view: QgsRectangle,
                view_crs: QgsCoordinateReferenceSystem) -> list[QgsRasterLayer]:
    """``candidates`` best first for a run on the map view: selected, visible and covering
    the view first; then visible and covering it; then covering it; then the rest, each
    group in layer-tree order."""
    chosen = {layer.id() for layer in selected if layer is not None}

    def key(item):
        k, layer = item
        covers = intersects(layer, view, view_crs)
        visible = is_visible(layer)
        picked = layer.id() in chosen
        return (not (covers and picked), not (covers and visible), not covers, not picked, not visible, k)

    return [layer for _, layer in sorted(enumerate(candidates), key=key)]


# --------------------------------------------------------------------------- display


#: Blue reflectance under which a pixel counts as clear for the display stretch (thick cloud and
#: haze brighten the blue band above it; clear land and water stay below it, even top of atmosphere)
CLEAR_BLUE_REFLECTANCE = 0.18


def _read_on(path: str, index: int, bounds: tuple[float, float, float, float], size: tuple[int, int]):
    """Band ``index`` of ``path`` resampled onto ``bounds`` (xmin, ymin, xmax, ymax, in its
    CRS) at ``size`` (columns, rows), as float64 with nodata as NaN."""
    import numpy as np
    from osgeo import gdal

    xmin, ymin, xmax, ymax = bounds
    ds = gdal.Translate("", path, format="MEM", bandList=[index], projWin=[xmin, ymax, xmax, ymin],
                        width=size[0], height=size[1], resampleAlg="nearest")
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray().astype(np.float64)
    if band.GetNoDataValue() is not None:
        values[values == band.GetNoDataValue()] = np.nan
    return values


def clear_stretch(ms_paths: Sequence[str], output: str, order: Sequence[str] | None = None,
                  cloud_mask: str | None = None, offset: float | None = None,
                  ) -> tuple[tuple[float, float], ...] | None:
    """The display range (2nd and 98th percentiles) of red, green and blue, taken from the
    input's clear pixels over the output's area: where ``cloud_mask`` is 0, else where the
    input's blue reflectance is below :data:`CLEAR_BLUE_REFLECTANCE` (all valid pixels if
    fewer than 1 % are clear). In the input's values, which the output shares (same data
    type and scaling), so both can be drawn alike. None if the input lacks a colour band."""
    import numpy as np
    from osgeo import gdal

    from sarclear.bands import S2_RGB
    from sarclear.errors import SarclearError
    from sarclear.io import identify_bands

    try:
        refs = identify_bands(list(ms_paths), S2_RGB, sensor="optical", order=order)  # red, green, blue
        decision = offset_decision(ms_paths, S2_RGB, order, offset)
    except SarclearError:
        return None
    ds = gdal.Open(output)
    gt = ds.GetGeoTransform()
    bounds = (gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3])
    scale = max(1, -(-max(ds.RasterXSize, ds.RasterYSize) // 512))  # at most 512 px a side
    size = (max(1, ds.RasterXSize // scale), max(1, ds.RasterYSize // scale))
    rgb = np.stack([_read_on(r.path, r.index, bounds, size) for r in refs])
    valid = np.isfinite(rgb).all(axis=0)
    if cloud_mask:
        clear = valid & (np.nan_to_num(_read_on(cloud_mask, 1, bounds, size), nan=1.0) == 0)
    else:
        blue = (rgb[2] + decision.offset) / decision.dn_per_reflectance
        clear = valid & (blue < CLEAR_BLUE_REFLECTANCE)
    if clear.sum() < 0.01 * max(valid.sum(), 1):
        clear = valid
    if not clear.any():
        return None
    return tuple((float(np.percentile(b[clear], 2)), float(np.percentile(b[clear], 98))) for b in rgb)


def apply_stretch(layer: QgsRasterLayer, ranges: Sequence[tuple[float, float]]) -> bool:
    """Draw ``layer`` in true colour with ``ranges`` (red, green, blue min/max) as its
    display stretch; the data are untouched."""
    bands = rgb_band_numbers(layer_paths(layer)[0])
    if bands is None:
        return False
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, (low, high), setter in zip(bands, ranges, setters):
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def unique_layer_name(name: str, project: QgsProject | None = None) -> str:
    """``name``, numbered " (2)", " (3)"... if the project has a layer of that name."""
    taken = {layer.name() for layer in (project or QgsProject.instance()).mapLayers().values()}
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
