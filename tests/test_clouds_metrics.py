"""Synthetic clouds (Perlin noise, haze, shadows) and the quality metrics."""

import math

import numpy as np
import pytest
import torch
from conftest import SSL4EO_CLEAR

from sarclear import metrics, raster
from sarclear.bands import S2_PAPER10
from sarclear.clouds import CloudConfig, CloudField, add_clouds


@pytest.fixture(scope="module")
def clear():
    stack = raster.open_optical(SSL4EO_CLEAR, S2_PAPER10)
    data, _ = stack.open().read(stack.grid.window)
    return torch.from_numpy(data / 10000.0).float()[None]  # (1, 10, 264, 264) reflectance


def test_clouds_are_reproducible_from_the_seed_and_differ_between_seeds(clear):
    batch = clear.repeat(3, 1, 1, 1)
    a, b = add_clouds(batch, S2_PAPER10, seed=7), add_clouds(batch, S2_PAPER10, seed=7)
    assert torch.equal(a.cloudy, b.cloudy)
    assert not torch.equal(a.cloudy, add_clouds(batch, S2_PAPER10, seed=8).cloudy)
    assert not torch.equal(a.cloudy[0], a.cloudy[1])  # each image of a batch gets its own clouds


def test_cloud_cover_follows_the_requested_fraction_and_clouds_are_bright(clear):
    for coverage in (0.2, 0.5, 0.8):
        cfg = CloudConfig(haze=(0.0, 0.0), shadow=(0.0, 0.0)).fixed(coverage=coverage)
        r = add_clouds(clear, S2_PAPER10, cfg, seed=1)
        assert abs(r.mask.float().mean().item() - coverage) < 0.12
        core = r.thick[0, 0] > 0.95
        # under thick cloud the visible bands are far brighter than the ground
        assert (r.cloudy[0, :3][:, core] - clear[0, :3][:, core]).mean() > 0.2
        clear_px = r.opacity[0, 0] == 0
        assert torch.allclose(r.cloudy[0][:, clear_px], clear[0][:, clear_px])


def test_haze_is_thicker_at_short_wavelengths_and_shadows_darken(clear):
    cfg = CloudConfig().fixed(coverage=0.0, haze=0.5, shadow=0.0)
    r = add_clouds(clear, S2_PAPER10, cfg, seed=3)
    change = (r.cloudy - clear).abs().mean(dim=(0, 2, 3))
    assert change[S2_PAPER10.index("B2")] > change[S2_PAPER10.index("B12")]
    cfg = CloudConfig().fixed(coverage=0.3, haze=0.0, shadow=0.6)
    r = add_clouds(clear, S2_PAPER10, cfg, seed=3)
    shade = (r.shadow[0, 0] > 0.3) & (r.thick[0, 0] < 0.01)
    assert shade.any() and (r.cloudy[0][:, shade] < clear[0][:, shade]).all()


def test_shadows_keep_diffuse_light_so_they_darken_blue_least(clear):
    """A shadow keeps the bluish diffuse light: with a share of 0.9 kept at 490 nm, blue darkens
    by a tenth of what the direct light alone would take, NIR and SWIR by far more; with none
    kept, every band darkens by the same factor."""
    b2, b8, b12 = (S2_PAPER10.index(b) for b in ("B2", "B8", "B12"))
    for kept in (0.9, 0.0):
        cfg = CloudConfig().fixed(coverage=0.3, haze=0.0, shadow=0.6, shadow_diffuse=kept)
        r = add_clouds(clear, S2_PAPER10, cfg, seed=3)
        shade = (r.shadow[0, 0] > 0.5) & (r.thick[0, 0] < 1e-4)
        ratio = (r.cloudy[0][:, shade] / clear[0][:, shade]).mean(dim=1)
        expected = 1 - r.shadow[0, 0][shade].mean()  # darkening by direct light alone
        if kept:
            assert ratio[b2] > 1 - 0.11 * (1 - expected) and ratio[b2] > ratio[b8] > ratio[b12]
            assert ratio[b12] < 1 - 0.85 * (1 - expected)
        else:
            assert torch.allclose(ratio, ratio[b2].expand_as(ratio), atol=1e-4)


def test_haze_power_sets_how_the_veil_thins_with_wavelength(clear):
    """The veil's opacity per band, recovered from the same clouds over two grounds: with
    ``haze_power`` 0 (thin water cloud) it is the 490 nm opacity in every band; with 1 (aerosol
    haze, the default) it is 1 - (1 - opacity) ** (490 / wavelength), so thinner in SWIR."""
    from sarclear.bands import S2_WAVELENGTH_NM
    from sarclear.errors import InputError

    _, c, h, w = clear.shape
    ground = clear > 0.02
    for power in (0.0, 1.0):
        cfg = CloudConfig(haze_power=power).fixed(coverage=0.0, haze=0.4, shadow=0.0)
        assert cfg.haze_power == power
        a, b = (CloudField(1, h, w, cfg, seed=5).apply(g, S2_PAPER10, scene_p98=torch.full((1, c), 0.5))
                for g in (clear, 0.5 * clear))
        alpha = 1 - (a.cloudy - b.cloudy) / (0.5 * clear).clamp_min(1e-6)
        op = a.opacity[0, 0]
        for i, band in enumerate(S2_PAPER10):
            k = (490.0 / S2_WAVELENGTH_NM[band]) ** power
            expected = 1 - (1 - op) ** k
            assert torch.allclose(alpha[0, i][ground[0, i]], expected[ground[0, i]], atol=2e-3)
        swir_over_blue = alpha[0, S2_PAPER10.index("B12")].mean() / alpha[0, S2_PAPER10.index("B2")].mean()
        assert (abs(swir_over_blue - 1) < 1e-2) if power == 0 else (swir_over_blue < 0.4)
    with pytest.raises(InputError, match="spectral power"):
        CloudConfig(haze_power=5.0)


