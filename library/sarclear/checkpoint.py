"""Model files: safetensors weights with the JSON model config in the file's header.

A model file is data, never code: the generator's tensors in safetensors format, and in the
safetensors metadata the :class:`~sarclear.networks.ModelConfig` as JSON (preset, band set,
SAR channels and their dB ranges, filters, tile size, format version) plus free-form JSON
information (training data, metrics). Loading rebuilds the architecture from the config and
then fills in the weights; nothing is ever unpickled, and a pickle file (``torch.save``
output) is refused with an explanation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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
DIGEST_KEY = "sarclear_sha256"  # of the tensors (names, dtypes, shapes, bytes): detects damage


@dataclass(frozen=True)
class Limit:
    """What one config field may hold: values of ``kind`` within [``low``, ``high``]; for a
    sequence field, ``count`` bounds its length and each element is checked."""

    kind: type
    low: float | None = None
    high: float | None = None
    count: tuple[int, int] | None = None  # (min, max) length: the field is a sequence


#: Bounds every model config is checked against BEFORE anything is built from it, so a small
#: file cannot demand a huge allocation or a model no device can run. One row per field; a
#: new model kind adds rows for its own fields (fields a config lacks are skipped).
CONFIG_LIMITS: dict[str, Limit] = {
    "preset": Limit(str),
    "bands": Limit(str, count=(1, 32)),
    "sar_channels": Limit(str, count=(0, 8)),
    "encoder_filters": Limit(int, 1, 4096, count=(1, 10)),
    "discriminator_filters": Limit(int, 1, 4096, count=(0, 8)),  # none: a kind trained without one
    "kind": Limit(str),
    "dropout": Limit(float, 0.0, 0.99),
    "dropout_levels": Limit(int, 0, 10),
    "tile_size": Limit(int, 16, 2048),
    "format_version": Limit(int, 0, FORMAT_VERSION),
    "blind": Limit(bool),
    "sar_guide": Limit(float, 0.0, 60.0),  # dB between class nodes: the fill's cost grows as its inverse square
}
#: Largest generator accepted (the paper preset has 168 million weights).
MAX_GENERATOR_PARAMETERS = 500_000_000
#: safetensors dtype names each torch dtype of the architecture may be stored as
_STORED_AS = {torch.float32: ("F32", "F16", "BF16", "F64"), torch.int64: ("I64",)}


def _check_value(name: str, value: Any, limit: Limit) -> str | None:
    if limit.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if limit.kind is bool:
        return None if isinstance(value, bool) else f"{name} is {value!r}, not true or false"
    if not isinstance(value, limit.kind) or isinstance(value, bool):
        return f"{name} is {value!r}, not {'a whole number' if limit.kind is int else limit.kind.__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is {value}"
    if (limit.low is not None and value < limit.low) or (limit.high is not None and value > limit.high):
        return f"{name} is {value}, outside {limit.low}..{limit.high}"
    return None


def config_problems(config: Any, limits: dict[str, Limit] = CONFIG_LIMITS) -> list[str]:
    """What in ``config`` (a dataclass) breaks ``limits``; empty when it is sane."""
    problems = []
    for name, limit in limits.items():
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        if limit.count is None:
            problem = _check_value(name, value, limit)
            problems += [problem] if problem else []
            continue
        if not isinstance(value, (tuple, list)):
            problems.append(f"{name} is {value!r}, not a list")
            continue
        lo, hi = limit.count
        if not lo <= len(value) <= hi:
            problems.append(f"{name} has {len(value)} entries, allowed {lo}..{hi}")
        problems += [p for i, v in enumerate(value[:hi]) if (p := _check_value(f"{name}[{i}]", v, limit))]
    return problems


def expected_tensors(config: ModelConfig) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """The generator's tensors for ``config`` (name -> dtype, shape), from a model built on
    PyTorch's meta device: no memory is allocated, whatever the config asks for."""
    with torch.device("meta"):
        generator, _ = build(config)
    n = sum(p.numel() for p in generator.parameters())
    if n > MAX_GENERATOR_PARAMETERS:
        raise ValueError(f"its generator would have {n / 1e6:,.0f} million weights, more than the "
                         f"{MAX_GENERATOR_PARAMETERS / 1e6:,.0f} million sarclear accepts")
    return {k: (v.dtype, tuple(v.shape)) for k, v in generator.state_dict().items()}


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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
        DIGEST_KEY: tensors_digest(tensors),
        "format": "pt",
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_header(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The config and information of a model file, without loading its weights."""
    path = Path(path)
    metadata, _ = _safetensors_header(path)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a sarclear model (no "
                              f"'{CONFIG_KEY}' in its metadata); use a model written by sarclear (a training run, or "
                              "sarclear.checkpoint.save_model)", input="model", option="model")
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
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: its model config is not a JSON object")
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{path}: its model config is invalid ({exc})") from None
    problems = config_problems(config)
    if problems:
        raise CheckpointError(f"{path}: its model config is invalid or beyond sarclear's limits "
                              f"({'; '.join(problems)}); the file was altered or mis-exported")
    return config, info


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Rebuild the generator from the file's config and load its weights (eval mode)."""
    path = Path(path)
    config, info = read_header(path)
    metadata, stored = _safetensors_header(path)
    try:  # the architecture on the meta device (no memory), to check the file before reading it
        expected = expected_tensors(config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}; the file was altered or mis-exported") from None
    _check_tensor_table(path, expected, stored)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is damaged or "
                              "incomplete: download or export it again") from None
    if DIGEST_KEY in metadata and tensors_digest(tensors) != metadata[DIGEST_KEY]:
        raise CheckpointError(f"{path}: the weights do not match the checksum stored with them: the file "
                              "was damaged after it was written; download or export it again")
    _check_tensor_values(path, tensors)
    generator, _ = build(config)
    try:
        generator.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the architecture its config describes "
                              f"({first}); the file was altered or mis-exported") from None
    generator.to(device).eval()
    return Model(generator, config, info, str(path))


