"""Real cloud layers: lifted from a cloudy scene, they give back its opacity, lay over other ground
without touching what they do not cover, and feed training only when asked. Real Sentinel-2
farmland (SSL4EO-S12, Punjab) under a cloud whose opacity is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import CR_CLOUDY_S2, SSL4EO_CLEAR

from sarclear.bands import S2_PAPER10
from sarclear.cloud_layers import CloudLayer, extract_layer, scene_layers
from sarclear.clouds import CloudConfig, CloudField
from sarclear.errors import InputError
from sarclear.fill_data import make_batch
from sarclear.io import open_optical
from sarclear.masks import MaskOptions, detect_array
from sarclear.tiling import Window


def _scene() -> torch.Tensor:
    stack = open_optical(SSL4EO_CLEAR, S2_PAPER10)
    raw, _ = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    return torch.from_numpy(raw.astype(np.float32) / 10_000)[None]  # (1, 10, 264, 264)


def _cloudy(truth: torch.Tensor):
    """Thick cloud without haze or shadow over a third of the scene; the classes a detector
    would give (cloud where the opacity is at least 0.1)."""
    config = CloudConfig(coverage=(0.35, 0.35), haze=(0.0, 0.0), shadow=(0.0, 0.0))
    res = CloudField(1, *truth.shape[-2:], config, seed=3).apply(truth, S2_PAPER10)
    classes = (res.opacity[0, 0] >= 0.1).numpy().astype(np.uint8)
    return res, classes


def test_the_layer_gives_back_the_clouds_opacity_and_lays_exactly_over_other_ground():
    truth = _scene()
    res, classes = _cloudy(truth)
    valid = np.ones(classes.shape, bool)
    layer = extract_layer(res.cloudy[0].numpy(), S2_PAPER10, classes, valid, source="test")
    true_alpha = res.opacity[0, 0]
    assert np.corrcoef(layer.alpha.flatten().numpy(), true_alpha.flatten().numpy())[0, 1] > 0.98
    thick = true_alpha >= 0.5
    assert float((layer.alpha[thick] - true_alpha[thick]).abs().mean()) < 0.05
    assert float(layer.alpha[true_alpha == 0].abs().max()) < 0.2  # clear ground: (almost) no cloud
    assert abs(layer.cloud_fraction - float(thick.float().mean())) < 0.05

    other = truth.flip(-1)  # other ground beneath the same clouds
    laid = layer.apply(other, S2_PAPER10)
    untouched = (layer.alpha == 0) & (layer.shadow == 1)
    assert untouched.float().mean() > 0.3
    assert torch.equal(laid.cloudy[0][:, untouched], other[0][:, untouched])  # bit for bit
    core = layer.alpha == 1
    assert torch.allclose(laid.cloudy[0][:, core], layer.colour[:, core])
    # over its own ground the layer gives the cloudy scene back where the cloud is thick
    again = layer.apply(truth, S2_PAPER10).cloudy[0]
    assert float((again - res.cloudy[0])[:, thick].abs().mean()) < 0.01


def test_placing_turns_and_cuts_deterministically():
    truth = _scene()
    res, classes = _cloudy(truth)
    layer = extract_layer(res.cloudy[0].numpy(), S2_PAPER10, classes, np.ones(classes.shape, bool))
    a, b = layer.placed(100, 140, seed=7), layer.placed(100, 140, seed=7)
    assert a.alpha.shape == (100, 140) and a.colour.shape == (10, 100, 140) and a.shadow.shape == (100, 140)
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.colour, b.colour)
    same = layer.placed(264, 264, seed=11)  # its own size: only turned and flipped
    assert torch.equal(same.alpha.flatten().sort().values, layer.alpha.flatten().sort().values)
    big = layer.placed(600, 500, seed=1)  # larger than the layer: mirrored
    assert big.alpha.shape == (600, 500) and float(big.alpha.max()) == float(layer.alpha.max())


def test_bad_inputs_are_refused_in_plain_words():
    truth = _scene()
    valid = np.ones(truth.shape[-2:], bool)
    with pytest.raises(InputError, match="no pixel flagged as cloud"):
        extract_layer(truth[0].numpy(), S2_PAPER10, np.zeros(valid.shape, np.uint8), valid, source="clear")
    res, classes = _cloudy(truth)
    layer = extract_layer(res.cloudy[0].numpy(), S2_PAPER10, classes, valid)
    with pytest.raises(InputError, match="place it first"):
        layer.apply(truth[..., :100, :100], S2_PAPER10)
    small = CloudLayer(layer.alpha, layer.colour[:3], layer.shadow, ("B2", "B3", "B4"))
    with pytest.raises(InputError, match="has no band B8"):
        small.apply(truth[:, [0, 1, 2, 6]], ("B2", "B3", "B4", "B8"))


def test_training_batches_take_real_layers_only_when_asked():
    truth = _scene()
    res, classes = _cloudy(truth)
    layer = extract_layer(res.cloudy[0].numpy(), S2_PAPER10, classes, np.ones(classes.shape, bool))
    crops = truth[..., :64, :64].repeat(4, 1, 1, 1)
    sar, has = torch.zeros(4, 0, 64, 64), torch.zeros(4, dtype=torch.bool)

    def batch(**kw):
        return make_batch(crops, sar, has, S2_PAPER10, None, torch.Generator().manual_seed(5), **kw)

    plain, unused = batch(), batch(layers=[layer], layer_fraction=0.0)
    assert torch.equal(plain.observed, unused.observed) and plain.kinds == unused.kinds  # same draws
    real = batch(layers=[layer], layer_fraction=1.0)
    assert real.kinds == ["real"] * 4
    assert torch.equal(real.truth, plain.truth)
    assert torch.equal(real.thick, real.thick.clamp(0, 1)) and float(real.hidden.sum()) > 0


def test_layers_are_lifted_with_the_rules_whatever_the_scenes_size():
    """A 256-px scene (2.56 km) is large enough for the CNN under ``--mask auto``; its layer must
    still come from the spectral rules, so that the layers (and the benchmarks and training
    built on them) do not change with the detector a size picks."""
    stack = open_optical(CR_CLOUDY_S2, S2_PAPER10)
    raw, _ = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    ms = raw.astype(np.float32) / 10_000
    scene = SimpleNamespace(ms=ms, bands=S2_PAPER10, product_level="l1c", name="cr")
    [(_, layer)] = scene_layers([scene])
    valid = np.ones(ms.shape[1:], bool)
    rules = detect_array(ms, S2_PAPER10, valid, "l1c", options=MaskOptions(method="rules", dilate_px=0)).classes
    assert torch.equal(layer.alpha, extract_layer(ms, S2_PAPER10, rules, valid, source="cr").alpha)


def test_a_placed_layer_turns_its_sun_with_it():
    """A layer's sun turns and flips with the layer (an opaque dot north-east of the centre
    stands for its direction), and is unknown where mirrored copies fill a larger scene."""
    import math

    alpha = torch.zeros(9, 9)
    alpha[1, 6] = 1.0  # 3 rows up, 2 columns right of the centre
    layer = CloudLayer(alpha, torch.zeros(1, 9, 9), torch.ones(9, 9), ("B2",), "x", 33.69)
    for seed in range(8):
        placed = layer.placed(9, 9, seed)
        (r, c), = torch.nonzero(placed.alpha > 0.5).tolist()
        assert placed.sun_azimuth_deg == pytest.approx(math.degrees(math.atan2(c - 4, 4 - r)) % 360, abs=0.01)
    assert layer.placed(20, 20, 0).sun_azimuth_deg is None
