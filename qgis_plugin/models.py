"""The models the dialog offers: every model file bundled in ``resources/models``, labelled
for what it is (a demo, an MS-only twin), each with its model card.

Only file names and cards here (no torch): whether a model reads SAR comes from its header,
which the dialog reads in a background task (:class:`~qgis_plugin.task.ProbeTask`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelEntry:
    """A bundled model as the dialog lists it."""

    path: Path
    card: Path | None     # its model card (Markdown), if there is one

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def demo(self) -> bool:
        return is_demo(self.path)


def is_demo(path: str | Path) -> bool:
    """A demo model (trained on a few scenes to show the pipeline): ``demo`` in its name."""
    return "demo" in re.split(r"[-_.]", Path(path).stem.lower())


def card_for(path: Path) -> Path | None:
    """The model card of ``path``: ``<name>.md`` beside it, else the folder's README.md."""
    for candidate in (path.with_suffix(".md"), path.parent / "README.md"):
        if candidate.is_file():
            return candidate
    return None


def card_summary(card: Path | None, name: str, limit: int = 600) -> str:
    """The card's section about ``name`` (or its first paragraphs), as plain text for a
    tooltip."""
    if card is None:
        return "No model card."
    text = card.read_text(encoding="utf-8", errors="replace")
    start = text.find(f"`{name}.safetensors`")
    start = text.rfind("\n#", 0, start) + 1 if start > 0 else 0
    section = text[start:].splitlines()
    end = next((k for k, line in enumerate(section) if k and line.startswith("#")), len(section))
    lines = [line for line in section[:end] if line.strip() and not line.startswith("|")]
    summary = re.sub(r"[*`#]", "", " ".join(lines))
    return summary[:limit].rstrip() + ("…" if len(summary) > limit else "")


def bundled_entries() -> list[ModelEntry]:
    """Every model file shipped with this installation: the library's default first (the
    dialog preselects it), the demo model last."""
    from sarclear.resources import DEFAULT_MODELS, bundled_models

    first = DEFAULT_MODELS[0]
    models = sorted(bundled_models(), key=lambda p: (p.name != first, is_demo(p), p.stem))
    return [ModelEntry(p, card_for(p)) for p in models]


def model_label(path: str | Path, sar_channels: tuple[str, ...] | None = None) -> str:
    """How a model is named in the dialog and in output layer names: ``demo model`` for a
    demo, else its file name; ``MS-only`` when it reads no SAR."""
    label = f"{Path(path).stem} (demo model)" if is_demo(path) else Path(path).stem
    if sar_channels is not None and not sar_channels:
        label += ", MS-only: no SAR"
    return label
