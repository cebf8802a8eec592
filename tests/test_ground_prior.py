"""The ground prior: what a fill puts under a cloud that hides the whole scene. Exact cases
where the answer is known, the model file's table, and real Sentinel-2 farmland (SSL4EO-S12,
Punjab) under a synthetic overcast and under haze through decloud."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import SSL4EO_CLEAR, SSL4EO_S1, write_raster

from sarclear.bands import S2_PAPER10, S2_WAVELENGTH_NM
from sarclear.checkpoint import load_model, save_model
from sarclear.clouds import CloudConfig, add_clouds
from sarclear.datasets import Scene
from sarclear.ground_prior import GroundPrior, build_ground_prior
from sarclear.inference import DecloudOptions, decloud
from sarclear.io import open_optical
from sarclear.networks import ModelConfig, preset
from sarclear.product_level import PATH_REFLECTANCE_490
from sarclear.radiometry import S1_DB_RANGE
from sarclear.resources import default_model
from sarclear.tiling import Window

RANGES = [S1_DB_RANGE["VV"], S1_DB_RANGE["VH"]]
BANDS = ("B2", "B8")


def _scene(name: str, ms: np.ndarray, sar: np.ndarray | None) -> Scene:
    return Scene(name, name, "test", "l2a", BANDS, ms.astype(np.float32), sar, False, "train")


def _field(h: int, w: int, water_cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Fields (B2 0.05, B8 0.30; VV -9, VH -16 dB) with a strip of water (0.02, 0.01; -22, -29)."""
    ms = np.empty((2, h, w))
    ms[0], ms[1] = 0.05, 0.30
    ms[:, :, water_cols] = np.array([0.02, 0.01])[:, None, None]
    sar = np.empty((2, h, w), np.float32)
    sar[0], sar[1] = -9.0, -16.0
    sar[:, :, water_cols] = np.array([-22.0, -29.0])[:, None, None]
    return ms, sar


def test_each_sar_class_gets_the_ground_it_had_in_training_and_every_scene_counts_alike():
    small = _scene("small", *_field(40, 40, slice(0, 20)))
    big_ms = np.full((2, 200, 200), 0.5)  # one bright place, 25 times the pixels, without SAR
    prior = build_ground_prior([small, _scene("big", big_ms, None)], BANDS, RANGES, 4.0)
    # overall: the mean of the two scenes' means, not of their pixels
    small_mean = np.array([(0.05 + 0.02) / 2, (0.30 + 0.01) / 2])
    assert np.allclose(prior.overall[0], (small_mean + 0.5) / 2)
    assert np.all(prior.overall[1] > 0.1)  # the spread holds the difference between the places
    # per class: the nodes around water's backscatter hold water, those around the fields' hold
    # fields (classes between them only get the few pixels the SAR smoothing mixes at the shore)
    water_nodes, field_nodes = {(0, 0), (0, 1), (1, 0), (1, 1)}, {(3, 4), (3, 5), (4, 4), (4, 5)}
    assert water_nodes & prior.classes.keys() and field_nodes & prior.classes.keys()
    for key, value in prior.classes.items():
        if key in water_nodes:
            assert np.allclose(value[0], [0.02, 0.01], atol=0.02)
        elif key in field_nodes:
            assert np.allclose(value[0], [0.05, 0.30], atol=0.02)


def test_the_prior_is_built_from_clear_l2a_scenes_only():
    ms, sar = _field(20, 20, slice(0, 5))
    l1c = dataclasses.replace(_scene("l1c", ms, sar), product_level="l1c")
    with pytest.raises(ValueError, match="clear L2A"):
        build_ground_prior([l1c], BANDS, RANGES, 4.0)


def test_the_table_survives_the_model_file_and_an_l1c_scene_adds_the_path_reflectance(tmp_path):
    prior = build_ground_prior([_scene("a", *_field(40, 40, slice(0, 10)))], BANDS, RANGES, 4.0)
    config = dataclasses.replace(preset("fill"), bands=BANDS, keep_detail=1.0, sar_guide=4.0,
                                 ground_prior=prior.to_table())
    back = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config
    again = GroundPrior.from_table(back.ground_prior)
    assert again.classes.keys() == prior.classes.keys()
    l2a, classes_l2a = again.at_level("l2a", BANDS)
    l1c, classes_l1c = again.at_level("l1c", BANDS)
    assert np.allclose(l2a, prior.overall, atol=1e-5)
    shift = l1c[0] - l2a[0]
    assert shift[0] == pytest.approx(PATH_REFLECTANCE_490, abs=1e-6)  # B2 is at 490 nm
    # B8: falling off as skylight does, (490 nm / 833 nm) ** 2, a third
    assert shift[1] == pytest.approx(PATH_REFLECTANCE_490 * (490 / S2_WAVELENGTH_NM["B8"]) ** 2, abs=1e-6)
    assert np.allclose(l1c[1], l2a[1])  # the spread is the same at either level
    key = next(iter(classes_l1c))
    assert torch.allclose(classes_l1c[key][0] - classes_l2a[key][0], torch.from_numpy(shift).float(), atol=1e-6)


