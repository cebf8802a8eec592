"""Pixel grids: size, geotransform and CRS; windows of bounds, overlaps, whole-pixel offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, osr

from ..errors import GeoreferenceError, InputError, NoOverlapError
from ..tiling import Window

_IDENTITY_GT = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Grid:
    """A raster's pixel grid: size, affine geotransform and CRS (WKT, '' if none)."""

    width: int
    height: int
    geotransform: tuple[float, ...]
    crs_wkt: str

    @classmethod
    def of(cls, ds: gdal.Dataset) -> Grid:
        gt = ds.GetGeoTransform(can_return_null=True)
        return cls(ds.RasterXSize, ds.RasterYSize, tuple(gt) if gt else _IDENTITY_GT,
                   ds.GetProjectionRef() or "")

    @property
    def georeferenced(self) -> bool:
        return self.geotransform != _IDENTITY_GT or bool(self.crs_wkt)

    @property
    def window(self) -> Window:
        return Window(0, 0, self.width, self.height)

    @property
    def pixel_size(self) -> float:
        """Ground size of a pixel along x, in CRS units (rotation included)."""
        gt = self.geotransform
        return float(np.hypot(gt[1], gt[4]))

    def srs(self) -> osr.SpatialReference | None:
        if not self.crs_wkt:
            return None
        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return srs

    def subgrid(self, window: Window) -> Grid:
        """The grid of ``window``: same pixels, origin moved to its top-left corner."""
        gt = self.geotransform
        x0 = gt[0] + window.col_off * gt[1] + window.row_off * gt[2]
        y0 = gt[3] + window.col_off * gt[4] + window.row_off * gt[5]
        return Grid(window.width, window.height, (x0, gt[1], gt[2], y0, gt[4], gt[5]), self.crs_wkt)

    def bounds(self, window: Window | None = None) -> tuple[float, float, float, float]:
        """Axis-aligned envelope (xmin, ymin, xmax, ymax) of ``window`` in the grid's CRS."""
        w = window or self.window
        gt = self.geotransform
        xs, ys = [], []
        for c, r in ((w.col_off, w.row_off), (w.right, w.row_off), (w.col_off, w.bottom), (w.right, w.bottom)):
            xs.append(gt[0] + c * gt[1] + r * gt[2])
            ys.append(gt[3] + c * gt[4] + r * gt[5])
        return min(xs), min(ys), max(xs), max(ys)

    def window_for_bounds(self, bounds: Sequence[float]) -> Window:
        """Smallest window of whole pixels that covers ``bounds`` (xmin, ymin, xmax, ymax,
        in the grid's CRS), clipped to the grid; raises :class:`NoOverlapError` if empty."""
        xmin, ymin, xmax, ymax = bounds
        if not (xmax > xmin and ymax > ymin):
            raise InputError(f"area of interest {tuple(bounds)} is empty: need xmin < xmax and ymin < ymax")
        inv = gdal.InvGeoTransform(self.geotransform)
        if inv is None:
            raise GeoreferenceError("the optical raster's geotransform cannot be inverted")
        cols, rows = [], []
        for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)):
            c, r = gdal.ApplyGeoTransform(inv, x, y)
            cols.append(c)
            rows.append(r)
        eps = 1e-6  # bounds that fall on pixel edges must not grab a neighbour pixel
        c0, c1 = int(np.floor(min(cols) + eps)), int(np.ceil(max(cols) - eps))
        r0, r1 = int(np.floor(min(rows) + eps)), int(np.ceil(max(rows) - eps))
        win = Window(c0, r0, c1 - c0, r1 - r0).intersection(self.window)
        if win.empty:
            raise NoOverlapError(
                f"area of interest {tuple(round(v, 6) for v in bounds)} does not overlap the optical "
                f"raster, whose extent is {tuple(round(v, 6) for v in self.bounds())} in its CRS; "
                "give the area in the optical raster's CRS")
        return win

    def same_as(self, other: Grid) -> bool:
        """Same size, same pixel positions (to 1e-6 of a pixel) and the same CRS."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        tol = 1e-6 * max(abs(v) for v in self.geotransform[1:3] + self.geotransform[4:6])
        if any(abs(a - b) > tol for a, b in zip(self.geotransform, other.geotransform)):
            return False
        return same_crs(self.crs_wkt, other.crs_wkt)


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    if not wkt_a or not wkt_b:
        return not wkt_a and not wkt_b
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def bounds_in(grid: Grid, other: Grid) -> tuple[float, float, float, float]:
    """The envelope of ``other`` expressed in ``grid``'s CRS (densified edges)."""
    xmin, ymin, xmax, ymax = other.bounds()
    if same_crs(grid.crs_wkt, other.crs_wkt):
        return xmin, ymin, xmax, ymax
    src, dst = other.srs(), grid.srs()
    if src is None or dst is None:
        raise GeoreferenceError("cannot compare extents: one raster has a CRS, the other none")
    ct = osr.CoordinateTransformation(src, dst)
    return tuple(ct.TransformBounds(xmin, ymin, xmax, ymax, 21))


def overlap_window(grid: Grid, other: Grid, area: Window) -> Window:
    """The part of ``area`` (pixels of ``grid``) that ``other`` covers; empty if none."""
    try:
        bounds = bounds_in(grid, other)
        return grid.window_for_bounds(bounds).intersection(area)
    except NoOverlapError:
        return Window(area.col_off, area.row_off, 0, 0)
    except InputError:  # degenerate (zero-area) transformed bounds
        return Window(area.col_off, area.row_off, 0, 0)


def native_offset(native: Grid, target: Grid) -> tuple[int, int] | None:
    """(column, row) of ``target``'s origin in ``native``'s pixels, when ``target`` is the
    same pixel grid shifted by whole pixels (the grid of a window); None otherwise."""
    if native.same_as(target):
        return 0, 0
    a, b = native.geotransform, target.geotransform
    if a[1:3] != b[1:3] or a[4:6] != b[4:6] or not same_crs(native.crs_wkt, target.crs_wkt):
        return None
    inv = gdal.InvGeoTransform(a)
    if inv is None:
        return None
    col, row = gdal.ApplyGeoTransform(inv, b[0], b[3])
    rc, rr = round(col), round(row)
    if abs(col - rc) > 1e-6 or abs(row - rr) > 1e-6:
        return None
    return rc, rr
