"""The dialog's area of interest: the current map extent, the whole MS layer or a rectangle
drawn on the map; the area in the MS layer's CRS (the library snaps it to the pixel grid),
its size in pixels and tiles, and the inputs that do not cover it.
"""

from __future__ import annotations

from qgis.core import Qgis, QgsRectangle

from . import layers
from .dialog_widgets import ERROR_STYLE

AREA_CANVAS, AREA_LAYER, AREA_DRAWN = "canvas", "layer", "drawn"


class DialogArea:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: the area choice, drawing it, and
    checking that the chosen layers cover it."""

    def coverage_problems(self) -> list[str]:
        """The chosen layers that do not cover the area, and where they lie, in words."""
        ms = self.ms_layer()
        if ms is None:
            return []
        problems = []
        mode = self.area_mode()
        if mode == AREA_CANVAS:
            area, crs, what = self.canvas.extent(), self.canvas.mapSettings().destinationCrs(), "the map extent"
        elif mode == AREA_DRAWN and self.drawn is not None:
            (area, crs), what = self.drawn, "the drawn rectangle"
        else:
            area, crs, what = ms.extent(), ms.crs(), "the Sentinel-2 layer"
        if area.isEmpty() or not crs.isValid():  # a canvas that shows nothing yet
            area, crs, what = ms.extent(), ms.crs(), "the Sentinel-2 layer"
        elif mode != AREA_LAYER and not layers.intersects(ms, area, crs):
            problems.append(f"Area: the Sentinel-2 layer '{ms.name()}' does not cover {what}; it lies "
                            f"{layers.where_is(ms.extent(), ms.crs(), area, crs)}. Zoom to the layer, or "
                            "choose Whole MS layer.")
            return problems
        if self.model_config is None or self.model_config.uses_sar:
            # the run reads the part of the MS layer inside the area: the SAR must cover that
            covered = QgsRectangle(ms.extent())
            if mode != AREA_LAYER:
                covered = covered.intersect(QgsRectangle(*layers.extent_in_crs(area, crs, ms.crs())))
            for sar in self.sar_layers():
                if not layers.intersects(sar, covered, ms.crs()):
                    where = layers.where_is(sar.extent(), sar.crs(), covered, ms.crs())
                    problems.append(f"Sentinel-1: the layer '{sar.name()}' does not cover the Sentinel-2 layer "
                                    f"within {what}; it lies {where}. Tick a SAR layer that covers the Sentinel-2 "
                                    "area.")
        return problems

    def start_drawing(self) -> None:
        """Let the user drag a rectangle on the map (the dialog hides meanwhile)."""
        self._previous_tool = self.canvas.mapTool()
        self.canvas.setMapTool(self.extent_tool)
        self.hide()
        self.iface.messageBar().pushMessage("sarclear", "Drag a rectangle on the map: the area to decloud.",
                                            Qgis.MessageLevel.Info, 5)

    def _drawn(self, rect: QgsRectangle) -> None:
        if rect.isEmpty():
            return
        self.drawn = (QgsRectangle(rect), self.canvas.mapSettings().destinationCrs())
        self.extent_tool.clearRubberBand()
        if self._previous_tool is not None:
            self.canvas.setMapTool(self._previous_tool)
        else:
            self.canvas.unsetMapTool(self.extent_tool)
        self.area_drawn.setEnabled(True)
        self.area_drawn.setChecked(True)
        self._update_area()
        self.show()
        self.raise_()

    def area_mode(self) -> str:
        if self.area_layer.isChecked():
            return AREA_LAYER
        return AREA_DRAWN if self.area_drawn.isChecked() else AREA_CANVAS

    def aoi(self) -> tuple[float, float, float, float] | None:
        """The area in the MS layer's CRS (None: all of it). The library snaps it to the
        layer's pixel grid."""
        ms = self.ms_layer()
        mode = self.area_mode()
        if mode == AREA_LAYER or ms is None:
            return None
        if mode == AREA_DRAWN and self.drawn is not None:
            rect, crs = self.drawn
        else:
            rect, crs = self.canvas.extent(), self.canvas.mapSettings().destinationCrs()
        return layers.extent_in_crs(rect, crs, ms.crs())

    def _update_area(self, *_args) -> None:
        ms = self.ms_layer()
        if ms is None or self.missing or not self.library_ready:
            self.area_info.setText("")
            return
        from sarclear.errors import SarclearError

        try:
            width, height = layers.area_pixels(layers.layer_paths(ms)[0], self.aoi())
        except SarclearError as exc:
            where = [p for p in self.coverage_problems() if p.startswith("Area:")]
            from .messages import describe

            self.area_info.setText(where[0] if where else describe(exc))
            self.area_info.setStyleSheet(ERROR_STYLE)
            self._update_status()
            return
        what = {AREA_CANVAS: "the current map extent", AREA_LAYER: "the whole layer",
                AREA_DRAWN: "the drawn rectangle"}[self.area_mode()]
        self.area_info.setText(f"{width} x {height} pixels of {ms.name()} ({what}, snapped to its pixel grid, "
                               f"{ms.crs().authid() or 'layer CRS'}){self.estimate(width, height)}")
        self.area_info.setStyleSheet("")
        self._update_status()

    def estimate(self, width: int, height: int) -> str:
        """The run's size in tiles and, once a run with this model and device has been
        timed on this machine, its duration at that speed; the time that fitting the model
        to the scene adds, when chosen."""
        cfg = self.model_config
        if cfg is None:
            return ""
        from sarclear.tiling import tile_offsets

        overlap = cfg.tile_size // 4  # the library's default overlap
        tiles = len(tile_offsets(width, cfg.tile_size, overlap)) * len(tile_offsets(height, cfg.tile_size, overlap))
        text = f"; {tiles} tile{'s' if tiles != 1 else ''} of {cfg.tile_size} px"
        rate = self.seconds_per_tile.get((self.model_widget.filePath(), self.device_combo.currentData()))
        if rate is not None:
            text += f", about {max(1, round(rate * tiles))} s at the speed of the last run"
        fitting = self.adapt_option.estimate_text()
        return text + (f"; {fitting}" if fitting else "")