def test_clouds_evaluated_window_by_window_equal_the_whole_image(clear):
    field = CloudField(1, 264, 264, seed=5)
    p98 = torch.quantile(clear.flatten(2), 0.98, dim=2)
    whole = field.apply(clear, S2_PAPER10, scene_p98=p98).cloudy
    part = field.apply(clear[:, :, 64:200, 10:150], S2_PAPER10, 64, 10, scene_p98=p98).cloudy
    assert torch.equal(whole[:, :, 64:200, 10:150], part)


def test_metrics_known_values():
    x = torch.rand(10, 16, 16)
    m = metrics.compare(x, x.clone(), S2_PAPER10)
    assert m["rmse"] == 0 and m["mae"] == 0 and m["sam_deg"] < 1e-6 and m["ssim"] == pytest.approx(1.0)
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0], b[1] = 1.0, 1.0  # orthogonal spectra
    assert metrics.sam_map(a, b).unique().tolist() == [90.0]
    assert metrics.compare(a, b, ("B2", "B3"))["sam_deg"] == pytest.approx(90.0)
    y = x + 0.1  # constant offset: RMSE = MAE = 0.1, PSNR = 20 dB
    m = metrics.compare(y, x, S2_PAPER10)
    assert m["rmse"] == pytest.approx(0.1, rel=1e-5) and m["mae"] == pytest.approx(0.1, rel=1e-5)
    assert m["psnr"] == pytest.approx(20.0, rel=1e-4)
    assert all(v == pytest.approx(0.1, rel=1e-5) for v in m["rmse_per_band"].values())
    # parallel spectra of different brightness have zero spectral angle
    assert metrics.sam_map(2 * x, x).max() < 1e-3


def test_metrics_ignore_invalid_pixels_and_accumulate_blockwise():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(10, 40, 30, generator=gen), torch.rand(10, 40, 30, generator=gen)
    valid = torch.rand(40, 30, generator=gen) > 0.3
    whole = metrics.compare(x, y, S2_PAPER10, valid)
    acc = metrics.MetricAccumulator(S2_PAPER10)
    ssim = metrics.ssim_map(x, y)[0]
    for r in range(0, 40, 7):
        s = slice(r, r + 7)
        acc.update(x[:, s], y[:, s], valid[s], ssim=ssim[s])
    blocks = acc.result()
    assert blocks["pixels"] == int(valid.sum())
    for k in ("rmse", "mae", "sam_deg", "psnr"):
        assert blocks[k] == pytest.approx(whole[k], rel=1e-9)
    diff = (x - y)[:, valid]
    assert whole["rmse"] == pytest.approx(math.sqrt(float((diff.double() ** 2).mean())), rel=1e-9)
    x2 = x.clone()
    x2[:, ~valid] = float("nan")  # NaNs in invalid pixels change nothing
    assert metrics.compare(x2, y, S2_PAPER10, valid)["rmse"] == pytest.approx(whole["rmse"])
    assert np.isnan(metrics.compare(x, y, S2_PAPER10, torch.zeros(40, 30, dtype=torch.bool))["rmse"])


def test_correlation_per_band_ignores_gain_offset_and_invalid_pixels(clear):
    ref = clear[0]
    scaled = 0.5 * ref + 0.1  # same structure, other gain and offset
    np.testing.assert_allclose(metrics.correlation(scaled, ref).numpy(), 1.0, atol=1e-9)
    g = torch.Generator().manual_seed(0)
    noisy = ref + 0.5 * ref.std(dim=(1, 2), keepdim=True) * torch.randn(ref.shape, generator=g)
    r = metrics.correlation(noisy, ref)  # noise at half the signal's std: r = 1 / sqrt(1.25)
    assert r.shape == (ref.shape[0],)
    np.testing.assert_allclose(r.numpy(), 1 / math.sqrt(1.25), atol=0.02)
    valid = torch.zeros(ref.shape[1:], dtype=torch.bool)
    valid[:40] = True
    broken = scaled.clone()
    broken[:, 40:] = float("nan")  # only invalid pixels are broken
    np.testing.assert_allclose(metrics.correlation(broken, ref, valid).numpy(), 1.0, atol=1e-9)
    flat = torch.ones_like(ref)
    assert bool(torch.isnan(metrics.correlation(flat, ref)).all())


def test_synthetic_shadows_fall_away_from_the_sun_they_report():
    """Each field's shadows lie on the far side of its clouds from ``sun_azimuth_deg``: the
    detector's sun check (sarclear.masks.toward_sun) keeps nearly all of them with that sun
    and drops many with the opposite one."""
    from sarclear.clouds import CloudConfig, CloudField
    from sarclear.masks import toward_sun

    for seed in range(3):
        field = CloudField(1, 160, 160, CloudConfig(coverage=(0.3, 0.3), shadow=(0.5, 0.5),
                                                    shadow_offset=(12, 12)), seed=seed)
        thick, _, shadow = field.opacities(0, 0, 160, 160)
        cloud, dark = thick[0, 0].numpy() > 0.5, shadow[0, 0].numpy() > 0.5
        sun = field.sun_azimuth_deg[0]
        assert (dark & toward_sun(cloud, sun, 40, 30.0)).sum() >= 0.98 * dark.sum() > 0
        assert (dark & toward_sun(cloud, (sun + 180) % 360, 40, 30.0)).sum() < 0.8 * dark.sum()
