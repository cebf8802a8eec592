"""Where the sun stood when Sentinel-2 took an image, as an azimuth in the image's own grid.

A cloud's shadow falls on the far side of the cloud from the sun, so the cloud detector
(:mod:`sarclear.masks`) keeps a shadow only where a cloud lies toward the sun from it: dark
forest, water or soil beside a cloud but on its sunny side is ground, not shadow.

The azimuth (degrees clockwise from north, as Sentinel-2's metadata gives it) comes from, in order:

1. the input's metadata, where it declares one (:data:`AZIMUTH_METADATA`);
2. the sensing time and place, by NOAA's solar position equations (:func:`solar_position`,
   within about a degree): the time from the metadata (:data:`TIME_METADATA`) or the file paths
   (Sentinel-2 names carry the UTC sensing time, ``20200823T054639``); the place from the grid's
   georeference (its centre), else from the MGRS tile the paths name (``T33UUP``: the middle
   of its UTM zone and latitude band, within 4 degrees of latitude and 3 of longitude, a few
   degrees of azimuth); a time that is no Sentinel-2 overpass there (:data:`OVERPASS_HOURS`)
   is refused;
3. else it is unknown, and the detector checks shadows by distance alone, as it did before.

It is then turned into the grid's frame (:func:`grid_azimuth`): the direction of true north at
the grid's centre, so UTM's grid convergence and rotated grids are allowed for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from .io.discovery import SENSING_TIME
from .io.grid import Grid

#: Metadata that declares the sun's mean azimuth (degrees from true north): sarclear's own (the
#: quality benchmark's scenes carry it), Google Earth Engine's Sentinel-2 export and the STAC
#: extension's.
AZIMUTH_METADATA = ("SUN_AZIMUTH", "MEAN_SOLAR_AZIMUTH_ANGLE", "MEAN_SUN_AZIMUTH", "MEAN_SUN_AZIMUTH_ANGLE",
                    "S2:MEAN_SOLAR_AZIMUTH")
#: Metadata that gives the sensing time (ISO 8601, UTC): GDAL's SENTINEL2 driver's and common exports'.
TIME_METADATA = ("SENSING_TIME", "DATATAKE_1_DATATAKE_SENSING_START", "PRODUCT_START_TIME", "DATETIME",
                 "ACQUISITION_DATE")
#: Local mean solar times (hours) at which Sentinel-2 images: its orbit crosses the equator at
#: 10:30 going south, and local times spread with latitude. A time outside is not a sensing time
#: (a product's processing time, say), and a sun computed from it would be wrong.
OVERPASS_HOURS = (7.5, 13.5)
#: How a declared azimuth is described in the log.
DECLARED = "as the input's metadata declares it"
_MGRS = re.compile(r"(?<![A-Z0-9])T(\d{2})([C-HJ-NP-X])[A-Z]{2}(?![A-Z0-9])")
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # MGRS latitude bands, 8 degrees each from 80 S (X: 72-84 N)


def solar_position(when: datetime, lat: float, lon: float) -> tuple[float, float]:
    """The sun's (azimuth, zenith) in degrees at UTC time ``when`` over (``lat``, ``lon``) in
    degrees: NOAA's general solar position equations (fractional year, equation of time,
    declination), within about a degree. Azimuth is clockwise from true north."""
    when = when.astimezone(timezone.utc) if when.tzinfo else when
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (when.timetuple().tm_yday - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    hour_angle = math.radians((hour * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    zenith = math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi)))
    return (azimuth + 180) % 360, zenith


def sensing_time(texts: Iterable[str]) -> datetime | None:
    """The first UTC sensing time (``yyyymmddThhmmss``) in ``texts`` (paths or names), else None."""
    for text in texts:
        m = SENSING_TIME.search(text)
        if m:
            try:
                return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
            except ValueError:
                continue
    return None


def mgrs_centre(texts: Iterable[str]) -> tuple[float, float] | None:
    """(lat, lon) of the middle of the UTM zone and latitude band of the first MGRS tile id
    (``T33UUP``) in ``texts``, else None."""
    for text in texts:
        m = _MGRS.search(text.upper())
        if m and 1 <= int(m.group(1)) <= 60:
            band = _BANDS.index(m.group(2))
            lat = 78.0 if m.group(2) == "X" else -80.0 + 8 * band + 4
            return lat, -180.0 + 6 * (int(m.group(1)) - 1) + 3
    return None


def declared_azimuth(metadata: Mapping[str, str]) -> float | None:
    """The sun azimuth that ``metadata`` declares (:data:`AZIMUTH_METADATA`), else None."""
    upper = {str(k).upper(): v for k, v in metadata.items()}
    for key in AZIMUTH_METADATA:
        try:
            value = float(upper[key])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value % 360
    return None


def declared_time(metadata: Mapping[str, str]) -> datetime | None:
    """The sensing time that ``metadata`` gives (:data:`TIME_METADATA`, ISO 8601), else None."""
    upper = {str(k).upper(): v for k, v in metadata.items()}
    for key in TIME_METADATA:
        text = str(upper.get(key, "")).strip().replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        if "T" in text or " " in text:  # a time of day, not a date alone
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None


def sun_azimuth(metadata: Mapping[str, str], texts: Iterable[str], lat_lon: tuple[float, float] | None,
                declared_how: str = DECLARED) -> tuple[float | None, str]:
    """The sun's azimuth (degrees from true north) and where it came from (for the log), or
    (None, why not), from an input's ``metadata``, its paths or names ``texts`` and the
    (lat, lon) of its centre where it is georeferenced (see the module docstring)."""
    texts = list(texts)
    declared = declared_azimuth(metadata)
    if declared is not None:
        return declared, declared_how
    when = declared_time(metadata) or sensing_time(texts)
    if when is None:
        return None, "no sensing time in the input's metadata or file names"
    place, where = lat_lon, "the grid's centre"
    if place is None:
        place, where = mgrs_centre(texts), "the MGRS tile in the file names"
    if place is None:
        return None, "the input has no georeference and its file names no MGRS tile"
    local = (when.hour + when.minute / 60 + place[1] / 15) % 24  # mean solar time, within a quarter hour
    if not OVERPASS_HOURS[0] <= local <= OVERPASS_HOURS[1]:
        return None, (f"{when:%Y-%m-%d %H:%M} UTC is {local:.1f} h local solar time over {where}, not a "
                      "Sentinel-2 overpass (about 10:30): read as a processing time, not the sensing time")
    azimuth, zenith = solar_position(when, *place)
    if zenith >= 90:
        return None, f"the sun was below the horizon at {when:%Y-%m-%d %H:%M} UTC over {where}"
    return azimuth, f"computed for {when:%Y-%m-%d %H:%M} UTC over {where}"


def grid_azimuth(azimuth: float, north: float) -> float:
    """An azimuth from true north turned into a grid's frame (clockwise from the grid's up),
    where true north points ``north`` degrees clockwise from up (:func:`grid_north`)."""
    return (azimuth + north) % 360


def grid_north(geotransform, srs, width: int, height: int) -> tuple[float, tuple[float, float] | None]:
    """(Direction of true north in degrees clockwise from the grid's up, (lat, lon) of the
    grid's centre) for a GDAL geotransform and ``osgeo.osr`` SRS (None: not georeferenced, so
    taken as north up with no place)."""
    if srs is None:
        return 0.0, None
    from osgeo import osr

    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    for s in (srs, wgs84):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_geo, to_map = osr.CoordinateTransformation(srs, wgs84), osr.CoordinateTransformation(wgs84, srs)
    gt = geotransform
    col, row = width / 2, height / 2
    x, y = gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]
    try:
        lon, lat = to_geo.TransformPoint(x, y)[:2]
        x2, y2 = to_map.TransformPoint(lon, min(lat + 0.01, 89.99))[:2]
    except RuntimeError:  # a CRS that PROJ cannot take to latitude and longitude here
        return 0.0, None
    det = gt[1] * gt[5] - gt[2] * gt[4]
    dcol = (gt[5] * (x2 - x) - gt[2] * (y2 - y)) / det  # map offset -> pixel offset
    drow = (-gt[4] * (x2 - x) + gt[1] * (y2 - y)) / det
    return math.degrees(math.atan2(dcol, -drow)) % 360, (lat, lon)


def stack_sun(stack, given: float | None = None) -> tuple[float | None, str]:
    """The sun's azimuth in the grid of an optical :class:`sarclear.io.stack.RasterStack`
    (degrees clockwise from the grid's up), or None, and a line for the log that says where it
    came from or why it is unknown (:func:`grid_sun`): ``given`` (degrees from true north, the
    caller's), else from each band file's metadata and path."""
    from .product_level import opened_or_none

    grid = stack.grid
    if given is not None:
        return grid_sun([], grid.geotransform if grid.georeferenced else None, grid.crs_wkt, grid.width,
                        grid.height, {"SUN_AZIMUTH": str(given)}, "as given")
    metadata: dict[str, str] = {}
    for path in dict.fromkeys(b.path for b in stack.bands):
        ds = opened_or_none(path)
        if ds is not None:
            for domain in ("", *(d for d in (ds.GetMetadataDomainList() or []) if d.startswith("SENTINEL"))):
                metadata.update({k: v for k, v in (ds.GetMetadata(domain) or {}).items() if k not in metadata})
    return grid_sun([b.path for b in stack.bands], grid.geotransform if grid.georeferenced else None,
                    grid.crs_wkt, grid.width, grid.height, metadata)


def grid_sun(texts: Iterable[str], geotransform, crs_wkt: str, width: int, height: int,
             metadata: Mapping[str, str] | None = None, declared: str = DECLARED,
             ) -> tuple[float | None, str]:
    """The sun's azimuth in a grid (degrees clockwise from its up; ``geotransform`` None: not
    georeferenced, taken as north up), or None, and a line for the log, from the image's paths or
    names ``texts`` and ``metadata`` (:func:`sun_azimuth`; ``declared`` says in the log where a
    declared azimuth came from)."""
    srs = Grid(width, height, tuple(geotransform), crs_wkt).srs() if geotransform is not None else None
    north, centre = grid_north(geotransform, srs, width, height)
    azimuth, how = sun_azimuth(metadata or {}, texts, centre, declared)
    if azimuth is None:
        return None, f"sun position unknown ({how}): cloud shadows are checked by their distance to a cloud only"
    return grid_azimuth(azimuth, north), f"sun at azimuth {azimuth:.0f} degrees, {how}"