@pytest.mark.parametrize("row, problem", [
    ({"all": [0.1, 0.2, 0.0]}, "means then"),              # 3 values for 2 bands
    ({"all": [0.1, 0.2, -0.1, 0.1]}, "means then"),        # a negative spread
    ({"all": [0.1, float("nan"), 0.1, 0.1]}, "means then"),
    ({"all": [0.1, 0.2, 0.1, 0.1], "x,2": [0.1, 0.2, 0.1, 0.1]}, "neither"),
    ({"3,2": [0.1, 0.2, 0.1, 0.1]}, "no 'all' row"),
])
def test_a_damaged_table_is_refused_with_its_problem(row, problem):
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(preset("fill"), bands=BANDS, ground_prior=row)


def _farmland(tmp_path, config: CloudConfig, seed: int = 3):
    """The real clear SSL4EO-S12 scene under synthetic ``config`` clouds, as a 10-band GeoTIFF
    (DN), with an all-cloud mask beside it; returns (cloudy path, mask path, clear reflectance)."""
    stack = open_optical(SSL4EO_CLEAR, S2_PAPER10)
    raw, ok = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    assert ok.all()
    clear = raw.astype(np.float64) / 10_000
    cloudy = add_clouds(torch.from_numpy(clear)[None].float(), S2_PAPER10, config, seed=seed).cloudy[0].numpy()
    like = SSL4EO_CLEAR / "B2.tif"
    ms = write_raster(tmp_path / "cloudy.tif", np.round(cloudy * 10_000).astype(np.uint16), like=like,
                      names=list(S2_PAPER10))
    mask = write_raster(tmp_path / "mask.tif", np.ones((1, *clear.shape[1:]), np.uint8), like=like, dtype=1)
    return ms, mask, clear


def _without_prior(model, tmp_path):
    loaded = load_model(model)
    config = dataclasses.replace(loaded.config, ground_prior={})
    return save_model(tmp_path / "no_prior.safetensors", loaded.generator, config, info=loaded.info)


def _run(ms, mask, model, out):
    return decloud(ms, SSL4EO_S1, model, out, maps=False,
                   options=DecloudOptions(cloud_mask=str(mask), product_level="l1c", overwrite=True))


def _reflectance(path) -> np.ndarray:
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray().astype(np.float64) / 10_000


def test_under_a_whole_scene_cloud_the_prior_fills_far_closer_to_the_ground_than_the_clouds_mean(tmp_path):
    overcast = CloudConfig().fixed(coverage=1.0, haze=0.0, shadow=0.0, brightness=0.6)
    ms, mask, clear = _farmland(tmp_path, overcast)
    model = default_model(with_sar=True)
    assert load_model(model).config.ground_prior, "the bundled SAR-guided model carries a ground prior"
    with_prior = _run(ms, mask, model, tmp_path / "prior.tif")
    without = _run(ms, mask, _without_prior(model, tmp_path), tmp_path / "mean.tif")
    assert any("ground prior" in n for n in with_prior.notes)
    assert not any("ground prior" in n for n in without.notes)
    # a whole-scene cloud is no veil, with or without a prior to fill it from
    assert not any("a veil" in n for n in (*with_prior.notes, *without.notes))
    rmse = {k: float(np.sqrt(((_reflectance(tmp_path / f"{k}.tif") - clear) ** 2).mean())) for k in ("prior", "mean")}
    # the mean of an overcast scene is the cloud's brightness; the prior is ground, here farmland
    # of another continent and season, so it errs, but far less
    assert rmse["prior"] < 0.12 < 0.25 < rmse["mean"]


def test_under_haze_the_scene_is_de_hazed_and_the_prior_is_not_used(tmp_path):
    haze = CloudConfig().fixed(coverage=0.0, haze=0.3, shadow=0.0)
    ms, mask, clear = _farmland(tmp_path, haze)
    model = default_model(with_sar=True)
    with_prior = _run(ms, mask, model, tmp_path / "prior.tif")
    without = _run(ms, mask, _without_prior(model, tmp_path), tmp_path / "mean.tif")
    assert not any("ground prior" in n for n in with_prior.notes)
    # the user is told that the whole scene is under a veil, and that it was de-hazed
    for result in (with_prior, without):
        veil = [n for n in result.notes if "a veil that the ground shows through" in n]
        assert len(veil) == 1 and "de-hazes the input" in veil[0]
    out = _reflectance(tmp_path / "prior.tif")
    assert np.array_equal(out, _reflectance(tmp_path / "mean.tif"))
    # nearer the ground than the hazy input, and its pattern kept (sarclear.dehaze)
    cloudy = _reflectance(ms)
    rmse = {k: float(np.sqrt(((v - clear) ** 2).mean())) for k, v in (("out", out), ("input", cloudy))}
    assert rmse["out"] < 0.8 * rmse["input"]
    corr = {k: np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(v, clear)])
            for k, v in (("out", out), ("input", cloudy))}
    assert corr["out"] > corr["input"] - 0.01
