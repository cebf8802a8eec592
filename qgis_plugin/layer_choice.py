"""Which layer, where: guessing the MS and SAR layers among the project's (by their bands,
acquisition dates, the selection, visibility and coverage of the map view), extents in the
MS layer's CRS, overlaps, and where a layer lies from the area, in words.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from .band_match import match_bands

# --------------------------------------------------------------------------- guessing the inputs


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


# --------------------------------------------------------------------------- overlap, where, ranking


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
