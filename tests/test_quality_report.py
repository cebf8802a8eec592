"""The quality report's interval over places: a paired bootstrap that redraws whole places, so a
gain that one place carries shows a wide interval, and a gain every place shares a narrow one."""

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from quality_report import place_difference, place_interval
finally:
    sys.path.remove(str(ROOT / "benchmarks"))


def _doc(errors: dict[str, tuple[str, float, float, int]]) -> dict:
    """A benchmark JSON with scenes ``name -> (place, model RMSE, baseline RMSE, cloud pixels)``."""
    per_scene = []
    for name, (_, model, base, pixels) in errors.items():
        for method, rmse in (("model", model), ("normalized convolution", base)):
            per_scene.append({"group": "S1+S2", "scene": name, "kind": "thick", "method": method, "mask": "detected",
                              "rmse_cloud": rmse, "cloud_pixels": pixels})
    return {"scenes": [{"name": n, "place": p} for n, (p, *_) in errors.items()], "per_scene": per_scene}


def test_a_gain_every_place_shares_is_sure_and_one_that_one_place_carries_is_not():
    even = _doc({f"s{i}": (f"p{i}", 0.09, 0.10, 1000) for i in range(12)})
    r = place_interval(even, "S1+S2", "thick", "model", "normalized convolution", "detected")
    assert r["ratio"] == pytest.approx(0.9) and r["low"] == pytest.approx(0.9) and r["high"] == pytest.approx(0.9)
    assert (r["ahead"], r["scenes"], r["places"]) == (12, 12, 12)
    # one large place far ahead, the eleven others a little behind: pooled ahead, but not surely
    carried = _doc({"big": ("p0", 0.05, 0.10, 5000), **{f"s{i}": (f"p{i}", 0.105, 0.10, 1000) for i in range(1, 12)}})
    r = place_interval(carried, "S1+S2", "thick", "model", "normalized convolution", "detected")
    assert r["ratio"] < 0.92 and r["low"] < 0.85 and r["high"] > 1.0 and r["ahead"] == 1
    # two scenes of one place are drawn together: one place, and no spread between places
    one = _doc({"a": ("p", 0.05, 0.10, 1000), "b": ("p", 0.2, 0.10, 1000)})
    r = place_interval(one, "S1+S2", "thick", "model", "normalized convolution", "detected")
    assert r["places"] == 1 and r["low"] == pytest.approx(r["high"]) == pytest.approx(r["ratio"])
    assert place_interval(one, "S1+S2", "haze", "model", "normalized convolution", "detected") is None


def test_a_correlation_gain_is_given_with_its_spread_over_places():
    per_scene = []
    gains = {"a": 0.10, "b": 0.10, "c": -0.02, "d": -0.02}  # two places gain, two lose a little
    for name, gain in gains.items():
        per_scene += [{"group": "S1+S2", "scene": name, "kind": "haze", "method": "cloudy input", "mask": "-",
                       "corr": 0.7},
                      {"group": "S1+S2", "scene": name, "kind": "haze", "method": "model", "mask": "detected",
                       "corr": 0.7 + gain}]
    doc = {"scenes": [{"name": n, "place": n} for n in gains], "per_scene": per_scene}
    r = place_difference(doc, "S1+S2", "haze", "model", "detected")
    assert r["difference"] == pytest.approx(0.04) and r["low"] < 0 < r["high"] and (r["ahead"], r["scenes"]) == (2, 4)
    assert place_difference(doc, "S1+S2", "haze", "model", "true") is None
