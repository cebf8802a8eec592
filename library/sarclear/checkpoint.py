"""Model files: safetensors weights with the JSON model config in the file's header.

A model file is data, never code: the generator's tensors in safetensors format, and in the
safetensors metadata the :class:`~sarclear.networks.ModelConfig` as JSON (preset, band set,
SAR channels and their dB ranges, filters, tile size, format version) plus free-form JSON
information (training data, metrics). Loading rebuilds the architecture from the config and
then fills in the weights; nothing is ever unpickled, and a pickle file (``torch.save``
output) is refused with an explanation.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .errors import CheckpointError
from .networks import FORMAT_VERSION, ModelConfig, build

log = logging.getLogger(__name__)

CONFIG_KEY = "sarclear_config"
INFO_KEY = "sarclear_info"


@dataclass
class Model:
    """A generator ready for inference, with its config and the file's information."""

    generator: nn.Module  # UNetGenerator or gapnet.GapFillGenerator, by config.kind
    config: ModelConfig
    info: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def save_model(path: str | os.PathLike, generator: nn.Module, config: ModelConfig,
               info: dict[str, Any] | None = None) -> Path:
    """Write ``generator``'s weights and ``config`` to ``path`` atomically (temp + rename)."""
    from . import __version__

    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point()
               else v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    metadata = {
        CONFIG_KEY: json.dumps(config.to_dict(), sort_keys=True),
        INFO_KEY: json.dumps({"sarclear_version": __version__, **(info or {})}, sort_keys=True, default=str),
        "format": "pt",
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_header(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The config and information of a model file, without loading its weights."""
    path = Path(path)
    metadata = _safetensors_metadata(path)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a sarclear model (no "
                              f"'{CONFIG_KEY}' in its metadata); export it with sarclear")
    try:
        raw = json.loads(metadata[CONFIG_KEY])
        info = json.loads(metadata.get(INFO_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its model config is not valid JSON ({exc})") from None
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: made by a newer sarclear (model format {version}, this version reads up to "
            f"{FORMAT_VERSION}); upgrade sarclear to use it")
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model config is invalid ({exc})") from None
    return config, info


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Rebuild the generator from the file's config and load its weights (eval mode)."""
    path = Path(path)
    config, info = read_header(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is damaged or "
                              "incomplete: download or export it again") from None
    generator, _ = build(config)
    try:
        generator.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the architecture its config describes "
                              f"({first}); the file was altered or mis-exported") from None
    generator.to(device).eval()
    return Model(generator, config, info, str(path))


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """Read the safetensors header's metadata, refusing anything that is not safetensors."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; check the path")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise CheckpointError(
                f"{path}: this is a pickle checkpoint (torch.save). Loading it could run code "
                "hidden in the file, so sarclear never opens pickles. Ask for a .safetensors "
                "model, or convert a checkpoint you trust with `sarclear export`")
        if len(head) < 8:
            raise CheckpointError(f"{path}: file is too short to be a model ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 * 2**20):
            raise CheckpointError(f"{path}: not a safetensors model, or truncated (header of {n} "
                                  f"bytes in a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: not a safetensors model (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors model (header is not a JSON object)")
    meta = header.get("__metadata__", {}) or {}
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
            and "data_offsets" in t]
    if ends and 8 + n + max(ends) > size:
        raise CheckpointError(f"{path}: file is truncated ({size} bytes, needs {8 + n + max(ends)}); "
                              "download or export it again")
    return meta
