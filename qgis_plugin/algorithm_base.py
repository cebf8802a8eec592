"""What the Processing algorithms share: the base class (names from class attributes, icon,
help link, library errors -> :class:`QgsProcessingException` with the library's message,
progress through the feedback), the metric outputs, and the styling of outputs when
Processing loads them (the same styles as the dialog's runs).
"""

from __future__ import annotations

import re
from typing import ClassVar

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsRasterLayer,
)

from . import layers
from .environment import missing_dependencies, plugin_icon

#: number outputs: output name -> (key of the library's metrics, description)
METRIC_OUTPUTS = {"RMSE": ("rmse", "RMSE (reflectance)"), "SAM_DEG": ("sam_deg", "SAM (degrees)"),
                  "MAE": ("mae", "MAE (reflectance)"), "PSNR": ("psnr", "PSNR (dB)"), "SSIM": ("ssim", "SSIM")}
_HELP_URL = "https://github.com/sarclear/sarclear#qgis-plugin"


def _names(text: str | None) -> list[str] | None:
    """'B2, B3 B4' -> ['B2', 'B3', 'B4']; empty -> None."""
    names = [t for t in re.split(r"[,;\s]+", text or "") if t]
    return names or None


def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return param


class ResultStyle(QgsProcessingLayerPostProcessorInterface):
    """Styles an output when Processing loads it into the project: true colour for images,
    pseudocolour with units for maps (the same styles as the dialog's runs)."""

    _instances: ClassVar[dict[str, ResultStyle]] = {}  # Processing holds a C++ pointer: keep them alive

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    @classmethod
    def get(cls, key: str) -> ResultStyle:
        """``key``: "output" (true colour) or a map name ("rmse", "sam", "opacity")."""
        if key not in cls._instances:
            cls._instances[key] = cls(key)
        return cls._instances[key]

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            layers.style_result(layer, self.key)


def _style_on_load(context: QgsProcessingContext, path: str, key: str) -> None:
    """When Processing will load ``path`` (toolbox, runAndLoadResults), style it."""
    if path and context.willLoadLayerOnCompletion(path):
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(ResultStyle.get(key))


class _SarclearAlgorithm(QgsProcessingAlgorithm):
    """Shared: names from the class attributes, icon, help link, instance creation, and
    turning library errors into Processing errors."""

    NAME = DISPLAY_NAME = GROUP = GROUP_ID = HELP = ""  # set by each algorithm

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:
        return self.GROUP_ID

    def shortHelpString(self) -> str:
        return self.HELP

    def createInstance(self):
        return type(self)()

    def icon(self):
        return plugin_icon()

    def helpUrl(self) -> str:
        return _HELP_URL

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict:
        missing = missing_dependencies()
        if missing:
            raise QgsProcessingException(missing)
        from sarclear.errors import Cancelled, SarclearError

        try:
            return self.compute(parameters, context, feedback)
        except Cancelled:
            raise QgsProcessingException("cancelled; nothing was written") from None
        except SarclearError as exc:
            from .messages import describe

            raise QgsProcessingException(describe(exc, "processing")) from None

    def compute(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        raise NotImplementedError

    @staticmethod
    def progress(feedback: QgsProcessingFeedback):
        def report(done: int, total: int, what: str) -> None:
            feedback.setProgress(100.0 * done / max(total, 1))
        return report

    @staticmethod
    def metric_outputs(metrics: dict | None) -> dict:
        return {key: (metrics or {}).get(name) for key, (name, _) in METRIC_OUTPUTS.items()}

    def add_metric_outputs(self) -> None:
        for key, (_, description) in METRIC_OUTPUTS.items():
            self.addOutput(QgsProcessingOutputNumber(key, description))
