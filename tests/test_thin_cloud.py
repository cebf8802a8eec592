"""The ground detail seen through thin cloud is kept on top of the fill; a thick cloud's own
texture is not. Real Sentinel-2 farmland (SSL4EO-S12, Punjab) under synthetic cloud."""

from __future__ import annotations

import numpy as np
import torch
from conftest import SSL4EO_CLEAR

from sarclear.bands import S2_PAPER10
from sarclear.fill import classical_fill, fill_sources, local_mean
from sarclear.io import open_optical
from sarclear.thin_cloud import (
    CLOUD_DETAIL,
    DETAIL_SIGMA_PX,
    cloud_texture,
    coarse_detail,
    coarse_weight,
    detail_weight,
    keep_detail,
    observed_detail,
)
from sarclear.tiling import Window


def _scene() -> torch.Tensor:
    stack = open_optical(SSL4EO_CLEAR, S2_PAPER10)
    raw, _ = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    return torch.from_numpy(raw.astype(np.float64) / 10_000)[None]  # (1, 10, 264, 264) reflectance


def _hole() -> torch.Tensor:
    clear = torch.ones(1, 1, 264, 264, dtype=torch.float64)
    clear[..., 80:180, 70:190] = 0
    return clear


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.mean([np.corrcoef(a[i].numpy(), b[i].numpy())[0, 1] for i in range(a.shape[0])]))


def test_under_haze_the_ground_detail_comes_back_on_top_of_the_fill():
    truth, clear = _scene(), _hole()
    hidden = clear[0, 0] == 0
    observed = torch.where(clear > 0, truth, 0.8 * truth + 0.2 * 0.45)  # a thin veil, opacity 0.2
    prior = classical_fill(observed, clear).prior
    out = keep_detail(observed, prior, S2_PAPER10, 0.7)
    rmse = {name: float((v - truth)[0][:, hidden].pow(2).mean().sqrt()) for name, v in
            (("fill", prior), ("kept", out), ("input", observed))}
    corr = {name: _corr(v[0][:, hidden], truth[0][:, hidden]) for name, v in
            (("fill", prior), ("kept", out), ("input", observed))}
    assert rmse["kept"] < rmse["fill"] and rmse["kept"] < rmse["input"]
    assert corr["kept"] > corr["fill"] + 0.1
    assert float(detail_weight(observed, prior, S2_PAPER10)[0, 0][hidden].mean()) > 0.8


def test_a_thick_clouds_own_texture_never_reaches_the_result():
    truth, clear = _scene(), _hole()
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 264, 264, generator=g, dtype=torch.float64), 9, 1, 4)
    cloud = 0.35 + 0.6 * texture  # white: every band brightens alike, with the cloud's own structure
    observed = torch.where(clear > 0, truth, 0.05 * truth + 0.95 * cloud)
    prior = classical_fill(observed, clear).prior
    out = keep_detail(observed, prior, S2_PAPER10, 0.7)
    hidden = clear[0, 0] == 0
    inner = torch.zeros_like(hidden)
    inner[90:170, 80:180] = True  # away from the edge, where the local means mix clear pixels in
    assert torch.equal(out[..., inner], prior[..., inner])


def test_without_blue_or_nir_or_with_no_gain_the_fill_is_untouched_and_nodata_spreads_no_nan():
    truth, clear = _scene(), _hole()
    observed = torch.where(clear > 0, truth, 0.8 * truth + 0.09)
    prior = classical_fill(observed, clear).prior
    assert torch.equal(keep_detail(observed, prior, S2_PAPER10, 0.0), prior)
    no_blue = [b if b != "B2" else "B1" for b in S2_PAPER10]
    assert torch.equal(keep_detail(observed, prior, no_blue, 0.7), prior)
    observed[..., 100:110, 100:110] = float("nan")
    assert torch.isfinite(keep_detail(observed, prior, S2_PAPER10, 0.7)).all()


