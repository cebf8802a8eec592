"""Where the sun stood when Sentinel-2 took an image, as an azimuth in the image's own grid.

A cloud's shadow falls on the far side of the cloud from the sun, so the cloud detector
(:mod:`sarclear.masks`) keeps a shadow only where a cloud lies toward the sun from it: dark
forest, water or soil beside a cloud but on its sunny side is ground, not shadow.

The azimuth (degrees clockwise from north, as Sentinel-2's metadata gives it) comes from, in order:

1. the input's metadata, where it declares one (:data:`AZIMUTH_METADATA`): the band files' GDAL
   metadata, else a ``metadata.json`` beside them (:func:`sidecar_metadata`: Google Earth Engine
   exports such as SSL4EO-S12 keep the image's properties there);
2. the sensing time and place, by NOAA's solar position equations (:func:`solar_position`,
   within about a degree): the time from the metadata (:data:`TIME_METADATA`, or Earth
   Engine's ``system:time_start`` in milliseconds, :data:`EPOCH_MS_METADATA`) or the file paths
   (Sentinel-2 names carry the UTC sensing time, ``20200823T054639``); the place from the grid's
   georeference (its centre), else from the MGRS tile the paths name (``T33UUP``: the middle
   of its UTM zone and latitude band, within 4 degrees of latitude and 3 of longitude, a few
   degrees of azimuth); a time that is no Sentinel-2 overpass there (more than
   :data:`OVERPASS_SLACK_H` from :func:`overpass_hour`) is refused;
3. the sensing date alone (an ISO ``2018-07-30`` in the names, as SEN12MS-CR-TS's, or the
   metadata) and the place: the sun at Sentinel-2's overpass there (:func:`overpass_sun`, from
   its orbit), unless the azimuth moves more than :data:`MAX_DATE_SPREAD` degrees across the
   times the image may have been taken;
4. else it is unknown, and the detector checks shadows by distance alone, as it did before.

It is then turned into the grid's frame (:func:`grid_azimuth`): the direction of true north at
the grid's centre, so UTM's grid convergence and rotated grids are allowed for.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone

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
#: Metadata that gives the sensing time in milliseconds since 1970 (UTC): Google Earth Engine's.
EPOCH_MS_METADATA = ("SYSTEM:TIME_START",)
#: How far (hours) a declared time's local mean solar time may lie from Sentinel-2's overpass
#: there (:func:`overpass_hour`: 10:30 at the equator, 10:10 at 30 S, 11:15 at 52 N, 13:30 at
#: 78 N) and still be read as the sensing time: generous, since a datatake's start time may
#: precede the image. A time farther off is not a sensing time (a product's processing time,
#: say), and a sun computed from it would be wrong.
OVERPASS_SLACK_H = 3.0
#: Sentinel-2's sun-synchronous orbit: inclination (degrees) and the local mean solar time (hours)
#: at which it crosses the equator going south.
S2_ORBIT = (98.62, 10.5)
#: How far from :func:`overpass_hour` an image's local solar time may lie (:func:`overpass_window`):
#: across half the 290 km swath (km), plus a margin (hours) for the model (it is within 4 minutes
#: of SSL4EO-S12's sensing times over 30 N).
SWATH_HALF_KM, OVERPASS_MARGIN_H = 145.0, 0.1
#: The most (degrees) the sun's azimuth may move across those times for the date alone to give it.
MAX_DATE_SPREAD = 20.0
#: The file beside the band files that holds an export's properties (Google Earth Engine's), and
#: the largest read.
SIDECAR, SIDECAR_MAX_BYTES = "metadata.json", 1 << 20
#: How a declared azimuth is described in the log: from the band files' metadata, from the sidecar.
DECLARED = "as the input's metadata declares it"
DECLARED_SIDECAR = f"as the input's {SIDECAR} declares it"
_ISO_DATE = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")
_S2_START = date(2015, 6, 23)  # Sentinel-2A's launch: an earlier date names something else
_MGRS = re.compile(r"(?<![A-Z0-9])T(\d{2})([C-HJ-NP-X])[A-Z]{2}(?![A-Z0-9])")
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # MGRS latitude bands, 8 degrees each from 80 S (X: 72-84 N)

log = logging.getLogger(__name__)


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


def sensing_date(texts: Iterable[str]) -> date | None:
    """The first ISO date (``2018-07-30``, bounded by non-digits) in the file names of ``texts``
    (paths or names; a folder's date may be a download's), else None. A bare ``20180730`` is too
    ambiguous to take."""
    for text in texts:
        for m in _ISO_DATE.finditer(re.split(r"[\\/]", text)[-1]):
            try:
                day = date.fromisoformat(m.group(1))
            except ValueError:
                continue
            if day >= _S2_START:
                return day
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


def _upper_keys(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` with its keys in upper case: exports spell them either way."""
    return {str(k).upper(): v for k, v in metadata.items()}


