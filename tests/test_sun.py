"""Where the sun stood (sarclear.sun): NOAA's solar position against Sentinel-2's own metadata,
the sensing time and place read from names and grids, and the azimuth turned into the grid."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import SSL4EO_CLOUDY, write_raster
from osgeo import gdal, osr

from sarclear.masks import MaskOptions
from sarclear.sun import grid_north, grid_sun, mgrs_centre, sensing_time, solar_position, sun_azimuth


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
    assert sun_azimuth({}, ["ms.tif"], (52.0, 15.0)) == (None, "no sensing time in the input's metadata or file names")
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
