"""De-hazing a scene that a veil hides whole (sarclear.dehaze): real Sentinel-2 farmland
(SSL4EO-S12, Punjab, L1C) under synthetic haze and thin cloud, with a thick cloud among it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SSL4EO_CLEAR

from sarclear.bands import S2_PAPER10, S2_WAVELENGTH_NM
from sarclear.clouds import CloudConfig, add_clouds
from sarclear.dehaze import DARK_REFERENCE, dehaze_veil, local_dark, veil_excess
from sarclear.fill import haze_excess
from sarclear.io import open_optical
from sarclear.tiling import Window


@pytest.fixture(scope="module")
def ground() -> torch.Tensor:
    stack = open_optical(SSL4EO_CLEAR, S2_PAPER10)
    raw, ok = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    assert ok.all()
    return torch.from_numpy(raw.astype(np.float32) / 10_000)[None]


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean().sqrt())


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a[0].numpy(), b[0].numpy())]))


def test_the_table_holds_blue_and_red_at_both_levels_and_l1c_is_brighter():
    for band in ("B2", "B4"):
        assert DARK_REFERENCE["l1c"][band] > DARK_REFERENCE["l2a"][band] > 0  # the air's path radiance


def test_a_neutral_veil_lifts_every_band_alike_and_aerosol_haze_the_long_bands_less():
    ground = torch.full((1, len(S2_PAPER10), 64, 64), 0.2)  # dark blue and red at the L2A references
    ground[:, S2_PAPER10.index("B2")] = DARK_REFERENCE["l2a"]["B2"]
    ground[:, S2_PAPER10.index("B4")] = DARK_REFERENCE["l2a"]["B4"]
    neutral = veil_excess(ground + 0.1, S2_PAPER10, "l2a")
    assert torch.allclose(neutral, torch.full_like(neutral, 0.1), atol=1e-4)
    # red lifted (490 / 665) times as much as blue: the power is 1, NIR (842 nm) gets 490 / 842 of blue's
    lift = torch.tensor([0.1 * 490 / S2_WAVELENGTH_NM[b] for b in S2_PAPER10])[None, :, None, None]
    aerosol = veil_excess(ground + lift, S2_PAPER10, "l2a")
    nir = S2_PAPER10.index("B8")
    assert float(aerosol[0, nir].mean()) == pytest.approx(float(aerosol[0, 0].mean()) * 490 / 842, rel=0.05)


def test_clear_ground_loses_no_more_than_the_haze_its_dark_ground_shows(ground):
    excess = veil_excess(ground, S2_PAPER10, "l1c")
    # Punjab in June is hazy even on a clear day: its darkest blue stands about 0.025 above clear
    # L1C scenes' (sarclear.fill.haze_excess). That much may be taken off, in no band more.
    haze = haze_excess(ground[0].numpy(), S2_PAPER10, "l1c")
    assert 0.015 < haze < 0.035
    assert torch.all(excess >= 0) and float(excess.max()) < 2 * haze


@pytest.mark.parametrize("power", [1.0, 0.0], ids=["aerosol haze", "thin water cloud"])
def test_under_a_veil_the_ground_comes_closer_and_keeps_its_pattern(ground, power):
    veil = CloudConfig().fixed(coverage=0.0, haze=0.4, shadow=0.0, haze_power=power)
    cloudy = add_clouds(ground, S2_PAPER10, veil, seed=5).cloudy
    fill = cloudy.mean(dim=(2, 3), keepdim=True).expand_as(cloudy)  # the mean of the veiled pixels
    out, var = dehaze_veil(cloudy, fill, torch.zeros_like(fill), S2_PAPER10, "l1c")
    assert _rmse(out, ground) < 0.8 * _rmse(cloudy, ground)
    # its uncertainty (VEIL_SIGMA, fitted on other places): the 90 % interval holds most errors
    inside = float(((out - ground).abs() <= 1.645 * var.sqrt()).float().mean())
    assert inside > 0.8
    assert float(var.mean().sqrt()) < 3 * _rmse(out, ground)  # and not so wide as to say nothing
    assert _corr(out, ground) >= _corr(cloudy, ground) - 0.01
    # every band is lifted by the veil, so none is made brighter, and none goes below 0
    assert torch.all(out <= cloudy + 1e-6) and torch.all(out >= 0)


def test_a_cloud_thicker_than_a_veil_keeps_the_fill(ground):
    cloudy = ground.clone()
    cloudy[..., 100:180, 100:180] = 0.6  # a thick cloud, larger than the dark-ground windows
    cloudy[..., 20:26, 200:206] = 0.5    # a small cumulus among fields
    fill = torch.full_like(cloudy, 0.123)
    out, var = dehaze_veil(cloudy, fill, torch.full_like(fill, 0.04), S2_PAPER10, "l1c")
    assert torch.allclose(out[..., 120:152, 120:152], fill[..., 120:152, 120:152])
    assert torch.allclose(var[..., 120:152, 120:152], torch.tensor(0.04))  # and the fill's variance
    assert torch.allclose(out[..., 21:25, 201:205], fill[..., 21:25, 201:205])
    # the fields around lose at most the scene's own haze (above): a veil, not a cloud
    change = cloudy[..., 200:, :100] - out[..., 200:, :100]
    assert torch.all(change >= -1e-6) and float(change.max()) < 0.03


def test_without_blue_or_a_known_level_the_fill_is_kept(ground):
    fill, var = torch.zeros_like(ground), torch.ones_like(ground)
    for bands, level in ((S2_PAPER10, "toa"), (tuple("B1" if b == "B2" else b for b in S2_PAPER10), "l1c")):
        out, out_var = dehaze_veil(ground, fill, var, bands, level)
        assert torch.equal(out, fill) and torch.equal(out_var, var)


def test_nodata_takes_no_part_in_the_dark_ground():
    x = torch.full((1, 1, 64, 64), 0.2)
    valid = torch.ones(1, 1, 64, 64, dtype=torch.bool)
    x[..., :8, :8], valid[..., :8, :8] = 0.0, False  # nodata written as 0 must not read as dark ground
    assert torch.allclose(local_dark(x, valid), torch.full_like(x, 0.2))
    none = local_dark(x, torch.zeros_like(valid))
    assert torch.isnan(none).all()
