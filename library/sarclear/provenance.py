"""Provenance helpers: what a result was made from, for its metrics JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str | None:
    """SHA-256 of a file's bytes (hex), None when it is not a readable file."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with p.open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def run_provenance(model, inputs, options) -> dict:
    """What a decloud used, for its metrics JSON: the library version, the model file, its
    sha256 and bands, the inputs with their band mappings and radiometry decisions
    (:meth:`sarclear.io.RunInputs.provenance`), and the options (a dataclass)."""
    from . import __version__

    cfg = model.config
    return {"sarclear_version": __version__,
            "model": {"file": str(model.path) or None, "sha256": file_sha256(model.path) if model.path else None,
                      "preset": cfg.preset, "bands": list(cfg.bands), "sar_channels": list(cfg.sar_channels)},
            **inputs.provenance(),
            "options": {k: _plain(v) for k, v in dataclasses.asdict(options).items()}}