def test_ground_detail_is_kept_under_a_brighter_veil_but_white_cloud_texture_is_not():
    """Past the thin-cloud test (blue excess about 0.1 here), only the spectral test can keep
    detail: kept when blue and NIR detail differ (ground), dropped when they move together."""
    truth, clear = _scene(), _hole()
    hidden = clear[0, 0] == 0
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 264, 264, generator=g, dtype=torch.float64), 5, 1, 2)
    weights = {}
    for name, opacity, cloud in (("veil", 0.3, 0.45), ("textured cloud", 0.4, 0.45 + 2 * (texture - 0.5))):
        observed = torch.where(clear > 0, truth, (1 - opacity) * truth + opacity * cloud)
        prior = classical_fill(observed, clear).prior
        assert float((observed - prior)[0, 0][hidden].mean()) > 0.09  # beyond the thin-cloud ramp
        weights[name] = float(detail_weight(observed, prior, S2_PAPER10)[0, 0][hidden].mean())
    assert weights["veil"] > 0.9 and weights["textured cloud"] < 0.15


def test_nodata_next_to_thin_cloud_adds_no_detail_of_its_own():
    """A swath edge: nodata filled with some value (as decloud's tiles carry it) must not show
    up as detail in the valid pixels beside it."""
    truth, clear = _scene(), _hole()
    observed = torch.full_like(truth, 0.9 * 0.1 + 0.1 * 0.45)  # ground with no detail, all under a thin veil
    valid = torch.ones_like(clear, dtype=torch.bool)
    valid[..., :, 150:] = False
    observed = torch.where(valid, observed, torch.full_like(observed, 0.6))  # filled nodata, bright
    prior = classical_fill(observed, clear * valid).prior
    kept = keep_detail(observed, prior, S2_PAPER10, 0.7, valid)
    naive = keep_detail(observed, prior, S2_PAPER10, 0.7)
    near = (clear[0, 0] == 0) & valid[0, 0]
    assert (kept - prior)[0][:, near].abs().max() < 1e-6  # no ground detail, and nodata adds none
    assert (naive - prior)[0][:, near].abs().max() > 0.01  # what it would add if it counted the fill value


def test_under_a_smooth_veil_whole_fields_come_back_too():
    """The coarse detail (about 40-160 m) carries the fields themselves: with it the result
    correlates better with the ground than with the fine detail alone, and beats the input."""
    truth, clear = _scene(), _hole()
    hidden = clear[0, 0] == 0
    rows = torch.linspace(0, 1, 264, dtype=torch.float64)[:, None]
    opacity = 0.25 + 0.1 * rows  # a veil thickening slowly down the image
    observed = torch.where(clear > 0, truth, (1 - opacity) * truth + opacity * 0.45)
    sources = fill_sources(clear, 2)
    prior = classical_fill(observed, sources).prior
    fine = prior + 0.7 * detail_weight(observed, prior, S2_PAPER10) * observed_detail(observed)
    both = keep_detail(observed, prior, S2_PAPER10, 0.7, sources=sources)
    corr = {name: _corr(v[0][:, hidden], truth[0][:, hidden]) for name, v in
            (("fine", fine), ("both", both), ("input", observed))}
    rmse = {name: float((v - truth)[0][:, hidden].pow(2).mean().sqrt()) for name, v in
            (("fine", fine), ("both", both), ("input", observed))}
    assert corr["both"] > corr["fine"] + 0.05
    assert rmse["both"] < rmse["fine"] and rmse["both"] < rmse["input"]


def test_the_contrast_of_a_shadow_edge_is_not_taken_for_ground():
    """A cloud shadow darkens the ground: it passes the thin-cloud test, and its edge is
    coarse detail that ground does not have. The contrast test drops it at the edge, and keeps
    the coarse detail of the unshadowed hidden ground beside it."""
    truth, clear = _scene(), _hole()
    shade = torch.ones(1, 1, 264, 264, dtype=torch.float64)
    shade[..., 80:180, 130:190] = 0.4  # the right part of the hidden block is in shadow
    observed = torch.where(clear > 0, truth, truth * shade)
    sources = fill_sources(clear, 2)
    prior = classical_fill(observed, sources).prior
    weight = coarse_weight(observed, prior, S2_PAPER10, coarse_detail(observed), sources)[0, 0]
    edge, beside = weight[95:165, 124:136], weight[95:165, 95:115]
    assert float(edge.mean()) < 0.2 and float(beside.mean()) > 0.6


