"""The ``sarclear`` Processing provider: the algorithms of :mod:`.algorithms` in the
toolbox, ``processing.run("sarclear:...")``, the batch interface and the modeler."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .environment import icon_path, plugin_icon


class SarclearProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "sarclear"

    def name(self) -> str:
        return "sarclear"

    def longName(self) -> str:
        return "sarclear: cloud removal for Sentinel-2 with Sentinel-1 SAR"

    def icon(self):
        return plugin_icon()

    def svgIconPath(self) -> str:
        return str(icon_path())

    def loadAlgorithms(self) -> None:
        from .algorithms import ALGORITHMS

        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]  # the library writes GeoTIFF

    def defaultRasterFileExtension(self) -> str:
        return "tif"
