"""Classical gap fills: the baselines and the prior of the mask-aware generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sarclear.fill import fill_sources, mean_fill, normalized_convolution


def _ramp_with_hole():
    yy, xx = torch.meshgrid(torch.arange(120.0), torch.arange(90.0), indexing="ij")
    x = torch.stack([xx / 90, yy / 120, 0.3 + 0 * xx])[None]  # (1, 3, 120, 90)
    clear = torch.ones(1, 1, 120, 90)
    clear[..., 20:100, 15:75] = 0
    cloudy = torch.where(clear.bool(), x, torch.full_like(x, float("nan")))
    return x, clear, cloudy


def test_fills_never_read_hidden_pixels_and_constant_bands_come_back_exactly():
    _x, clear, cloudy = _ramp_with_hole()
    for fill in (mean_fill(cloudy, clear), normalized_convolution(cloudy, clear)):
        assert torch.isfinite(fill).all()
        assert torch.allclose(fill[:, 2], torch.full_like(fill[:, 2], 0.3), atol=1e-6)


def test_normalized_convolution_beats_mean_fill_on_a_smooth_field():
    x, clear, cloudy = _ramp_with_hole()
    hidden = clear[0, 0] == 0
    err_nc = (normalized_convolution(cloudy, clear) - x)[0, :2][:, hidden].abs().mean()
    err_mean = (mean_fill(cloudy, clear) - x)[0, :2][:, hidden].abs().mean()
    assert err_nc < 0.6 * err_mean
    # on the clear pixels far from the hole it reproduces a smooth field closely
    assert (normalized_convolution(cloudy, clear) - x)[0, :2, :8, :].abs().max() < 0.02


def test_an_image_with_no_clear_pixel_gets_zero():
    x = torch.rand(2, 4, 16, 16)
    clear = torch.zeros(2, 1, 16, 16)
    clear[1] = 1
    nc, mf = normalized_convolution(x, clear), mean_fill(x, clear)
    assert (nc[0] == 0).all() and (mf[0] == 0).all()
    assert torch.allclose(mf[1], x[1].mean(dim=(1, 2), keepdim=True).expand(4, 16, 16), atol=1e-6)


def _field_with_halo():
    """A flat 0.1 field with a square cloud and a bright 2-px halo around it that the mask misses
    (real cloud edges: soft, with adjacency haze)."""
    x = torch.full((1, 3, 96, 96), 0.1)
    clear = torch.ones(1, 1, 96, 96)
    clear[..., 30:66, 30:66] = 0
    x[..., 28:68, 28:68] = 0.4  # halo (and the cloud inside it)
    return x, clear


def test_the_fill_buffer_keeps_a_missed_cloud_halo_out_of_the_fill():
    x, clear = _field_with_halo()
    hidden = clear[0, 0] == 0
    plain = normalized_convolution(x, clear)[0, :, hidden]
    buffered = normalized_convolution(x, fill_sources(clear, 2))[0, :, hidden]
    assert (plain - 0.1).abs().mean() > 0.05          # the halo leaks into the plain fill
    assert torch.allclose(buffered, torch.full_like(buffered, 0.1), atol=1e-5)  # not into the buffered one
    kept = fill_sources(clear, 2)[0, 0]
    assert kept[28, 40] == 0 and kept[29, 40] == 0 and kept[28, 28] == 0 and kept[27, 40] == 1 and kept[27, 27] == 1


def test_the_fill_buffer_never_leaves_an_image_without_a_source():
    clear = torch.zeros(2, 1, 12, 12)
    clear[0, 0, 5:7, 5:7] = 1      # one small clear island: the buffer would remove it all
    clear[1] = 1
    clear[1, 0, 0, 0] = 0
    kept = fill_sources(clear, 3)
    assert torch.equal(kept[0], clear[0])
    assert kept[1].sum() == 144 - 16 and kept[1, 0, 4, 4] == 1 and kept[1, 0, 3, 3] == 0
    assert torch.equal(fill_sources(clear, 0), clear)


def test_beyond_its_reach_the_fill_is_the_background_and_near_clear_pixels_it_is_local():
    x = torch.zeros(1, 2, 256, 256)
    x[..., :, :128] = 0.3
    clear = torch.zeros(1, 1, 256, 256)
    clear[..., :, :8] = 1  # clear strip on the left (value 0.3)
    back = torch.tensor([0.05, 0.07])
    near = normalized_convolution(x, clear, reach=16.0, background=back)
    assert torch.allclose(near[0, :, 100, 10], torch.tensor([0.3, 0.3]), atol=1e-3)
    assert torch.allclose(near[0, :, 100, 250], back, atol=1e-4)
    # without a reach, the whole hole takes the strip's value however far away
    assert torch.allclose(normalized_convolution(x, clear)[0, :, 100, 250], torch.tensor([0.3, 0.3]), atol=1e-3)


def test_the_classical_fill_reports_the_spread_of_what_it_averaged():
    from sarclear.fill import classical_fill, fill_variance

    _, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    striped = torch.where(xx % 2 == 0, 0.1, 0.3)  # field-scale detail: +-0.1 around 0.2
    x = torch.stack([torch.full_like(xx, 0.25), striped])[None].double()  # a uniform band and a varied one
    clear = torch.ones(1, 1, 96, 96, dtype=torch.float64)
    clear[..., 40:56, 40:56] = 0
    out = classical_fill(x, clear)
    hole = clear[0, 0] == 0
    assert torch.allclose(out.prior[0, 0][hole], torch.tensor(0.25, dtype=torch.float64))
    assert out.spread[0, 0][hole].abs().max() < 1e-6            # uniform sources: nothing to doubt
    assert torch.allclose(out.spread[0, 1][hole], torch.tensor(0.1, dtype=torch.float64), atol=0.01)
    var = fill_variance(out.spread, (2.0, 0.01))
    assert torch.allclose(var, (2.0 * out.spread) ** 2 + 0.01**2)
    assert var[0, 1, 48, 48] > var[0, 0, 48, 48]  # varied sources: less sure than uniform ones


def test_haze_over_the_clear_pixels_widens_the_fills_uncertainty():
    """A veil the mask did not catch lifts the scene's darkest ground above what clear scenes of
    its product level show (sarclear.fill.DARK_BLUE); the variance grows with that lift."""
    from sarclear.fill import DARK_BLUE, fill_variance, haze_excess

    rng = np.random.default_rng(0)
    ground = rng.uniform(0.0, 0.1, 10_000) + DARK_BLUE["l2a"]  # clear L2A ground: its 2nd percentile is about typical
    blue = ("B2",)
    assert haze_excess(ground[None], blue, "l2a") == pytest.approx(0.002, abs=0.001)
    hazy = 0.7 * ground + 0.3 * 0.35                              # a 30 % veil of 0.35 reflectance
    lift = float(np.percentile(hazy, 2)) - DARK_BLUE["l2a"]
    assert haze_excess(hazy[None], blue, "l2a") == pytest.approx(lift) and lift > 0.09
    # top-of-atmosphere (L1C) dark ground is bluer than surface reflectance: the same pixels are clear there
    assert haze_excess((ground + (DARK_BLUE["l1c"] - DARK_BLUE["l2a"]))[None], blue, "l1c") == pytest.approx(
        0.002, abs=0.001)
    assert haze_excess(np.full((1, 5), np.nan), blue, "l2a") == 0.0
    assert haze_excess(np.zeros((1, 0)), blue, "l1c") == 0.0
    assert haze_excess(np.r_[ground, np.full(100, np.nan)][None], blue, "l2a") == haze_excess(ground[None], blue, "l2a")
    assert haze_excess(hazy[None], ("B3",), "l2a") == 0.0  # no blue band: nothing to measure
    spread = torch.tensor([0.0, 0.02])
    assert torch.allclose(fill_variance(spread, (2.0, 0.01, 1.5), 0.04), (2.0 * spread) ** 2 + 0.01**2 + 0.06**2)
    assert torch.equal(fill_variance(spread, (2.0, 0.01), 0.04), fill_variance(spread, (2.0, 0.01, 0.0), 0.0))


def test_far_beyond_its_reach_the_spread_is_the_scenes():
    from sarclear.fill import classical_fill

    x = torch.rand(1, 2, 300, 300, generator=torch.Generator().manual_seed(0)).double()
    clear = torch.zeros(1, 1, 300, 300, dtype=torch.float64)
    clear[..., :20, :20] = 1
    background = torch.tensor([[0.2, 0.4], [0.05, 0.1]], dtype=torch.float64)  # (mean, std) per band
    out = classical_fill(x, clear, background)
    assert torch.allclose(out.prior[0, :, 290, 290], background[0], atol=1e-6)
    assert torch.allclose(out.spread[0, :, 290, 290], background[1], atol=1e-6)


@pytest.mark.parametrize("truth", [(1.2, 0.01, 0.9), (0.8, 0.001, 0.3)])
def test_the_sigma_fit_recovers_the_rule_that_drew_the_errors(truth):
    """Errors drawn from N(0, sigma) with sigma^2 = (gain spread)^2 + floor^2 + (haze_gain haze)^2
    (sarclear.fill.fill_variance): the maximum-likelihood grid search gives those numbers back,
    a floor below 0.005 included (the grid's lowest step was 0.005 until 2026-12-04)."""
    from sarclear.fill import fill_variance
    from sarclear.fill_eval import coverage90, fit_fill_sigma

    g = torch.Generator().manual_seed(0)
    n = 10_000
    spread = 0.002 + 0.08 * torch.rand(n, generator=g, dtype=torch.float64)
    spread[: n // 4] = 0.0005  # flat ground: only the floor is left
    haze = torch.tensor([0.0, 0.02, 0.05], dtype=torch.float64)[torch.randint(0, 3, (n,), generator=g)]
    sigma = fill_variance(spread, truth, haze).sqrt()
    errors = (torch.randn(n, generator=g, dtype=torch.float64) * sigma).abs()
    gain, floor, haze_gain = fit_fill_sigma(errors, spread, haze)
    assert abs(gain - truth[0]) <= 0.05 and abs(floor - truth[1]) <= 0.0025 and abs(haze_gain - truth[2]) <= 0.2
    assert 0.88 < coverage90(errors, fill_variance(spread, (gain, floor, haze_gain), haze).sqrt()) < 0.92
