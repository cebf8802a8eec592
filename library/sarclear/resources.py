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
#: The default model, the first of these that is installed: normalized-convolution fill of the
#: masked pixels (no learned part). The learned mask-aware models (sarclear-fill with SAR, its
#: MS-only twin) beat it on the synthetic-cloud benchmark but lost to it, and to mean fill, on
#: real clouds (docs/QUALITY.md), so they are chosen with --model until they win there too.
DEFAULT_MODELS = ("sarclear-fill-classic.safetensors", "sarclear-fill.safetensors", DEMO_MODEL)
#: The default when SAR is given, ahead of :data:`DEFAULT_MODELS`: the same fill guided by SAR
#: (sarclear.sar_guide), each hidden pixel filled from the clear pixels that look like it in SAR.
DEFAULT_SAR_MODELS = ("sarclear-fill-guided.safetensors",)


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


def default_model(with_sar: bool = False) -> Path:
    """The first of :data:`DEFAULT_MODELS` that is installed, or with SAR given
    (``with_sar``), of :data:`DEFAULT_SAR_MODELS` and then those; raises
    :class:`CheckpointError` if none is."""
    root = resources_dir()
    for name in (*DEFAULT_SAR_MODELS, *DEFAULT_MODELS) if with_sar else DEFAULT_MODELS:
        if root is not None and (root / "models" / name).is_file():
            return root / "models" / name
    raise CheckpointError(
        f"no bundled model ({', '.join(DEFAULT_MODELS)}) is installed here; give a model file "
        "(a sarclear training run writes one)", input="model", option="model")
