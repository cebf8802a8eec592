"""Readers for the real data folders (sarclear.datasets): bands, reflectance, offsets, SAR in
dB and the split by place, on the committed samples and on ../shared/data (skipped if absent)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES
from osgeo import gdal

from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.datasets import PINNED_SPLITS, load_scenes, product_scaling, split_of, split_summary
from sarclear.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN = SHARED / "train"
needs_shared = pytest.mark.skipif(not TRAIN.is_dir(), reason="../shared/data/train is absent")


def test_split_is_a_function_of_the_place_name():
    places = [f"somewhere:{i}" for i in range(2000)]
    splits = [split_of(p) for p in places]
    assert splits == [split_of(p) for p in places]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert share["test"] == pytest.approx(0.2, abs=0.03) and share["val"] == pytest.approx(0.1, abs=0.03)
    for place, split in PINNED_SPLITS.items():
        assert split_of(place) == split


def test_offset_rule_follows_the_processing_baseline():
    dn = np.array([1000.0, 3606.0])
    assert product_scaling("S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419").offset == -1000
    assert product_scaling("S2A_MSIL2A_20180805T110621_N0206_R137_T30STF_20180805T133536").offset == 0
    assert product_scaling("S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543").offset == 0
    assert product_scaling(baseline="05.09").offset == -1000 and product_scaling(baseline="02.09").offset == 0
    np.testing.assert_allclose(product_scaling(baseline="04.00").to_reflectance(dn), [0.0, 0.2606])


def test_committed_samples_read_with_sar_in_db_and_the_demo_split():
    scenes = load_scenes(SAMPLES, include_cloudy=True)
    by_name = {s.name: s for s in scenes}
    north = by_name["ssl4eo-s12/0000200/20200604T054639_20200604T054831_T43RCP/north"]
    south = by_name["ssl4eo-s12/0000200/20200604T054639_20200604T054831_T43RCP/south"]
    assert north.ms.shape == (10, 168, 264) and south.ms.shape == (10, 96, 264)
    assert (north.split, south.split) == ("train", "test")  # as in resources/samples/train_manifest.csv
    assert not north.cloudy and north.product_level == "l1c" and north.bands == S2_PAPER10
    assert by_name["ssl4eo-s12/0000200/20200823T054639_20200823T055618_T43RCP/north"].cloudy
    # reflectance = DN / 10000 exactly (baseline 02.09: no offset), read from the band file itself
    b4 = gdal.Open(str(SAMPLES / "ssl4eo-s12/s2c/0000200/20200604T054639_20200604T054831_T43RCP/B4.tif"))
    np.testing.assert_allclose(north.ms[2], b4.ReadAsArray()[:168] / 10000.0, rtol=1e-6)
    for s in scenes:
        assert s.sar is not None and s.sar.shape == (2, *s.ms.shape[1:])
        vv, vh = np.nanmedian(s.sar[0]), np.nanmedian(s.sar[1])
        assert -30 < vv < 0 and -35 < vh < vv  # dB, cross-pol below co-pol
    assert by_name["sen12ms-cr/ROIs1868_summer_s2_cloudy_19_p30"].cloudy
    assert "sen12ms-cr/ROIs1868_summer_s2_cloudy_19_p30" not in {s.name for s in load_scenes(SAMPLES)}


def test_unknown_source_and_missing_folder_are_named(tmp_path):
    with pytest.raises(InputError, match="unknown data source"):
        load_scenes(SAMPLES, sources=["sentinel3"])
    with pytest.raises(InputError, match=r"DATA\.md"):
        load_scenes(tmp_path / "nothing")


@pytest.fixture(scope="module")
def shared_scenes():
    return load_scenes(SHARED, include_cloudy=True)


@needs_shared
def test_every_train_folder_is_read_in_reflectance(shared_scenes):
    by_source = defaultdict(list)
    for s in shared_scenes:
        by_source[s.source].append(s)
    expected = {"benv1": 30, "benv2": 23, "bigearthnet-example": 6, "virginia": 4, "majortom": 16,
                "sen12ms-cr-ts": 2, "eurosat": 3}
    assert {k: len(by_source[k]) for k in expected} == expected
    for s in shared_scenes:
        assert s.ms.dtype == np.float32 and s.ms.shape[0] == 10 and s.bands == S2_PAPER10
        b4, b8 = np.nanmedian(s.ms[2]), np.nanpercentile(s.ms[6], 99)
        assert 0.0 <= b4 < 0.45 and 0.0 < b8 < 1.3, s.name  # reflectance, not DN
        if s.sar is not None:
            assert s.sar.dtype == np.float32 and -32 < np.nanmedian(s.sar[0]) < 0, s.name
    assert all(s.sar is not None for k in ("benv1", "benv2", "bigearthnet-example") for s in by_source[k])
    assert all(s.sar is None for k in ("virginia", "majortom", "eurosat") for s in by_source[k])
    assert {s.ms.shape[1:] for s in by_source["majortom"]} == {(534, 534)}  # 1068 cells in quadrants
    assert sum(s.cloudy for s in by_source["benv2"]) == 3  # the three real cloud/shadow pairs


@needs_shared
def test_baseline_04_cell_has_its_offset_removed(shared_scenes):
    cell = [s for s in shared_scenes if s.place == "majortom:0U_199R:q00"]
    assert len(cell) == 1 and cell[0].cloudy and cell[0].product_level == "l2a"
    b4_file = next(TRAIN.glob("s2-only/majortom/0U/0U_199R/*_N0400_*/B04.tif"))
    dn = gdal.Open(str(b4_file)).ReadAsArray()[:534, :534].astype(np.float64)
    np.testing.assert_allclose(cell[0].ms[2], (dn - 1000) / 10000, atol=1e-6)
    clear = next(s for s in shared_scenes if s.place == "majortom:199U_1099R:q00")  # N9999: no offset
    dn = gdal.Open(str(next(TRAIN.glob("s2-only/majortom/199U/*/*/B04.tif")))).ReadAsArray()[:534, :534]
    np.testing.assert_allclose(clear.ms[2], dn / 10000, atol=1e-6)


@needs_shared
def test_split_is_disjoint_by_place_and_holds_every_kind(shared_scenes):
    split_by_place = defaultdict(set)
    for s in shared_scenes:
        split_by_place[s.place].add(s.split)
    assert all(len(v) == 1 for v in split_by_place.values())
    summary = split_summary([s for s in shared_scenes if not s.cloudy])
    test = summary["test"]
    assert {"benv1", "benv2", "virginia", "majortom", "ssl4eo-s12"} <= set(test["sources"])
    assert test["pixels_with_sar"] > 150_000 and len(test["places"]) >= 8
    assert summary["train"]["pixels"] > 2 * test["pixels"]
    assert not set(summary["train"]["places"]) & set(test["places"])


@needs_shared
def test_all13_skips_l2a_and_keeps_b10_of_l1c():
    scenes = load_scenes(TRAIN, bands=S2_BANDS, sources=["virginia", "majortom", "eurosat"])
    assert {s.source for s in scenes} == {"virginia", "eurosat"}
    assert all(s.ms.shape[0] == 13 for s in scenes)


@needs_shared
def test_sen1floods11_chip_is_a_held_out_l1c_scene_with_sar_on_its_grid():
    floods = SHARED / "real" / "sen1floods11"
    scenes = load_scenes(floods, sources=["sen1floods11"])
    assert [s.name for s in scenes] == ["sen1floods11/Spain_7370579"]
    (s,) = scenes
    assert (s.place, s.split, s.product_level) == ("sen1floods11:Spain_7370579", "test", "l1c")
    dn = gdal.Open(str(floods / "Spain_7370579_S2Hand.tif")).ReadAsArray()[1].astype(np.float64)
    np.testing.assert_allclose(s.ms[0], np.where(dn == 0, np.nan, dn / 10000), atol=1e-6)  # B2, no offset (2019)
    vv = gdal.Open(str(floods / "Spain_7370579_S1Hand.tif")).ReadAsArray()[0]
    np.testing.assert_allclose(s.sar[0], vv, atol=1e-4)  # the same grid: no resampling
    assert s.sar.shape == (2, 512, 512) and -25 < np.nanmedian(s.sar[1]) < np.nanmedian(s.sar[0]) < 0


def test_a_source_without_a_licence_is_only_ever_measured_on():
    """Every chip of Sen1Floods11 (446 in the full set) lands in the test split, never in
    training, whatever its name hashes to."""
    chips = [f"sen1floods11:{country}_{i}" for country in ("Bolivia", "India", "Spain") for i in range(40)]
    assert {split_of(c) for c in chips} == {"test"}
    assert {split_of(c.replace("sen1floods11", "elsewhere")) for c in chips} == {"train", "val", "test"}
