"""The SAR-guided fill: a hidden pixel is filled from the clear pixels that look like it in SAR.
Real Sentinel-2 farmland with its Sentinel-1 three days apart (SSL4EO-S12, Punjab), and exact
cases where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SSL4EO_CLEAR, SSL4EO_S1

from sarclear.bands import S2_PAPER10
from sarclear.fill import classical_fill, fill_sources
from sarclear.io import open_optical, open_sar
from sarclear.networks import ModelConfig, preset
from sarclear.radiometry import S1_DB_RANGE
from sarclear.sar_guide import classes, model_prior, sar_guided_fill, sar_memberships, scene_classes
from sarclear.tiling import Window

RANGES = [S1_DB_RANGE["VV"], S1_DB_RANGE["VH"]]


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    stack = open_optical(SSL4EO_CLEAR, S2_PAPER10)
    window = Window(0, 0, stack.grid.width, stack.grid.height)
    raw, _ = stack.open().read(window)
    sar, ok = open_sar(SSL4EO_S1, ("VV", "VH"), stack.grid).open().read(window)
    assert ok.mean() > 0.9
    sar = np.where(ok, sar, -15.0)
    return torch.from_numpy(raw.astype(np.float64) / 10_000)[None], torch.from_numpy(sar.astype(np.float64))[None]


def test_memberships_are_a_partition_of_one_on_a_fixed_grid():
    sar = torch.tensor([[[[-30.0, -25.0, -14.2], [-7.5, 0.0, 5.0]], [[-40.0, -32.5, -20.1], [-12.0, -3.0, 2.0]]]])
    tents = sar_memberships(sar, RANGES, smooth_px=0)
    assert [t.shape[1] for t in tents] == [7, 9]  # nodes every ~4 dB over each range
    total = sum(classes(tents))
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    # the same backscatter gets the same classes in any tile: nothing depends on the scene's values
    assert torch.equal(sar_memberships(sar[..., :1, :2], RANGES, smooth_px=0)[0], tents[0][..., :1, :2])


def test_under_a_cloud_water_is_filled_from_water_and_land_from_land():
    # a river (dark, low backscatter) through fields (bright, higher backscatter), a hole across both
    h, w = 96, 96
    river = torch.zeros(h, w, dtype=torch.bool)
    river[:, 40:52] = True
    x = torch.where(river, 0.02, 0.30).expand(1, 10, h, w).clone().double()
    sar = torch.stack([torch.where(river, -22.0, -9.0), torch.where(river, -29.0, -16.0)])[None].double()
    clear = torch.ones(1, 1, h, w, dtype=torch.float64)
    clear[..., 20:76, 20:76] = 0
    hidden = clear[0, 0] == 0
    guided = sar_guided_fill(x, clear, sar_memberships(sar, RANGES, smooth_px=0))
    plain = classical_fill(x, clear)
    err = {name: float((f.prior - x)[0][:, hidden].abs().max()) for name, f in (("guided", guided), ("plain", plain))}
    assert err["guided"] < 0.002 < 0.05 < err["plain"]
    assert float(guided.spread[0][:, hidden].max()) < 0.002  # each class is uniform: the guided fill is sure


def test_backscatter_that_says_nothing_gives_the_plain_fill():
    truth, _ = _pair()
    clear = torch.ones(1, 1, *truth.shape[-2:], dtype=torch.float64)
    clear[..., 80:180, 70:190] = 0
    sar = torch.empty(1, 2, *truth.shape[-2:], dtype=torch.float64)
    sar[:, 0], sar[:, 1] = RANGES[0][0], RANGES[1][0]  # every pixel on one node: one class
    guided = sar_guided_fill(truth, clear, sar_memberships(sar, RANGES))
    plain = classical_fill(truth, clear)
    assert torch.allclose(guided.prior, plain.prior, atol=1e-9)
    assert torch.allclose(guided.spread, plain.spread, atol=1e-6)


def test_on_real_farmland_the_sar_guided_fill_errs_less_than_the_plain_one():
    truth, sar = _pair()
    clear = torch.ones(1, 1, *truth.shape[-2:], dtype=torch.float64)
    clear[..., 80:180, 70:190] = 0
    hidden = clear[0, 0] == 0
    sources = fill_sources(clear, 2)
    rmse = {}
    for name, step in (("plain", 0.0), ("guided", 4.0)):
        fill = model_prior(truth, sources, sar_db=sar, db_range=RANGES, step_db=step, hidden=(clear == 0))
        rmse[name] = float((fill.prior - truth)[0][:, hidden].pow(2).mean().sqrt())
    assert rmse["guided"] < 0.97 * rmse["plain"], rmse


def test_a_model_asks_for_the_guided_fill_only_with_sar():
    assert preset("fill", sar_guide=4.0).sar_guide == 4.0
    with pytest.raises(ValueError, match="sar_guide"):
        preset("fill-ms", sar_guide=4.0)
    with pytest.raises(ValueError, match="at least 1 dB"):
        ModelConfig(preset="fill", kind="gapfill", sar_guide=0.1)


def test_with_sar_the_default_is_the_guided_fill_and_it_keeps_every_clear_pixel(tmp_path):
    """decloud of a real cloudy scene (SSL4EO-S12, 2020-08-23, with its S1) with the default model
    for SAR: clear pixels exactly as they were; hidden ones from the SAR-guided fill, which
    differs from the plain one there; its uncertainty map beside it."""
    from conftest import SSL4EO_CLOUDY
    from osgeo import gdal

    from sarclear.checkpoint import read_header
    from sarclear.inference import DecloudOptions, decloud
    from sarclear.resources import default_model

    guided, classic = default_model(with_sar=True), default_model()
    assert read_header(guided)[0].sar_guide > 0 and not read_header(classic)[0].uses_sar
    outs = {}
    for name, model in (("guided", guided), ("classic", classic)):
        res = decloud(SSL4EO_CLOUDY, SSL4EO_S1, model, tmp_path / f"{name}.tif", maps=False,
                      options=DecloudOptions(product_level="l1c"))
        outs[name] = gdal.Open(str(res.output)).ReadAsArray().astype(np.int64)
        if name == "guided":
            mask = gdal.Open(str(res.maps["mask"])).ReadAsArray()
            sigma = gdal.Open(str(res.maps["uncertainty"])).ReadAsArray()
    stack = open_optical(SSL4EO_CLOUDY, S2_PAPER10)
    raw, ok = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    sar_ok = open_sar(SSL4EO_S1, ("VV", "VH"), stack.grid).open().read(Window(0, 0, *raw.shape[:0:-1]))[1]
    assert 0.9 < sar_ok.mean() < 1  # the S1 scene misses a corner: there the fill goes on without SAR
    seen = (mask == 0) & ok
    assert np.array_equal(outs["guided"][:, seen], raw[:, seen].astype(np.int64))  # with SAR or without
    hidden = (mask > 0) & (mask < 255) & ok
    assert hidden.mean() > 0.3 and (outs["guided"][:, hidden] > 0).all()  # every hidden pixel filled
    assert (hidden & ~sar_ok).sum() > 100  # some of them without SAR: filled all the same
    assert (outs["guided"][:, hidden] != outs["classic"][:, hidden]).any(0).mean() > 0.5
    assert (sigma[hidden] > 0).all() and (sigma[seen] == 0).all()


def test_a_class_without_clear_pixels_in_the_tile_takes_its_mean_over_the_scene():
    """Water under a cloud in a tile that sees no clear water: with the scene's class means it is
    filled from the water seen elsewhere in the scene (the same in every tile), not from land."""
    h, w = 64, 96
    water = torch.zeros(h, w, dtype=torch.bool)
    water[:, 60:] = True  # a lake on the right
    x = torch.where(water, 0.02, 0.30).expand(1, 10, h, w).clone().double()
    x[:, 3] = torch.where(water, 0.01, 0.45)  # NIR: a band with another contrast
    sar = torch.stack([torch.where(water, -22.0, -9.0), torch.where(water, -29.0, -16.0)])[None].double()
    tents = sar_memberships(sar, RANGES, smooth_px=0)
    scene = scene_classes(x, torch.ones(1, 1, h, w, dtype=torch.bool), tents)
    means = sorted(round(float(mean_std[0, 0]), 6) for mean_std in scene.values())
    assert set(means) == {0.02, 0.3}  # each class (tent node pair) holds water or land, not both
    assert all(float(mean_std[1].max()) < 1e-6 for mean_std in scene.values())
    # a tile: its left part, with the lake's edge hidden and no clear water pixel at all
    tile = (slice(None), slice(None), slice(None), slice(0, 72))
    clear = torch.ones(1, 1, h, 72, dtype=torch.float64)
    clear[..., 50:] = 0
    hidden = (clear[0, 0] == 0) & water[:, :72]
    sub = [t[tile] for t in tents]
    alone = sar_guided_fill(x[tile], clear, sub)
    with_scene = sar_guided_fill(x[tile], clear, sub, scene=scene)
    assert float((alone.prior - x[tile])[0][:, hidden].abs().min()) > 0.2  # land poured into the lake
    assert float((with_scene.prior - x[tile])[0][:, hidden].abs().max()) < 1e-6


def test_the_guided_fill_does_not_show_the_tiles(tmp_path):
    """The real cloudy scene declouded with the guided model at its tiles (256 px) and at 64 px
    tiles: inside the mask the two agree within 0.01 reflectance RMSE (they differed by 0.025,
    a visible patchwork, when each tile's class means stood in for the scene's)."""
    import dataclasses

    from conftest import SSL4EO_CLOUDY
    from osgeo import gdal

    from sarclear.checkpoint import load_model, save_model
    from sarclear.inference import DecloudOptions, decloud
    from sarclear.resources import default_model

    model = load_model(default_model(with_sar=True))
    small = save_model(tmp_path / "t64.safetensors", model.generator, dataclasses.replace(model.config, tile_size=64))
    outs = {}
    for name, path in (("256", default_model(with_sar=True)), ("64", small)):
        res = decloud(SSL4EO_CLOUDY, SSL4EO_S1, path, tmp_path / f"{name}.tif", maps=False,
                      options=DecloudOptions(product_level="l1c"))
        outs[name] = gdal.Open(str(res.output)).ReadAsArray().astype(np.float64) / 10_000
        mask = gdal.Open(str(res.maps["mask"])).ReadAsArray()
    hidden = (mask > 0) & (mask < 255)
    assert hidden.mean() > 0.3
    rmse = float(np.sqrt(((outs["256"] - outs["64"])[:, hidden] ** 2).mean()))
    assert rmse < 0.01, rmse
