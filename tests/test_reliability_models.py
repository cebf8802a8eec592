"""Damaged, NaN or hostile model files are refused before they cost memory or produce an
empty image (issue 15, items 2 and 3; docs/RELIABILITY.md lists the cases)."""

import json
import shutil
import time

import pytest
import torch
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2
from safetensors.torch import load_file, save_file

from sarclear import checkpoint, networks
from sarclear.cli import main
from sarclear.errors import CheckpointError
from sarclear.inference import decloud
from sarclear.resources import default_model


def _lite(seed=0):
    torch.manual_seed(seed)
    cfg = networks.preset("lite")
    return networks.build(cfg)[0], cfg


def _file_without_checksum(path, tensors, config_dict):
    """A model file as older sarclear versions wrote it: config, no checksum."""
    save_file(tensors, str(path), metadata={checkpoint.CONFIG_KEY: json.dumps(config_dict), "format": "pt"})
    return path


# ---------------------------------------------------------------- 2. corrupt or NaN weights


def test_nan_weights_are_refused_at_load_naming_the_file_and_tensor(tmp_path):
    g, cfg = _lite()
    with torch.no_grad():
        g.down[2].block[1].weight[0, 0, 0, 0] = float("nan")
    path = checkpoint.save_model(tmp_path / "nan.safetensors", g, cfg)
    with pytest.raises(CheckpointError, match=r"nan.safetensors: 1 of the \d+ values of down.2.block.1.weight are "
                                              "NaN or infinite"):
        checkpoint.load_model(path)


def test_a_bundled_model_with_4_kb_flipped_is_refused_by_its_checksum(tmp_path, capsys):
    damaged = tmp_path / "M.safetensors"
    shutil.copy(default_model(), damaged)
    data = bytearray(damaged.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(b ^ 0xFF for b in data[mid:mid + 4096])
    damaged.write_bytes(data)
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        checkpoint.load_model(damaged)
    out = tmp_path / "o.tif"
    code = main(["decloud", "--ms", str(CR_CLOUDY_S2), "--sar", str(CR_CLOUDY_S1), "--model", str(damaged),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and str(damaged) in err and "checksum" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["M.safetensors"]


def test_finite_but_damaged_weights_without_a_checksum_fail_on_the_first_batch(tmp_path):
    g, cfg = _lite()
    tensors = {k: v.clone() for k, v in g.state_dict().items()}
    tensors["down.0.block.0.weight"][:] = 3e38  # finite, but every activation overflows to inf, then NaN
    path = _file_without_checksum(tmp_path / "old.safetensors", tensors, cfg.to_dict())
    model = checkpoint.load_model(path)  # nothing to see in the values themselves
    with pytest.raises(CheckpointError, match=r"old.safetensors: the model computed NaN or infinite values"):
        decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, model, tmp_path / "o.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.safetensors"]


def test_weights_of_the_wrong_shape_or_dtype_are_refused_from_the_header(tmp_path):
    g, cfg = _lite()
    tensors = {k: v.clone() for k, v in g.state_dict().items()}
    tensors["up.0.block.1.weight"] = tensors["up.0.block.1.weight"][:, :5].contiguous()  # 5 bands, not 10
    path = _file_without_checksum(tmp_path / "shape.safetensors", tensors, cfg.to_dict())
    with pytest.raises(CheckpointError, match=r"up.0.block.1.weight has shape \[64, 5, 4, 4\], the config needs "
                                              r"\[64, 10, 4, 4\]"):
        checkpoint.load_model(path)
    tensors = {k: v.clone() for k, v in g.state_dict().items()}
    tensors["down.0.block.0.weight"] = tensors["down.0.block.0.weight"].to(torch.int32)
    path = _file_without_checksum(tmp_path / "dtype.safetensors", tensors, cfg.to_dict())
    with pytest.raises(CheckpointError, match=r"down.0.block.0.weight is stored as I32, the config needs"):
        checkpoint.load_model(path)


def test_save_and_load_keep_the_checksum_and_the_weights(tmp_path):
    g, cfg = _lite(seed=3)
    path = checkpoint.save_model(tmp_path / "m.safetensors", g, cfg)
    model = checkpoint.load_model(path)
    stored = load_file(str(path))
    assert checkpoint.tensors_digest(stored) == checkpoint.tensors_digest(g.state_dict())
    assert all(torch.equal(v, model.generator.state_dict()[k]) for k, v in g.state_dict().items())


# ---------------------------------------------------------------- 3. hostile configs


@pytest.mark.parametrize(("change", "message"), [
    ({"encoder_filters": [12000] * 7}, r"encoder_filters\[0\] is 12000, outside 1..4096"),
    ({"encoder_filters": [4096] * 10, "tile_size": 1024}, "would have [0-9,]+ million weights, more than the 500"),
    ({"tile_size": 2**27}, "tile_size is 134217728, outside 16..2048"),
    ({"tile_size": "256"}, "model config is invalid"),
    ({"encoder_filters": "abc"}, r"encoder_filters\[0\] is 'a', not a whole number"),
    ({"dropout": float("nan")}, "dropout is nan"),
    ({"bands": []}, "bands has 0 entries"),
    ({"sar_db_range": [1, 2]}, "model config is invalid"),
    ({"discriminator_filters": [64, -1, 256, 512]}, r"discriminator_filters\[1\] is -1"),
])
def test_a_model_config_beyond_sane_bounds_is_refused_before_anything_is_built(tmp_path, change, message):
    _, cfg = _lite()
    path = _file_without_checksum(tmp_path / "evil.safetensors", {"x": torch.zeros(1)}, {**cfg.to_dict(), **change})
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load_model(path)
    assert time.perf_counter() - t0 < 5  # refused from the header: nothing was allocated or built


def test_every_preset_fits_the_limits():
    for name, cfg in networks.PRESETS.items():
        assert checkpoint.config_problems(cfg) == [], name
        checkpoint.expected_tensors(cfg)