def declared_azimuth(metadata: Mapping[str, str]) -> float | None:
    """The sun azimuth that ``metadata`` declares (:data:`AZIMUTH_METADATA`), else None."""
    upper = _upper_keys(metadata)
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
    upper = _upper_keys(metadata)
    for key in TIME_METADATA:
        text = str(upper.get(key, "")).strip().replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        if "T" in text or " " in text:  # a time of day, not a date alone
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    for key in EPOCH_MS_METADATA:
        try:
            return datetime.fromtimestamp(float(upper[key]) / 1000, timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            continue
    return None


def overpass_hour(lat: float) -> float:
    """Sentinel-2's local mean solar time (hours) over latitude ``lat``, from its orbit
    (:data:`S2_ORBIT`): 10:30 at the equator, later to the north (the orbit leans west of the
    meridian), 10:50 at 30 N, 11:15 at 52 N."""
    inclination, node = math.radians(S2_ORBIT[0]), S2_ORBIT[1]
    # argument of latitude going south, and how far east of the node that point's right ascension lies
    u = math.pi - math.asin(max(-1.0, min(1.0, math.sin(math.radians(lat)) / math.sin(inclination))))
    east = math.degrees(math.atan2(math.cos(inclination) * math.sin(u), math.cos(u))) % 360 - 180
    return node + east / 15


def overpass_window(lat: float) -> float:
    """How far (hours) from :func:`overpass_hour` a Sentinel-2 image's local solar time over
    latitude ``lat`` may lie: its swath reaches across longitudes (6 minutes either side at 30 N,
    20 at 70 N) and, where the track leans west toward its turn at 81 N, across latitudes
    overpassed at other times (over an hour at 80 N); plus :data:`OVERPASS_MARGIN_H`."""
    cos_lat = max(math.cos(math.radians(lat)), 0.05)
    lean = min(1.0, abs(math.cos(math.radians(S2_ORBIT[0]))) / cos_lat)  # sine of the track's angle to north
    dlat, dlon = SWATH_HALF_KM / 111.32 * lean, SWATH_HALF_KM / (111.32 * cos_lat) * math.sqrt(1 - lean ** 2)
    return OVERPASS_MARGIN_H + dlon / 15 + abs(overpass_hour(lat + dlat) - overpass_hour(lat - dlat)) / 2


def _angle(a: float, b: float) -> float:
    """The angle (degrees, 0-180) between azimuths ``a`` and ``b``."""
    return abs((a - b + 180) % 360 - 180)


def overpass_sun(day: date, lat: float, lon: float, where: str) -> tuple[float | None, str]:
    """The sun's azimuth at Sentinel-2's overpass (:func:`overpass_hour`) on UTC ``day`` over
    (``lat``, ``lon``), and a line for the log; None where the sun is down or its azimuth moves
    more than :data:`MAX_DATE_SPREAD` degrees across the times the image may have been taken
    (:func:`overpass_window`; a sun near the zenith swings so): the date alone does not fix it."""
    if abs(lat) > 180 - S2_ORBIT[0]:
        return None, (f"{where} lies beyond {180 - S2_ORBIT[0]:.1f} degrees of latitude, where Sentinel-2's "
                      "track turns: a date alone does not fix the time of its overpass")
    hour, half = overpass_hour(lat), overpass_window(lat)
    when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=(hour - lon / 15) % 24)
    azimuth, zenith = solar_position(when, lat, lon)
    clock = "{:02d}:{:02d}".format(*divmod(round(hour * 60), 60))
    if zenith >= 90:
        return None, f"the sun was below the horizon at the overpass on {day} ({clock} local solar time) over {where}"
    ends = [solar_position(when + timedelta(hours=h), lat, lon)[0] for h in (-half, half)]
    if _angle(*ends) > MAX_DATE_SPREAD:
        return None, (f"the date {day} alone does not fix it: over {where} its azimuth moves {_angle(*ends):.1f} "
                      f"degrees within {half * 60:.0f} minutes of the overpass ({clock} local solar time), more "
                      f"than {MAX_DATE_SPREAD:.0f}")
    within = max(_angle(azimuth, e) for e in ends)
    return azimuth, (f"estimated for {day} at the overpass ({clock} local solar time) over {where}, "
                     f"within {within:.0f} degrees")


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
    day = None
    if when is None:
        upper = _upper_keys(metadata)
        day = sensing_date([*(str(upper.get(k, "")) for k in TIME_METADATA), *texts])
        if day is None:
            return None, "no sensing time or date in the input's metadata or file names"
    place, where = lat_lon, "the grid's centre"
    if place is None:
        place, where = mgrs_centre(texts), "the MGRS tile in the file names"
    if place is None:
        return None, "the input has no georeference and its file names no MGRS tile"
    if when is None:
        return overpass_sun(day, *place, where)
    local = (when.hour + when.minute / 60 + place[1] / 15) % 24  # mean solar time, within a quarter hour
    expected = overpass_hour(place[0])
    if _angle(15 * local, 15 * expected) > 15 * OVERPASS_SLACK_H:  # hours apart on the clock, as degrees
        return None, (f"{when:%Y-%m-%d %H:%M} UTC is {local:.1f} h local solar time over {where}, not a "
                      f"Sentinel-2 overpass there (about {expected:.1f} h): read as a processing time, not the "
                      "sensing time")
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


