"""Where the bundled files are: the demo model and sample data.

In a source checkout they are in ``resources/`` at the repository root; in the QGIS plugin
zip, in ``resources/`` beside the ``sarclear`` package. ``SARCLEAR_RESOURCES`` overrides.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

#: File name of the shipped demo model (SAR-Opt-cGAN, lite preset).
DEMO_MODEL = "sarclear-lite-demo.safetensors"


def resources_dir() -> Path | None:
    """The bundled resources folder, or None if this installation has none."""
    env = os.environ.get("SARCLEAR_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for parent in (here.parent, here.parent.parent):
        candidate = parent / "resources"
        if (candidate / "models").is_dir():
            return candidate
    return None


def bundled_models() -> list[Path]:
    """Model files shipped with this installation."""
    root = resources_dir()
    return sorted((root / "models").glob("*.safetensors")) if root else []


def default_model() -> Path:
    """The shipped demo model; raises :class:`CheckpointError` if it is not installed."""
    root = resources_dir()
    path = root / "models" / DEMO_MODEL if root else None
    if path is None or not path.is_file():
        raise CheckpointError(
            f"the bundled demo model ({DEMO_MODEL}) is not installed here; give a model file "
            "(a sarclear training run writes one)", input="model", option="model")
    return path
