"""Band definitions and the sensor <-> network scaling: defined once, exactly invertible."""

import numpy as np
import pytest
import torch

from sarclear import bands, scaling


def test_band_sets_are_the_papers_and_all_thirteen():
    assert bands.band_set("paper10") == ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    assert bands.band_set("all13") == bands.S2_BANDS and len(bands.S2_BANDS) == 13
    assert all(bands.S2_RESOLUTION_M[b] != 60 for b in bands.S2_PAPER10)
    with pytest.raises(ValueError, match="paper10"):
        bands.band_set("rgb")


@pytest.mark.parametrize("text, name", [
    ("B02", "B2"), ("b8a", "B8A"), ("S2A_MSIL2A_20170617T113321_4_55_B8A", "B8A"), ("B12.tif", "B12"),
    ("T43RCP_20200604T054639_B11_20m", "B11"), ("no band", None), ("B2 and B3", None), ("B13", None)])
def test_s2_names_are_recognised_in_descriptions_and_file_names(text, name):
    assert bands.normalise_s2_name(text) == name


@pytest.mark.parametrize("text, name", [("VV", "VV"), ("s1_vh.tif", "VH"), ("S1A_..._29UPU_4_55_VV", "VV"),
                                        ("HH", "HH"), ("VV+VH", None), ("VVV", None)])
def test_s1_names_are_recognised(text, name):
    assert bands.normalise_s1_name(text) == name


def test_default_orders_are_documented_band_counts():
    assert bands.default_s2_order(13) == bands.S2_BANDS
    assert bands.default_s2_order(12) == tuple(b for b in bands.S2_BANDS if b != "B10")
    assert bands.default_s2_order(10) == bands.S2_PAPER10
    assert bands.default_s2_order(4) is None


def test_s2_scaling_round_trip_is_exact_for_every_valid_digital_number():
    s = scaling.OpticalScaling()
    dn = np.arange(0, 10001, dtype=np.float64)
    x = s.to_network(dn)
    assert x.min() == -1.0 and x.max() == 1.0
    assert np.array_equal(np.rint(s.from_network(x)), dn)
    # float32, as the network sees it: still exact after rounding to the uint16 output
    x32 = s.to_network(dn.astype(np.float32))
    assert np.array_equal(np.rint(s.from_network(x32.astype(np.float64))), dn)


def test_s2_scaling_clips_outside_reflectance_range_and_honours_offset():
    s = scaling.OpticalScaling(offset=-1000)
    assert s.to_reflectance(np.array([1000.0]))[0] == 0.0
    assert s.to_network(np.array([0.0, 30000.0])).tolist() == [-1.0, 1.0]
    assert s.from_reflectance(s.to_reflectance(np.array([1234.0])))[0] == pytest.approx(1234.0)


def test_sar_scaling_round_trip_and_per_polarisation_ranges():
    s = scaling.SarScaling(("VV", "VH"))
    db = np.stack([np.linspace(-25, 0, 101), np.linspace(-32.5, 0, 101)])[:, :, None].astype(np.float32)
    x = s.to_network(db)
    assert x.min() == -1 and x.max() == 1
    np.testing.assert_allclose(s.from_network(x), db, atol=1e-5)
    clipped = s.to_network(np.array([[[-40.0]], [[5.0]]], np.float32))
    assert clipped.ravel().tolist() == [-1.0, 1.0]


def test_sar_scaling_is_the_same_on_numpy_and_torch():
    s = scaling.SarScaling(("VV", "VH"))
    db = (np.random.default_rng(0).random((2, 8, 8)) * -30).astype(np.float32)
    np.testing.assert_allclose(s.to_network(torch.from_numpy(db)).numpy(), s.to_network(db), rtol=1e-6)


def test_unknown_sar_channel_needs_a_declared_range():
    with pytest.raises(ValueError, match="no dB range for SAR channel"):
        scaling.SarScaling(("XX",))
    assert scaling.SarScaling(("XX",), {"XX": (-20.0, 5.0)}).to_network(np.array([[[5.0]]]))[0, 0, 0] == 1.0


def test_linear_power_and_db_are_inverse():
    p = np.array([1e-4, 0.01, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(scaling.db_to_linear(scaling.linear_to_db(p)), p, rtol=1e-5)
    assert scaling.linear_to_db(np.array([0.1], np.float32))[0] == pytest.approx(-10.0)


def test_processing_baseline_implies_the_offset():
    from sarclear.radiometry import baseline_offset

    assert [baseline_offset(b) for b in ("04.00", "N0400", "N0509", "02.09", "N0206")] == [-1000, -1000, -1000, 0, 0]
    assert baseline_offset("N9999") is None and baseline_offset(None) is None and baseline_offset("x") is None


def test_the_offset_rule_prefers_user_then_declared_then_data_type():
    from sarclear.radiometry import Declaration, decide_optical_scaling

    u16 = np.dtype("uint16")
    declared = Declaration("MTD_MSIL2A.xml", offset=-1000.0, dn_per_reflectance=10_000.0)
    d = decide_optical_scaling(u16, declared=declared)
    assert (d.rule, d.offset, d.source) == ("declared", -1000.0, "MTD_MSIL2A.xml")
    d = decide_optical_scaling(u16, offset=0.0, declared=declared)  # the user's explicit 0 wins
    assert (d.rule, d.offset) == ("user", 0.0)
    d = decide_optical_scaling(u16, scale=5000.0, declared=declared)  # scale given: declared offset kept
    assert (d.rule, d.offset, d.dn_per_reflectance) == ("user", -1000.0, 5000.0)
    d = decide_optical_scaling(u16, declared=Declaration("id", baseline="N0400"))
    assert (d.rule, d.offset, d.reason) == ("declared", -1000.0, "baseline N0400")
    d = decide_optical_scaling(np.dtype("float32"), first_band=np.array([0.01, 0.2, 0.9] * 50))
    assert (d.rule, d.dn_per_reflectance) == ("values", 1.0)


def test_offset_look_warns_only_when_almost_nothing_is_below_1000():
    from sarclear.radiometry import decide_optical_scaling, offset_look

    rng = np.random.default_rng(0)
    shifted = rng.uniform(1000, 4000, 10_000)  # an offset product: nothing below 1000
    plain = rng.uniform(100, 3000, 10_000)     # a dark-vegetation scene: a third below 1000
    assert offset_look(shifted, 0.0) and not offset_look(plain, 0.0) and not offset_look(shifted[:50], 0.0)
    warned = decide_optical_scaling(np.dtype("uint16"), visible=shifted)
    assert warned.offset == 0 and warned.suggested_offset == -1000 and "-1000" in warned.warning
    assert decide_optical_scaling(np.dtype("uint16"), visible=plain).warning is None
    assert decide_optical_scaling(np.dtype("uint16"), offset=0.0, visible=shifted).warning is None  # the user decided