def sidecar_metadata(paths: Iterable[str]) -> dict[str, str]:
    """The scalar properties (as strings) of the :data:`SIDECAR` file in the folders of
    ``paths``, the first folder's winning: Google Earth Engine exports (SSL4EO-S12) keep an
    image's sun, time and tile there, not in the GeoTIFFs. A file that cannot be read or holds no
    JSON object is skipped with a warning: it only adds to what the name and grid give."""
    out: dict[str, str] = {}
    for folder in dict.fromkeys(os.path.dirname(os.fspath(p)) for p in paths):
        path = os.path.join(folder, SIDECAR)
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size > SIDECAR_MAX_BYTES:
                continue
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, RecursionError) as e:
            log.warning("%s: not read for the sun's position (%s)", path, e)
            continue
        if not isinstance(data, dict):
            log.warning("%s: not read for the sun's position (not a JSON object)", path)
            continue
        for k, v in data.items():
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                out.setdefault(str(k), str(v))
    return out


def _beneath(first: Mapping[str, str], then: Mapping[str, str]) -> dict[str, str]:
    """``first`` with ``then``'s entries beneath it: ``first`` wins for a key in any case, and for
    the azimuth or the time as a whole where it declares one."""
    hidden = {str(k).upper() for k in first}
    if declared_azimuth(first) is not None:
        hidden.update(AZIMUTH_METADATA)
    if declared_time(first) is not None:
        hidden.update((*TIME_METADATA, *EPOCH_MS_METADATA))
    return {**{k: v for k, v in then.items() if str(k).upper() not in hidden}, **first}


def stack_sun(stack, given: float | None = None) -> tuple[float | None, str]:
    """The sun's azimuth in the grid of an optical :class:`sarclear.io.stack.RasterStack`
    (degrees clockwise from the grid's up), or None, and a line for the log that says where it
    came from or why it is unknown (:func:`grid_sun`): ``given`` (degrees from true north, the
    caller's), else from each band file's metadata, the :data:`SIDECAR` beside them
    (:func:`sidecar_metadata`; the files' metadata wins) and their paths."""
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
    paths = [b.path for b in stack.bands]
    sidecar = sidecar_metadata(paths)
    from_sidecar = declared_azimuth(metadata) is None and declared_azimuth(sidecar) is not None
    declared = DECLARED_SIDECAR if from_sidecar else DECLARED
    return grid_sun(paths, grid.geotransform if grid.georeferenced else None, grid.crs_wkt, grid.width,
                    grid.height, _beneath(metadata, sidecar), declared)


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
