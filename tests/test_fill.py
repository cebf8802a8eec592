"""Classical gap fills: the baselines and the prior of the mask-aware generator."""

from __future__ import annotations

import torch

from sarclear.fill import mean_fill, normalized_convolution


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
