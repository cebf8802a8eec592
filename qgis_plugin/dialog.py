"""The "Remove clouds" dialog: gathers the user's choices into :class:`RunParameters`.

It lists the project's raster layers (cloudy MS layer; one or more SAR layers; optional
reference and cloud mask), the model (the library's default for the project preselected: the
SAR-guided fill when SAR layers are there, the plain one without) and the device
(with what was detected), and the area: the current map extent, the MS layer's full extent
or a rectangle drawn on the map. The band matching (as the library will do it) is shown
before the run, editable where the library cannot name the bands; a mismatch is explained
and blocks Run. The run itself is started by the plugin (a background task); the dialog
shows its progress and can cancel it.

No computation here: band identification, model headers, device detection and pixel-grid
snapping are library calls.

:class:`SarclearDialog` is assembled from one mixin per concern, each in its own module:
widgets and layout (:mod:`.dialog_widgets`), inputs (:mod:`.dialog_inputs`), model, device
and dependencies (:mod:`.dialog_model`), band matching (:mod:`.dialog_bands`), area
(:mod:`.dialog_area`) and output naming (:mod:`.dialog_output`); this module wires them
together and runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from qgis.core import QgsCoordinateReferenceSystem, QgsMapLayer, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtWidgets import QDialog, QMessageBox, QWidget

from . import layers
from .dialog_area import AREA_CANVAS, AREA_DRAWN, AREA_LAYER, DialogArea
from .dialog_bands import DialogBands
from .dialog_inputs import DialogInputs
from .dialog_model import DialogModel
from .dialog_output import DialogOutput, safe_file_name
from .dialog_widgets import ERROR_STYLE, HELP_URL, DialogWidgets
from .environment import dependencies_found, plugin_icon
from .models import bundled_entries, model_label
from .task import ProbeTask, RunParameters

__all__ = ["AREA_CANVAS", "AREA_DRAWN", "AREA_LAYER", "HELP_URL", "SarclearDialog", "safe_file_name"]


class SarclearDialog(DialogWidgets, DialogInputs, DialogModel, DialogBands, DialogArea, DialogOutput, QDialog):
    """Build the run's parameters; ``start_run(params)`` (the plugin's) starts the task and
    returns it."""

    def __init__(self, iface, start_run: Callable[[RunParameters], object], parent: QWidget | None = None):
        super().__init__(parent or iface.mainWindow())
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.start_run = start_run
        self.task = None
        self.model_config = None  # sarclear.networks.ModelConfig of the chosen model
        self.missing = dependencies_found()  # no import here: torch loads in a background task
        self.probe: ProbeTask | None = None
        self.probes: list[ProbeTask] = []  # keep the Python wrappers alive while they run
        self.cuda: tuple[bool, str] | None = None
        # the library imports torch (seconds, the first time): no library call in this
        # thread until a background task has imported it
        self.library_ready = "torch" in sys.modules
        self.models = bundled_entries()
        self.auto_model: str | None = None  # the model the dialog chose itself, until the user chooses
        self.bundled_sar_channels: dict[str, tuple[str, ...]] = {}  # bundled model -> its SAR channels
        self.ms_order: list[str] | None = None   # band names the user typed, file order
        self.ms_files: list[str] | None = None   # band files, a folder or a .SAFE instead of a layer
        self._ms_file_layer: QgsRasterLayer | None = None
        self.offset: layers.OffsetDecision | None = None
        self._output_chosen = False  # the user picked where to save: keep it
        self.seconds_per_tile: dict[tuple[str, str], float] = {}  # (model, device) -> measured
        self.sar_order: list[str] | None = None
        self.ms_match: layers.BandMatch | None = None
        self.sar_match: layers.BandMatch | None = None
        self.reference_match: layers.BandMatch | None = None
        self.drawn: tuple[QgsRectangle, QgsCoordinateReferenceSystem] | None = None
        self._previous_tool = None
        self.setWindowTitle("sarclear: remove clouds with SAR")
        self.setWindowIcon(plugin_icon())
        self._build()
        self._connect()
        self.prepare()

    def _connect(self) -> None:
        """Wire each widget to the mixin method that handles it, and follow the project's layers."""
        self.ms_combo.layerChanged.connect(self._ms_changed)
        self.ms_files_button.clicked.connect(self.pick_band_files)
        self.install_button.clicked.connect(self.install_dependencies)
        self.ms_folder_button.clicked.connect(self.pick_band_folder)
        self.ms_layer_button.clicked.connect(lambda: self.set_ms_files(None))
        self.offset_combo.currentIndexChanged.connect(self._offset_changed)
        self.offset_spin.valueChanged.connect(self._offset_changed)
        self.sar_list.itemChanged.connect(self._sar_changed)
        self.reference_combo.layerChanged.connect(self._update_bands)
        self.mask_combo.layerChanged.connect(self._mask_changed)
        self.model_widget.fileChanged.connect(self._model_changed)
        self.model_combo.activated.connect(self._model_chosen)
        self.adapt_option.changed.connect(self._update_area)  # the run's estimate includes the fitting
        self.area_group.buttonToggled.connect(lambda *_: self._update_area())
        self.draw_button.clicked.connect(self.start_drawing)
        self.extent_tool.extentChanged.connect(self._drawn)
        self.canvas.extentsChanged.connect(self._update_area)
        self.out_folder.toggled.connect(self.folder_widget.setEnabled)
        self.out_group.buttonToggled.connect(lambda *_: self._update_output_info())
        self.out_group.buttonClicked.connect(lambda *_: setattr(self, "_output_chosen", True))
        self.buttons.rejected.connect(self.close)
        self.dock_button.toggled.connect(lambda docked: self.on_dock(docked) if self.on_dock else None)
        self.buttons.helpRequested.connect(self.show_help)
        self.compare_button.clicked.connect(self.flip_result)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_changed)
        project.layersRemoved.connect(self._layers_changed)

    def _mask_changed(self, layer: QgsMapLayer | None) -> None:
        """A cloud mask layer is used as it is: the options of automatic detection grey out."""
        self.buffer_option.set_detecting(layer is None)
        self.sun_option.set_detecting(layer is None)

    def set_result(self, layer: QgsMapLayer | None) -> None:
        """The last run's reconstruction, for the before/after flip."""
        self.result_layer_id = layer.id() if layer is not None else None
        self.compare_button.setEnabled(layer is not None)

    def flip_result(self) -> bool:
        """Hide the reconstruction (the cloudy input shows: before) or show it again (after);
        True when the reconstruction is shown."""
        node = QgsProject.instance().layerTreeRoot().findLayer(self.result_layer_id or "")
        if node is None:
            self.set_result(None)
            return False
        node.setItemVisibilityChecked(not node.itemVisibilityChecked())
        return node.itemVisibilityChecked()

    def cleanup(self) -> None:
        """Disconnect from the project and the canvas (the plugin calls this on unload)."""
        for probe in self.probes:
            probe.on_finished = None
        self.probe = None
        project = QgsProject.instance()
        for signal, slot in ((project.layersAdded, self._layers_changed),
                             (project.layersRemoved, self._layers_changed),
                             (self.canvas.extentsChanged, self._update_area),
                             (self.extent_tool.extentChanged, self._drawn)):
            with contextlib.suppress(TypeError):
                signal.disconnect(slot)
        for child in self.findChildren(QObject):  # the layer combos follow the project until deleted
            child.blockSignals(True)
        if self.canvas.mapTool() is self.extent_tool:
            self.canvas.unsetMapTool(self.extent_tool)
        self.extent_tool.deleteLater()

    def prepare(self) -> None:
        """Fill the dialog from the project: model, device, SAR list; guess the MS and SAR
        layers when none is chosen yet."""
        if not self.model_widget.filePath() and self.models:
            self.auto_model = str(self.models[0].path)  # the SAR default replaces it if SAR layers are there
            self.model_widget.setFilePath(self.auto_model)  # -> _model_changed
        elif self.model_config is None and self.probe is None:
            self._model_changed(self.model_widget.filePath())
        self._choose_output()
        self._fill_sar_list()
        self._guess_layers()
        self._update_bands()
        self._update_area()
        self.fit()

    def _update_run_button(self) -> None:
        running = self.task is not None
        ready = not self.missing and self.model_config is not None and self.band_problems() is None
        self.run_button.setEnabled(ready and not running)
        self.cancel_button.setEnabled(running)

    def parameters(self) -> RunParameters:
        """The run the dialog describes; raises the library's InputError for a bad choice."""
        from sarclear.errors import InputError

        ms = self.ms_layer()
        if ms is None:
            raise InputError("choose the cloudy Sentinel-2 layer")
        if self.area_mode() == AREA_DRAWN and self.drawn is None:
            raise InputError("draw the area on the map first (Draw on map…), or choose another area")
        name = self.numbered(self.name_edit.text().strip() or self.default_name())
        reference = self.reference_combo.currentLayer()
        mask = self.mask_combo.currentLayer()
        return RunParameters(
            name=name,
            ms=self.ms_paths(),
            sar=layers.layers_paths(self.sar_layers()) if self.model_config is None or self.model_config.uses_sar
            else [],
            model=self.model_widget.filePath(),
            out=str(self.output_folder() / f"{safe_file_name(name)}.tif"),
            reference=layers.layer_paths(reference) if reference is not None else None,
            cloud_mask=layers.layer_paths(mask)[0] if mask is not None else "auto",
            device=self.device_combo.currentData(),
            aoi=self.aoi(),
            ms_bands=self.ms_order,
            sar_channels=self.sar_order,
            model_label=model_label(self.model_widget.filePath(),
                                    self.model_config.sar_channels if self.model_config else None),
            extra={**({} if self.offset_choice() is None else {"ms_offset": self.offset_choice()}),
                   **self.buffer_option.options(), **self.level_option.options(),
                   **self.sun_option.options(), **self.adapt_option.options()},
        )

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        """Ask before replacing files; True to replace them."""
        listing = "\n".join(str(p) for p in existing)
        answer = QMessageBox.question(self, "sarclear: replace files?",
                                      f"These files exist and would be replaced:\n{listing}\n\nReplace them?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def run(self) -> None:
        """Start the run in the background (the plugin's task)."""
        from sarclear.errors import SarclearError

        from .task import output_files

        try:
            params = self.parameters()
        except SarclearError as exc:
            from .messages import describe

            self.show_status(describe(exc), error=True)
            return
        existing = [p for p in output_files(params.out, params.reference is not None) if p.exists()]
        if existing:
            if not self.confirm_overwrite(existing):
                self.show_status("Not run: choose another run name or folder.", error=True)
                return
            params.overwrite = True
        self.progress.setValue(0)
        self.show_status(f"Running {params.name}…")
        self.task = self.start_run(params)
        if self.task is not None:
            self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
            stage = getattr(self.task, "stageChanged", None)
            if stage is not None:
                stage.connect(lambda text, name=params.name: self.show_status(f"{name}: {text}"))
        self._update_run_button()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.show_status("Cancelling…")

    def run_finished(self, task, message: str, error: bool) -> None:
        """Called by the plugin when the task ends (main thread)."""
        if task is self.task:
            self.task = None
            result = task.result
            if result is not None and result.tiles:  # this machine's speed, for the next estimate
                fitting = task.params.extra.get("adapt_seconds", 0.0) if task.params.extra.get("adapt") else 0.0
                self.seconds_per_tile[(task.params.model, task.params.device)] = \
                    max(result.seconds - fitting, 0.0) / result.tiles
            self.progress.setValue(100 if result is not None else 0)
            self.show_status(message, error=error)
            self._update_run_button()

    def show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")
        self.fit()  # a longer message must not squeeze the inputs
