"""The dialog's "Fit the model to this scene first" option (scene-adaptive fitting).

:func:`sarclear.adapt.adapt_model` fine-tunes a copy of a mask-aware (gap-fill) model on the
scene's own clear pixels, with synthetic clouds drawn over them, for a time budget, before
the scene is declouded. Without a fixed step count the library's estimate of that time is
the budget itself (:func:`sarclear.adapt.estimate_seconds`), so the option shows the budget,
in words, before the run: "adds about 3 min". Other models cannot be fitted (the library
refuses them): the option is then disabled and its tooltip says why.

No library import here: the model's kind comes from the header the dialog has read.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSpinBox, QWidget

DEFAULT_SECONDS = 180            # as sarclear.inference.DecloudOptions.adapt_seconds
MIN_SECONDS, MAX_SECONDS = 10, 3600
FITTABLE_KIND = "gapfill"        # sarclear.adapt fits mask-aware models only
SCENE_MODEL = "sarclear-fill-scene"  # the bundled model made for fitting (sarclear.adapt.SCENE_MODEL)

_HELP = ("Before declouding, fine-tune a copy of the model on this scene's own clear pixels (with synthetic "
         "clouds drawn over them) for the time set here, then decloud with it. The model file is not changed. "
         "It helps most where the scene differs from the data the model learned from; a GPU fits more in "
         "the same time.")


def duration_words(seconds: float) -> str:
    """A duration as a person says it: "45 s", "3 min", "1 h", "1 h 30 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def unavailable_reason(config, name: str, info: dict | None = None) -> str | None:
    """Why the model (its ``ModelConfig``, None while unknown, and the information stored
    with it) cannot be fitted to the scene, or None if it can (as sarclear.adapt.fit_problem)."""
    if config is None:
        return "Choose a model first: fitting to the scene needs a mask-aware gap-fill model."
    if config.kind != FITTABLE_KIND:
        return (f"Not available for {name}: it is not a mask-aware gap-fill model (it is a {config.kind} model), "
                f"and only those can be fitted to the scene. Choose {SCENE_MODEL} (made for it) or sarclear-fill.")
    if (info or {}).get("fixed"):
        return (f"Not available for {name}: a fixed classical fill has nothing to learn from the scene. Choose "
                f"{SCENE_MODEL}: it starts as the same fill and learns from this scene's clear pixels and SAR.")
    return None


class AdaptOption(QWidget):
    """Checkbox, time budget (seconds) and the time it adds; ``changed`` on any change."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.checkbox = QCheckBox("Fit the model to this scene first")
        self.time_spin = QSpinBox()
        self.time_spin.setRange(MIN_SECONDS, MAX_SECONDS)
        self.time_spin.setSingleStep(30)
        self.time_spin.setSuffix(" s")
        self.time_spin.setValue(DEFAULT_SECONDS)
        self.estimate_label = QLabel()
        self.available = False  # the chosen model can be fitted (set_model)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.checkbox)
        row.addWidget(self.time_spin)
        row.addWidget(self.estimate_label, 1)
        self.checkbox.toggled.connect(lambda *_: self._update())
        self.time_spin.valueChanged.connect(lambda *_: self._update())
        self.set_model(None)

    def set_model(self, config, name: str = "this model", info: dict | None = None) -> None:
        """Enable the option for a model that can be fitted (``config``: its ``ModelConfig``,
        None while it is being read; ``info``: its file information); otherwise disable and
        untick it, saying why."""
        reason = unavailable_reason(config, name, info)
        if reason is not None:
            self.checkbox.setChecked(False)
        self.available = reason is None
        self.setEnabled(self.available)
        for widget in (self, self.checkbox, self.estimate_label):
            widget.setToolTip(reason or _HELP)
        self.time_spin.setToolTip(reason or f"Time budget of the fitting, in seconds ({duration_words(MIN_SECONDS)} "
                                   f"to {duration_words(MAX_SECONDS)})")
        self._update()

    def seconds(self) -> float:
        return float(self.time_spin.value())

    def active(self) -> bool:
        """The run will fit the model first."""
        return self.available and self.checkbox.isChecked()  # not isEnabled(): a disabled parent would count

    def options(self) -> dict:
        """The DecloudOptions fields of this choice (none when off)."""
        return {"adapt": True, "adapt_seconds": self.seconds()} if self.active() else {}

    def estimate_text(self) -> str:
        """What the option adds to the run, in words ("" when off)."""
        return f"fitting the model to this scene first adds about {duration_words(self.seconds())}" \
            if self.active() else ""

    def _update(self) -> None:
        self.estimate_label.setText(f"adds about {duration_words(self.seconds())}")
        self.changed.emit()