def _check_tensor_table(path: Path, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                        stored: dict[str, dict]) -> None:
    """The file's tensor names, dtypes and shapes (from its header) against the architecture."""
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    problems = [f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"] if missing else []
    problems += [f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}"] if extra else []
    for name in sorted(set(expected) & set(stored)):
        dtype, shape = expected[name]
        got_dtype, got_shape = stored[name].get("dtype"), tuple(stored[name].get("shape", ()))
        if got_shape != shape:
            problems.append(f"{name} has shape {list(got_shape)}, the config needs {list(shape)}")
        elif got_dtype not in _STORED_AS.get(dtype, ()):
            problems.append(f"{name} is stored as {got_dtype}, the config needs {dtype}")
        if len(problems) >= 3:
            break
    if problems:
        raise CheckpointError(f"{path}: weights do not fit the architecture its config describes "
                              f"({'; '.join(problems)}); the file was altered or mis-exported")


def _check_tensor_values(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every weight finite, every batch-norm variance non-negative."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: {bad} of the {t.numel()} values of {name} are NaN or infinite: "
                                  "the weights are damaged (or the training diverged); use an intact model file")
        if name.endswith("running_var") and bool((t < 0).any()):
            raise CheckpointError(f"{path}: {name} holds negative variances: the weights are damaged; "
                                  "use an intact model file")


def _safetensors_header(path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """Read the safetensors header: its metadata and its tensor table (name -> dtype, shape,
    offsets), refusing anything that is not safetensors."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; check the path")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
        # safetensors: an 8-byte little-endian header length, then the JSON header ("{"); its
        # first byte may be 0x80 like a pickle's, so only a file without that shape is a pickle
        safetensors_shape = len(head) == 9 and head[8:9] == b"{"
        if not safetensors_shape and (head[:2] == b"PK" or head[:1] == b"\x80"):
            raise CheckpointError(
                f"{path}: this is a pickle checkpoint (torch.save). Loading it could run code "
                "hidden in the file, so sarclear never opens pickles. Ask for a .safetensors "
                "model, or convert a checkpoint you trust yourself: load it with torch and write its "
                "generator with sarclear.checkpoint.save_model", input="model", option="model")
        if len(head) < 8:
            raise CheckpointError(f"{path}: file is too short to be a model ({size} bytes)")
        (n,) = struct.unpack("<Q", head[:8])
        f.seek(8)
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
    table = {k: t for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: not a safetensors model (its metadata is not a table of texts)")
    try:
        ends = [int(t["data_offsets"][1]) for t in table.values() if "data_offsets" in t]
    except (TypeError, ValueError, IndexError, KeyError):
        raise CheckpointError(f"{path}: not a safetensors model (unreadable tensor offsets)") from None
    if ends and 8 + n + max(ends) > size:
        raise CheckpointError(f"{path}: file is truncated ({size} bytes, needs {8 + n + max(ends)}); "
                              "download or export it again")
    return meta, table


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata (see :func:`_safetensors_header`)."""
    return _safetensors_header(path)[0]