def _radius() -> torch.Tensor:
    """Each pixel's distance (px) from the core's centre, (264, 264)."""
    yy, xx = torch.meshgrid(torch.arange(264.0), torch.arange(264.0), indexing="ij")
    return ((yy - 130) ** 2 + (xx - 130) ** 2).sqrt()


def _core_in_veil() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Farmland under a thin veil (opacity 0.1) over the hole, with a thick core (0.9) in its
    middle whose edge falls off over about 2 px: (truth, observed, clear, opacity)."""
    truth, clear = _scene(), _hole()
    core = (1 - (_radius() - 18) / 2).clamp(0, 1).double()[None, None]
    opacity = (1 - clear) * (0.1 + 0.8 * core)
    return truth, (1 - opacity) * truth + opacity * 0.45, clear, opacity


def test_a_thick_cores_edge_leaves_no_dark_rim_in_the_veil_around_it():
    truth, observed, clear, _ = _core_in_veil()
    prior = classical_fill(observed, clear).prior
    out = keep_detail(observed, prior, S2_PAPER10, 1.0)
    r = _radius()
    rim = (r >= 20) & (r < 24)  # the veil within 4 px of the core (opacity 0.1)
    blue, nir = S2_PAPER10.index("B2"), S2_PAPER10.index("B8")
    # the raw detail there is the core's edge seen against a local mean that includes the core: -0.04
    raw = observed - local_mean(observed, DETAIL_SIGMA_PX)
    assert float(raw[0, blue][rim].mean()) < -0.03
    for band in (blue, nir):
        bias = float((out - truth)[0, band][rim].mean())
        assert abs(bias) < 0.01, (band, bias)  # 0.015 in blue without taking the cloud's texture out


def test_cloud_texture_is_the_blue_detail_beyond_ground_coloured_as_the_veil():
    _, observed, clear, opacity = _core_in_veil()
    prior = classical_fill(observed, clear).prior
    fine = observed - local_mean(observed, DETAIL_SIGMA_PX)
    excess = local_mean(observed - prior, DETAIL_SIGMA_PX)
    texture = cloud_texture(fine, excess, S2_PAPER10)
    blue, nir = S2_PAPER10.index("B2"), S2_PAPER10.index("B8")
    veil_only = (opacity[0, 0] > 0.05) & (opacity[0, 0] < 0.15)
    veil_only &= _radius() > 40  # far from the core
    # ground detail under a thin veil stays below the limit: almost none of it is taken out
    taken = float(texture[0, blue][veil_only].pow(2).sum() / fine[0, blue][veil_only].pow(2).sum())
    assert taken < 0.02, taken
    strong = fine[0, blue].abs() > CLOUD_DETAIL + 0.02
    strong &= opacity[0, 0] > 0.05
    t, f = texture[0, blue][strong], fine[0, blue][strong]
    assert strong.sum() > 50 and torch.allclose(t, f.sign() * (f.abs() - CLOUD_DETAIL), atol=1e-9)
    # an edge of the veil moves each band by its excess over the ground: over green fields (dark in
    # blue, bright in NIR) a white veil brightens NIR less than blue, and the texture says the same
    ratio = texture[0, nir][strong] / t
    expected = (excess[0, nir] / excess[0, blue]).clamp(0, 1.5)[strong]  # the colour is kept within 0-1.5
    assert float((ratio - expected).abs().max()) < 1e-9
    assert 0.2 < float(ratio.median()) < 0.9
    # nothing is taken out where no veil lies over the fill
    assert torch.equal(cloud_texture(fine, torch.zeros_like(fine), S2_PAPER10), torch.zeros_like(fine))
    assert torch.equal(cloud_texture(fine[:, :2], excess[:, :2], ("B8", "B11")), torch.zeros_like(fine[:, :2]))
