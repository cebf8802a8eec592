"""Networks (paper, lite, MS-only twin) and model files (safetensors + JSON config)."""

import dataclasses
import json
import struct

import pytest
import torch

from sarclear import checkpoint, networks
from sarclear.errors import CheckpointError


def test_paper_preset_has_the_papers_close_to_170_million_weights():
    cfg = networks.preset("paper")
    g, d = networks.build(cfg, discriminator=True)
    assert (cfg.in_channels, cfg.out_channels) == (12, 10)
    total = networks.count_parameters(g) + networks.count_parameters(d)
    assert total == pytest.approx(170.5e6, abs=0.05e6)
    # the 1024-feature bottleneck: the innermost encoder level has 1024 filters at 1 x 1
    assert cfg.encoder_filters[-1] == 1024 and cfg.tile_size / cfg.size_multiple == 1


def test_lite_preset_is_a_few_million_weights_and_twins_drop_only_the_sar_inputs():
    lite, twin = networks.preset("lite"), networks.preset("lite-ms")
    g, _ = networks.build(lite)
    assert 1e6 < networks.count_parameters(g) < 6e6
    assert twin.sar_channels == () and twin.in_channels == 10
    assert twin.encoder_filters == lite.encoder_filters and twin.bands == lite.bands


def test_generator_shapes_range_and_dropout_placement():
    cfg = networks.preset("lite")
    g, d = networks.build(cfg, discriminator=True)
    g.eval()
    ms, sar = torch.rand(2, 10, 128, 128) * 2 - 1, torch.rand(2, 2, 128, 128) * 2 - 1
    y = g(ms, sar)
    assert y.shape == (2, 10, 128, 128) and y.abs().max() <= 1
    assert torch.equal(y, g(ms, sar))  # eval mode: deterministic
    assert d(torch.cat([ms, sar], 1), y).shape == (2, 1, 14, 14)
    drops = [i for i, up in enumerate(g.up) if any(isinstance(m, torch.nn.Dropout) for m in up.modules())]
    assert drops == [len(g.up) - 3, len(g.up) - 2, len(g.up) - 1]
    assert all(m.p == 0.4 for m in g.modules() if isinstance(m, torch.nn.Dropout))


def test_twin_runs_without_sar():
    g, _ = networks.build(networks.preset("lite-ms"))
    assert g(torch.zeros(1, 10, 128, 128)).shape == (1, 10, 128, 128)


def test_model_file_round_trip_rebuilds_the_same_network(tmp_path):
    cfg = networks.preset("lite")
    g, _ = networks.build(cfg)
    g.eval()
    path = checkpoint.save_model(tmp_path / "m.safetensors", g, cfg, {"data": "test"})
    m = checkpoint.load_model(path)
    assert m.config == cfg and m.info["data"] == "test"
    x, s = torch.rand(1, 10, 128, 128), torch.rand(1, 2, 128, 128)
    assert torch.equal(m.generator(x, s), g(x, s))
    header_cfg, _ = checkpoint.read_header(path)
    assert header_cfg.sar_db_range == {"VV": (-25.0, 0.0), "VH": (-32.5, 0.0)}


def test_pickle_checkpoints_are_refused_without_being_opened(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(networks.build(networks.preset("lite"))[0].state_dict(), path)
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.load_model(path)


def test_a_model_whose_header_length_starts_like_a_pickle_still_loads(tmp_path):
    """A safetensors file starts with its header length; when that length's low byte is 0x80,
    the file's first byte equals a pickle's. It must load, not be refused as a pickle."""
    cfg = dataclasses.replace(networks.preset("fill-ms"), fill_sigma=(1.4, 0.01, 0.7))
    good = checkpoint.save_model(tmp_path / "m.safetensors", networks.build(cfg)[0], cfg)
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header, body = data[8:8 + n].rstrip(), data[8 + n:]
    target = len(header) + (0x80 - len(header)) % 256  # JSON may end in spaces (safetensors pads so)
    shifted = tmp_path / "shifted.safetensors"
    shifted.write_bytes(struct.pack("<Q", target) + header.ljust(target) + body)
    assert shifted.read_bytes()[:1] == b"\x80"
    m = checkpoint.load_model(shifted)
    assert m.config == cfg and m.config.fill_sigma == (1.4, 0.01, 0.7)
    for bad in ((1.4,), (1.4, 0.01, 0.7, 1.0), (1.4, -0.01)):
        with pytest.raises(ValueError, match="fill_sigma must be"):
            dataclasses.replace(cfg, fill_sigma=bad)


def test_truncated_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    cfg = networks.preset("lite")
    good = checkpoint.save_model(tmp_path / "m.safetensors", networks.build(cfg)[0], cfg)
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load_model(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a safetensors model"):
        checkpoint.load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no such model file"):
        checkpoint.load_model(tmp_path / "missing.safetensors")


def _rewrite_config(src, dst, **changes):
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    cfg = json.loads(header["__metadata__"]["sarclear_config"])
    cfg.update(changes)
    header["__metadata__"]["sarclear_config"] = json.dumps(cfg)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def test_newer_format_and_config_weight_mismatch_are_refused(tmp_path):
    cfg = networks.preset("lite")
    good = checkpoint.save_model(tmp_path / "m.safetensors", networks.build(cfg)[0], cfg)
    _rewrite_config(good, tmp_path / "new.safetensors", format_version=networks.FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="newer sarclear"):
        checkpoint.load_model(tmp_path / "new.safetensors")
    _rewrite_config(good, tmp_path / "bad.safetensors", encoder_filters=[16, 32, 64, 64, 64, 64, 64])
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        checkpoint.load_model(tmp_path / "bad.safetensors")
