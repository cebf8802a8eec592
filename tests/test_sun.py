"""Where the sun stood (sarclear.sun): NOAA's solar position against Sentinel-2's own metadata,
the sensing time and place read from names and grids, and the azimuth turned into the grid."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import SSL4EO_CLOUDY, write_raster
from osgeo import gdal, osr

from sarclear.masks import MaskOptions
from sarclear.sun import (
    declared_time,
    grid_north,
    grid_sun,
    mgrs_centre,
    overpass_hour,
    sensing_date,
    sensing_time,
    sidecar_metadata,
    solar_position,
    stack_sun,
    sun_azimuth,
)


def test_solar_position_matches_sentinel_2_metadata_and_the_solstice_noon():
    # SSL4EO-S12 0000200, 2020-08-23: the granule's metadata gives a mean solar azimuth of
    # 136.67 and zenith of 24.65 degrees over tile 43RCP (centre about 30.23 N, 73.47 E),
    # sensed at 06:00:42 UTC (its system:time_start)
    az, zen = solar_position(datetime(2020, 8, 23, 6, 0, 42, tzinfo=timezone.utc), 30.23, 73.47)
    assert abs(az - 136.67) < 1.5 and abs(zen - 24.65) < 1.0
    # Greenwich at noon on the June solstice: the sun due south, 90 - (90 - 51.48 + 23.44) high
    az, zen = solar_position(datetime(2017, 6, 21, 12, 0, tzinfo=timezone.utc), 51.48, 0.0)
    assert abs(az - 180) < 1.5 and abs(zen - 28.04) < 0.5


def test_time_and_place_come_from_sentinel_2_names():
    name = "BENv2/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_38_88"
    assert sensing_time([name]) == datetime(2017, 6, 13, 10, 10, 31, tzinfo=timezone.utc)
    assert mgrs_centre([name]) == (52.0, 15.0)            # zone 33 (12-18 E), band U (48-56 N)
    assert mgrs_centre(["T43RCP_20200823T054639_B02.jp2"]) == (28.0, 75.0)
    assert sensing_time(["ms.tif"]) is None and mgrs_centre(["TOTAL.tif", "ms.tif"]) is None
    az, how = sun_azimuth({}, [name], None)
    assert 145 < az < 170 and "MGRS tile" in how        # the morning sun over central Europe
    assert sun_azimuth({"SUN_AZIMUTH": "123.5"}, [name], None) == (123.5, "as the input's metadata declares it")
    assert sun_azimuth({"SENSING_TIME": "2017-06-13T10:10:31.024Z"}, ["ms.tif"], (52.0, 15.0))[0] == pytest.approx(az)
    assert sun_azimuth({}, ["ms.tif"], (52.0, 15.0)) == (None, "no sensing time or date in the input's metadata "
                                                               "or file names")
    assert sun_azimuth({}, ["S2A_20170613T101031.tif"], None)[0] is None
    night = sun_azimuth({}, ["S2A_20170613T221031_T33UUP.tif"], None)
    assert night[0] is None and "not a Sentinel-2 overpass" in night[1]
    # a product name whose first time is its processing time (15:34 UTC, 16:34 local) is no sun to go by
    late = sun_azimuth({}, ["S2A_MSIL2A_20220706T153419_T33NZA.tif"], None)
    assert late[0] is None and "16.6 h local solar time" in late[1]
    # every real sample's sensing time passes: SSL4EO (Punjab), Major TOM (Central Africa), BENv2 (Europe)
    for real in ("20200823T054639_20200823T055618_T43RCP", "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA",
                 "S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE", name):
        assert sun_azimuth({}, [real], None)[0] is not None
    # near the track's turn the overpass comes later: 14:27 local solar time at 80 N is a sensing time
    arctic = sun_azimuth({}, ["S2A_MSIL1C_20200715T132700_T33XWG"], (80.0, 15.0))
    assert 205 < arctic[0] < 235 and "computed for 2020-07-15 13:27 UTC" in arctic[1]  # the early-afternoon sun
    mid = sun_azimuth({}, ["S2A_MSIL1C_20200715T132700_T33UUP"], (52.0, 15.0))  # the same time at 52 N is not
    assert mid[0] is None and "(about 11.2 h)" in mid[1]


def test_true_north_in_the_grid_allows_for_utm_convergence_and_flips():
    utm33 = osr.SpatialReference()
    utm33.ImportFromEPSG(32633)
    north, (_, lon) = grid_north((500000, 10, 0, 5000000, 0, -10), utm33, 100, 100)
    assert min(north, 360 - north) < 0.01 and abs(lon - 15.0) < 0.01   # on the central meridian
    north, (_, lon) = grid_north((700000, 10, 0, 5000000, 0, -10), utm33, 100, 100)
    assert 357.5 < north < 358.8 and lon > 17                            # east of it: grid north is east of true
    south_up, _ = grid_north((700000, 10, 0, 4999000, 0, 10), utm33, 100, 100)  # rows run north
    assert abs(south_up - (180 - north) % 360) < 0.5                     # mirrored top to bottom
    assert grid_north(None, None, 100, 100) == (0.0, None)


def test_a_decloud_mask_checks_shadows_against_the_sun_of_the_file(tmp_path, caplog):
    """A Sentinel-2 stack named as its product is (time and tile) has its sun worked out and
    recorded in the mask; renamed without them, the sun is unknown and the log says so."""
    from sarclear.mask_raster import detect_raster
    from sarclear.raster import detect_optical_scaling, open_optical

    if not SSL4EO_CLOUDY.is_dir():
        pytest.skip("../shared/data not present")
    x = np.full((4, 90, 90), 800, np.uint16)
    x[:, 20:40, 20:40] = 6000
    for name, expect in (("T43RCP_20200823T054639_B.tif", True), ("plain.tif", False)):
        path = write_raster(tmp_path / name, x, like=SSL4EO_CLOUDY / "B2.tif", names=["B2", "B3", "B4", "B8"])
        stack = open_optical(path, ["B2", "B3", "B4", "B8"])
        with caplog.at_level("INFO", logger="sarclear"):
            caplog.clear()
            detect_raster(stack, detect_optical_scaling(stack), tmp_path / f"{name}_mask.tif",
                          options=MaskOptions(method="rules"), product_level="l1c")
        meta = gdal.Open(str(tmp_path / f"{name}_mask.tif")).GetMetadata()
        if expect:
            assert 125 < float(meta["SUN_AZIMUTH_GRID"]) < 140
            assert any("computed for 2020-08-23 05:46 UTC over the grid's centre" in r.message for r in caplog.records)
        else:
            assert "SUN_AZIMUTH_GRID" not in meta
            assert any("sun position unknown" in r.message for r in caplog.records)


def test_grid_sun_of_a_scene_without_georeference_uses_its_name():
    az, how = grid_sun(["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_38_88"], None, "", 120, 120)
    assert 145 < az < 170 and "MGRS" in how
    assert grid_sun(["chip_38_88"], None, "", 120, 120)[0] is None


def _band_folder(folder, sidecar=None, gdal_meta=None):
    """An SSL4EO-S12-like export: one GeoTIFF per band (WGS 84, over 30.46 N 73.31 E, named with
    no time or tile) and, as given, a metadata.json beside them (a dict is written as JSON, a
    str as it is) and GDAL metadata in B2.tif; the stack of its four 10 m bands."""
    from sarclear.io.opening import open_optical

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, band in enumerate(("B2", "B3", "B4", "B8")):
        write_raster(folder / f"{band}.tif", rng.integers(500 + 300 * i, 700 + 300 * i, (1, 32, 32)),
                     gt=(73.30, 0.0001, 0, 30.47, 0, -0.0001), srs="EPSG:4326")
    if gdal_meta:
        ds = gdal.Open(str(folder / "B2.tif"), gdal.GA_Update)
        ds.SetMetadata(gdal_meta)
        ds = None
    if sidecar is not None:
        (folder / "metadata.json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    return open_optical(folder, ["B2", "B3", "B4", "B8"])


def test_an_earth_engine_metadata_json_beside_the_bands_gives_the_sun_under_the_files_own(tmp_path, caplog):
    """SSL4EO-S12's exports keep the sun and time in metadata.json, not in the GeoTIFFs: its
    azimuth is used and named as its source; the band files' own metadata wins over it; a
    sidecar with a time alone gives the computed sun; a malformed one is named and ignored."""
    # SSL4EO-S12 0000200, 2020-08-13: the granule's azimuth, sensing time (ms) and tile
    real = {"MEAN_SOLAR_AZIMUTH_ANGLE": 130.416728948948, "system:time_start": 1597298442610, "MGRS_TILE": "43RCP",
            "system:footprint": {"type": "LinearRing"}, "system:band_names": ["B1"], "flag": True}
    az, how = stack_sun(_band_folder(tmp_path / "export", real))
    assert az == pytest.approx(130.4167, abs=1e-3)              # WGS 84: the grid's up is true north
    assert how == "sun at azimuth 130 degrees, as the input's metadata.json declares it"
    assert sidecar_metadata([str(tmp_path / "export" / "B2.tif")]) == {
        "MEAN_SOLAR_AZIMUTH_ANGLE": "130.416728948948", "system:time_start": "1597298442610", "MGRS_TILE": "43RCP"}
    # the GeoTIFF's own declaration wins, worded as the metadata's, under the same key or another
    for name, key in (("same", "MEAN_SOLAR_AZIMUTH_ANGLE"), ("other", "MEAN_SUN_AZIMUTH")):
        az, how = stack_sun(_band_folder(tmp_path / name, real, {key: "200.5"}))
        assert az == pytest.approx(200.5) and how.endswith("as the input's metadata declares it")
    # a time alone (milliseconds since 1970): the sun is computed at 06:00:42 UTC over the grid
    time_only = {k: v for k, v in real.items() if k != "MEAN_SOLAR_AZIMUTH_ANGLE"}
    az, how = stack_sun(_band_folder(tmp_path / "time", time_only))
    assert abs(az - 130.42) < 1.5 and "computed for 2020-08-13 06:00 UTC over the grid's centre" in how
    # a sidecar that is no JSON object, or no JSON at all, is named in a warning and left aside
    for name, text in (("broken", '{"MEAN_SOLAR_AZIMUTH_ANGLE": 130.4,'), ("list", "[130.4]")):
        with caplog.at_level("WARNING", logger="sarclear"):
            caplog.clear()
            az, how = stack_sun(_band_folder(tmp_path / name, text))
        assert az is None and "no sensing time or date" in how
        assert any(str(tmp_path / name / "metadata.json") in r.getMessage() for r in caplog.records)
    # too large to be an export's properties: not read
    big = dict(real, padding="x" * (1 << 20))
    assert stack_sun(_band_folder(tmp_path / "big", big))[0] is None


def test_earth_engine_time_start_is_a_sensing_time_in_milliseconds():
    assert declared_time({"system:time_start": "1597298442610"}) == datetime(2020, 8, 13, 6, 0, 42, 610000,
                                                                             tzinfo=timezone.utc)
    # an ISO time wins; a value that is no number is none
    assert declared_time({"system:time_start": "1597298442610", "SENSING_TIME": "2020-08-13T05:46:39Z"}).minute == 46
    assert declared_time({"system:time_start": "nan"}) is None and declared_time({"system:time_start": "x"}) is None


def test_a_date_alone_gives_the_sun_at_sentinel_2s_overpass_where_that_fixes_it(monkeypatch):
    """SEN12MS-CR-TS names the day only: the sun is taken at Sentinel-2's overpass there, from
    its orbit (10:30 at the equator, later to the north), unless the times the image may have
    been taken leave its azimuth more than 20 degrees uncertain."""
    import sarclear.sun as sun

    name = "s2_ROIs1970_21_ImgNo_17_2018-07-30_patch_236.tif"
    assert sensing_date([name]) == date(2018, 7, 30)
    assert sensing_date(["/data/2023-01-05/s2_20180730_patch.tif", "s2_12018-07-30.tif", "s2_2018-13-30.tif",
                         "s2_2014-07-30.tif"]) is None     # folders, compact or unbounded dates, before Sentinel-2
    # SSL4EO-S12's three granules over 30.46 N 73.31 E, sensed at 10:54 local solar time, declare
    # these azimuths: the day alone gives each within 2.5 degrees (10:30 would be 8-10 off) and
    # within the spread it states
    for day, declared in (("2020-06-04", 114.74), ("2020-08-13", 130.42), ("2020-08-23", 136.67)):
        az, how = sun_azimuth({}, [f"chip_{day}.tif"], (30.464, 73.306))
        within = float(re.search(r"within (\d+) degrees", how).group(1))
        assert abs(az - declared) < 2.5 <= within and f"estimated for {day} at the overpass (10:50" in how
    assert abs(overpass_hour(30.464) - 10.90) < 0.1 and overpass_hour(0) == pytest.approx(10.5)
    assert overpass_hour(52) > 11.1 and overpass_hour(-30) < 10.3
    # Morocco, 31 N 8 W: the azimuth at the overpass, 10:51 local (11:23 UTC), within what it states
    az, how = sun_azimuth({"ACQUISITION_DATE": "2018-07-30"}, ["ms.tif"], (31.0, -8.0))
    at = datetime(2018, 7, 30, tzinfo=timezone.utc) + timedelta(hours=overpass_hour(31.0) + 8 / 15)
    assert az == pytest.approx(solar_position(at, 31.0, -8.0)[0]) and 110 < az < 130
    within = float(re.search(r"within (\d+) degrees", how).group(1))
    for minutes in (-10, 10):   # a quarter hour across the swath: still within what it states
        assert abs(solar_position(at + timedelta(minutes=minutes), 31.0, -8.0)[0] - az) <= within + 0.5
    # Svalbard (78.2 N), midsummer: near the track's turn the overpass spreads over 40 minutes and
    # more, in which the sun swings over 20 degrees: unknown; under a tighter limit, Morocco too
    az, how = sun_azimuth({}, ["s2_2018-07-30.tif"], (78.2, 15.6))
    assert az is None and "the date 2018-07-30 alone does not fix it" in how
    assert float(re.search(r"moves ([\d.]+) degrees", how).group(1)) > 20
    monkeypatch.setattr(sun, "MAX_DATE_SPREAD", 5.0)
    assert sun_azimuth({}, [name], (31.0, -8.0))[0] is None
    monkeypatch.undo()
    # the polar night, and beyond the track's reach: no sun to estimate; no place: none either
    assert "below the horizon" in sun_azimuth({}, ["s2_2018-12-21.tif"], (70.0, 20.0))[1]
    assert sun_azimuth({}, ["s2_2018-07-30.tif"], (82.5, 20.0))[0] is None
    assert sun_azimuth({}, [name], None) == (None, "the input has no georeference and its file names no MGRS tile")
