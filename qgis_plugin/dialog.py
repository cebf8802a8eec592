"""The "Remove clouds" dialog: gathers the user's choices into :class:`RunParameters`.

It lists the project's raster layers (cloudy MS layer; one or more SAR layers; optional
reference and cloud mask), the model (the default model preselected) and the device
(with what was detected), and the area: the current map extent, the MS layer's full extent
or a rectangle drawn on the map. The band matching (as the library will do it) is shown
before the run, editable where the library cannot name the bands; a mismatch is explained
and blocks Run. The run itself is started by the plugin (a background task); the dialog
shows its progress and can cancel it.

No computation here: band identification, model headers, device detection and pixel-grid
snapping are library calls.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox, QgsMapToolExtent
from qgis.PyQt.QtCore import QObject, QSize, Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import layers
from .adapt_option import AdaptOption
from .environment import dependencies_found, plugin_icon, python_problem
from .models import bundled_entries, card_summary, model_label
from .task import STAGE_LOADING, ProbeTask, RunParameters

AREA_CANVAS, AREA_LAYER, AREA_DRAWN = "canvas", "layer", "drawn"
HELP_URL = "https://github.com/sarclear/sarclear#qgis-plugin"
_ERROR_STYLE = "color: #b00020;"
_OK_STYLE = "color: #1b5e20;"


def safe_file_name(text: str) -> str:
    """A run name as a file name: letters, digits, '-', '_' and '.'."""
    name = re.sub(r"[^\w.-]+", "_", text.strip(), flags=re.ASCII).strip("._")
    return name or "sarclear"


def _raster_combo(tooltip: str, optional: bool = False) -> QgsMapLayerComboBox:
    """A combo box of the project's raster layers; an optional one starts empty."""
    combo = QgsMapLayerComboBox()
    combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
    combo.setToolTip(tooltip)
    if optional:
        combo.setAllowEmptyLayer(True)
        combo.setLayer(None)
    return combo


def _info_label(selectable: bool = False) -> QLabel:
    """A wrapping label for status and information text; ``selectable`` where a user may want
    to copy it (errors, dependency instructions)."""
    label = QLabel()
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class SarclearDialog(QDialog):
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

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        root = QVBoxLayout(self)

        self.dependency_label = _info_label(selectable=True)
        self.dependency_label.setStyleSheet(_ERROR_STYLE)
        self.dependency_label.setVisible(bool(self.missing))
        self.dependency_label.setText(self.missing or "")
        root.addWidget(self.dependency_label)
        install_row = QHBoxLayout()
        self.install_button = QPushButton("Install dependencies…")
        self.install_button.setToolTip("Install PyTorch, safetensors and the cloud mask into the Python that QGIS "
                                       "runs, with pip, keeping QGIS's numpy; the commands are shown first")
        self.install_cuda = QCheckBox("PyTorch for an NVIDIA GPU (CUDA; larger download)")
        install_row.addWidget(self.install_button)
        install_row.addWidget(self.install_cuda)
        install_row.addStretch(1)
        self.install_box = QWidget()
        self.install_box.setLayout(install_row)
        self.install_box.setVisible(bool(self.missing) and python_problem() is None)
        root.addWidget(self.install_box)
        self.install_task = None
        # left: what and where; right: the band matching; in a scroll area, so the dialog
        # can be small (a laptop screen) without squeezing rows onto each other
        body = QWidget()
        columns = self.columns = QHBoxLayout(body)
        left, right = QVBoxLayout(), QVBoxLayout()
        columns.addLayout(left, 5)
        columns.addLayout(right, 4)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(body)
        root.addWidget(self.scroll, 1)

        inputs = QGroupBox("Inputs")
        form = QFormLayout(inputs)
        form.setVerticalSpacing(8)  # rows never touch (the SAR list has a fixed height)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.ms_combo = _raster_combo("The cloudy Sentinel-2 layer (one multi-band raster)")
        ms_row = QHBoxLayout()
        ms_row.addWidget(self.ms_combo, 1)
        self.ms_files_button = QPushButton("Band files…")
        self.ms_files_button.setToolTip("Pick the per-band files of one product (JP2 or GeoTIFF, e.g. *_B02.jp2 ..."
                                        " *_B12.jp2); each band is named from its file name")
        self.ms_folder_button = QPushButton("Folder / .SAFE…")
        self.ms_folder_button.setToolTip("Pick a folder of per-band files or a Sentinel-2 .SAFE folder; its band "
                                         "files are found and named from their file names")
        ms_row.addWidget(self.ms_files_button)
        ms_row.addWidget(self.ms_folder_button)
        form.addRow("Cloudy Sentinel-2 (MS)", ms_row)
        files_row = QHBoxLayout()
        self.ms_files_label = _info_label(selectable=True)
        self.ms_layer_button = QPushButton("Use a layer instead")
        files_row.addWidget(self.ms_files_label, 1)
        files_row.addWidget(self.ms_layer_button)
        self.ms_files_box = QWidget()
        self.ms_files_box.setLayout(files_row)
        self.ms_files_box.setVisible(False)
        form.addRow("", self.ms_files_box)
        self.sar_list = QListWidget()
        self.sar_list.setToolTip("Sentinel-1 layer(s): one multi-band layer (VV, VH) or one layer per polarisation. "
                                 "SAR on another grid or CRS is warped onto the MS grid.")
        self.sar_list.setFixedHeight(96)  # a fixed height: the form gives it exactly that, no overlap
        self.sar_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        form.addRow("Sentinel-1 SAR", self.sar_list)
        self.reference_combo = _raster_combo("A cloud-free Sentinel-2 image of the same place: the maps become "
                                             "errors against it and the metrics are reported", optional=True)
        form.addRow("Reference (optional)", self.reference_combo)
        self.mask_combo = _raster_combo("Cloud mask (band 1: 0 clear, > 0 cloud, or a cloud probability): clear "
                                        "pixels keep their values", optional=True)
        form.addRow("Cloud mask (optional)", self.mask_combo)
        left.addWidget(inputs)

        model_box = QGroupBox("Model and device")
        form = QFormLayout(model_box)
        self.model_combo = QComboBox()
        for entry in self.models:
            self.model_combo.addItem(model_label(entry.path), str(entry.path))
            self.model_combo.setItemData(self.model_combo.count() - 1, card_summary(entry.card, entry.name),
                                         Qt.ItemDataRole.ToolTipRole)
        self.model_combo.addItem("Other model file…", "")
        self.model_combo.setToolTip("The bundled models (hover for each model card) or a model file of your own")
        form.addRow("Model", self.model_combo)
        self.model_widget = QgsFileWidget()
        self.model_widget.setFilter("sarclear models (*.safetensors)")
        self.model_widget.setDialogTitle("Choose a sarclear model")
        self.model_widget.setToolTip("A sarclear model file (.safetensors, never a pickle)")
        form.addRow("", self.model_widget)
        self.model_info = _info_label()
        self.model_info.setOpenExternalLinks(True)
        form.addRow("", self.model_info)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto (GPU if usable, else CPU)", "auto")
        self.device_combo.addItem("CUDA GPU", "cuda")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.currentIndexChanged.connect(lambda *_: self._update_area())
        form.addRow("Device", self.device_combo)
        self.device_info = _info_label()
        form.addRow("", self.device_info)
        self.adapt_option = AdaptOption()  # enabled for a gap-fill model (_probed)
        form.addRow("Scene fitting", self.adapt_option)
        left.addWidget(model_box)

        area_box = QGroupBox("Area")
        area = QVBoxLayout(area_box)
        row = QHBoxLayout()
        self.area_canvas = QRadioButton("Current map extent")
        self.area_layer = QRadioButton("Whole MS layer")
        self.area_drawn = QRadioButton("Drawn rectangle")
        self.area_canvas.setChecked(True)
        self.area_drawn.setEnabled(False)
        self.area_group = QButtonGroup(self)
        for button in (self.area_canvas, self.area_layer, self.area_drawn):
            self.area_group.addButton(button)
            row.addWidget(button)
        area.addLayout(row)
        row = QHBoxLayout()
        self.draw_button = QPushButton("Draw on map…")
        self.draw_button.setToolTip("Hide this dialog and drag a rectangle on the map")
        row.addWidget(self.draw_button)
        self.area_info = _info_label()
        row.addWidget(self.area_info, 1)
        area.addLayout(row)
        left.addWidget(area_box)

        bands_box = QGroupBox("Band matching")
        bands = QVBoxLayout(bands_box)
        self.band_table = QTableWidget(0, 5)
        self.band_table.setHorizontalHeaderLabels(["Layer", "Band", "Name", "Model input", "Named from"])
        self.band_table.verticalHeader().setVisible(False)
        self.band_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.band_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.band_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 110)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)  # long source names elide
        self.band_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.band_table.setMinimumHeight(160)
        bands.addWidget(self.band_table)
        self.band_status = _info_label(selectable=True)
        bands.addWidget(self.band_status)
        offset_row = QHBoxLayout()
        offset_row.addWidget(QLabel("L2A offset"))
        self.offset_combo = QComboBox()
        for text, value in (("Automatic", "auto"), ("None (0)", "none"), ("-1000 (baseline 04.00 and later)", "-1000"),
                            ("Custom", "custom")):
            self.offset_combo.addItem(text, value)
        self.offset_combo.setToolTip("Sentinel-2 products of processing baseline 04.00 and later (from 25 January "
                                     "2022) add 1000 to every value; the offset removes it. Automatic: as the "
                                     "product declares it")
        self.offset_spin = QDoubleSpinBox()
        self.offset_spin.setRange(-10000.0, 10000.0)
        self.offset_spin.setDecimals(0)
        self.offset_spin.setValue(-1000.0)
        self.offset_spin.setEnabled(False)
        offset_row.addWidget(self.offset_combo, 1)
        offset_row.addWidget(self.offset_spin)
        bands.addLayout(offset_row)
        self.offset_info = _info_label(selectable=True)
        bands.addWidget(self.offset_info)
        right.addWidget(bands_box, 1)

        out_box = QGroupBox("Output")
        form = QFormLayout(out_box)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("layer group and file name (default: MS layer name and time)")
        form.addRow("Run name", self.name_edit)
        where = QHBoxLayout()
        self.out_project = QRadioButton("Project folder")
        self.out_project.setToolTip("A 'sarclear' folder next to the project file (save the project first)")
        self.out_temp = QRadioButton("Temporary folder")
        self.out_temp.setToolTip("QGIS deletes its temporary folder when it exits")
        self.out_folder = QRadioButton("Folder:")
        self.out_temp.setChecked(True)
        self.folder_widget = QgsFileWidget()
        self.folder_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder_widget.setEnabled(False)
        where.addWidget(self.out_project)
        where.addWidget(self.out_temp)
        where.addWidget(self.out_folder)
        where.addStretch(1)
        form.addRow("Save to", where)
        form.addRow("", self.folder_widget)
        self.out_info = _info_label()
        form.addRow("", self.out_info)
        self.out_group = QButtonGroup(self)
        for button in (self.out_project, self.out_temp, self.out_folder):
            self.out_group.addButton(button)
        left.addWidget(out_box)
        left.addStretch(1)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        root.addWidget(self.progress)
        self.status_label = _info_label(selectable=True)
        root.addWidget(self.status_label)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close | QDialogButtonBox.StandardButton.Help)
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button = self.buttons.addButton("Cancel run", QDialogButtonBox.ButtonRole.ActionRole)
        self.compare_button = self.buttons.addButton("Before / after", QDialogButtonBox.ButtonRole.ActionRole)
        self.compare_button.setToolTip("Hide or show the last reconstruction over the cloudy input (same stretch)")
        self.compare_button.setEnabled(False)
        self.result_layer_id: str | None = None
        self.dock_button = self.buttons.addButton("Dock", QDialogButtonBox.ButtonRole.ActionRole)
        self.dock_button.setCheckable(True)
        self.dock_button.setToolTip("Dock this panel beside the map (one column), or float it again")
        self.on_dock: Callable[[bool], None] | None = None  # set by the plugin
        self.cancel_button.setEnabled(False)
        root.addWidget(self.buttons)
        self.resize(self.compact_size())

        self.extent_tool = QgsMapToolExtent(self.canvas)

    def _connect(self) -> None:
        self.ms_combo.layerChanged.connect(self._ms_changed)
        self.ms_files_button.clicked.connect(self.pick_band_files)
        self.install_button.clicked.connect(self.install_dependencies)
        self.ms_folder_button.clicked.connect(self.pick_band_folder)
        self.ms_layer_button.clicked.connect(lambda: self.set_ms_files(None))
        self.offset_combo.currentIndexChanged.connect(self._offset_changed)
        self.offset_spin.valueChanged.connect(self._offset_changed)
        self.sar_list.itemChanged.connect(self._sar_changed)
        self.reference_combo.layerChanged.connect(self._update_bands)
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

    def set_docked(self, docked: bool) -> None:
        """Lay the panel out for a dock beside the map (one column) or as a window."""
        self.columns.setDirection(QBoxLayout.Direction.TopToBottom if docked else QBoxLayout.Direction.LeftToRight)
        self.dock_button.blockSignals(True)
        self.dock_button.setChecked(docked)
        self.dock_button.setText("Float" if docked else "Dock")
        self.dock_button.blockSignals(False)

    def show_help(self) -> bool:
        """Open the plugin's help page (the README's QGIS plugin section) in the browser."""
        from qgis.PyQt.QtCore import QUrl
        from qgis.PyQt.QtGui import QDesktopServices

        return QDesktopServices.openUrl(QUrl(HELP_URL))

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

    # ------------------------------------------------------------------ state

    def raster_layers(self) -> list[QgsRasterLayer]:
        """The project's valid raster layers in layer-tree order (layers just added, not yet
        in the tree, last)."""
        project = QgsProject.instance()
        ordered = project.layerTreeRoot().layerOrder()
        ordered += [layer for layer in project.mapLayers().values() if layer not in ordered]
        return [layer for layer in ordered if isinstance(layer, QgsRasterLayer) and layer.isValid()]

    def prepare(self) -> None:
        """Fill the dialog from the project: model, device, SAR list; guess the MS and SAR
        layers when none is chosen yet."""
        if not self.model_widget.filePath() and self.models:
            self.model_widget.setFilePath(str(self.models[0].path))  # -> _model_changed
        elif self.model_config is None and self.probe is None:
            self._model_changed(self.model_widget.filePath())
        self._choose_output()
        self._fill_sar_list()
        self._guess_layers()
        self._update_bands()
        self._update_area()
        self.fit()

    def compact_size(self) -> QSize:
        """The dialog's size: what its contents prefer, within 90 % of the screen (the
        contents scroll when it is smaller)."""
        wanted = self.scroll.widget().sizeHint() + QSize(40, 160)
        screen = self.screen().availableGeometry().size() if self.screen() is not None else QSize(1280, 720)
        return wanted.boundedTo(QSize(int(screen.width() * 0.9), int(screen.height() * 0.9)))

    def fit(self) -> None:
        """Grow to the preferred size (wrapped labels need more height than Qt's minimum
        size accounts for), never beyond the screen: the contents scroll instead."""
        self.resize(self.size().expandedTo(self.compact_size()))

    def _fill_sar_list(self) -> None:
        checked = set(self.sar_layer_ids())
        self.sar_list.blockSignals(True)
        self.sar_list.clear()
        for layer in self.raster_layers():
            item = QListWidgetItem(layer.name())
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.id() in checked else Qt.CheckState.Unchecked)
            item.setToolTip(layer.source())
            self.sar_list.addItem(item)
        self.sar_list.blockSignals(False)

    def selected_layers(self) -> list[QgsMapLayer]:
        """The layers selected in the Layers panel (the active one first)."""
        active = getattr(self.iface, "activeLayer", None)
        chosen = [active()] if callable(active) else []
        view = getattr(self.iface, "layerTreeView", None)
        if callable(view) and view() is not None:
            chosen += view().selectedLayers()
        return [layer for layer in chosen if layer is not None]

    def _guess_layers(self) -> None:
        """Propose inputs: the selected, visible layer that covers the map view before any
        other; SAR layers that cover the MS layer."""
        if self.missing or self.model_config is None:
            return
        view, view_crs = self.canvas.extent(), self.canvas.mapSettings().destinationCrs()
        candidates = layers.rank_layers(self.raster_layers(), self.selected_layers(), view, view_crs)
        ms = self.ms_combo.currentLayer()
        guess = layers.guess_ms_layer(candidates, self.model_config.bands) if self.ms_files is None else None
        selected = {layer.id() for layer in self.selected_layers()}
        if guess is not None and guess is not ms and (
                ms is None or not layers.match_bands([ms], "optical", self.model_config.bands).ok
                or not layers.intersects(ms, view, view_crs)
                or (guess.id() in selected and layers.intersects(guess, view, view_crs))):
            self.ms_combo.setLayer(guess)  # -> _ms_changed
            self.set_sar_layers([])
        if not self.sar_layer_ids():
            ms = self.ms_layer()
            others = layers.by_date([c for c in candidates if c is not ms], ms)  # nearest in time first
            if ms is not None:  # those that cover the MS layer first
                others.sort(key=lambda c: not layers.intersects(c, ms.extent(), ms.crs()))
            self.set_sar_layers(layers.guess_sar_layers(others, self.model_config.sar_channels))

    # ------------------------------------------------------------------ dependencies

    def install_dependencies(self) -> None:
        """Show the pip commands, and on the user's yes run them in a background task."""
        from .install import InstallTask, install_plan, qgis_python

        python = qgis_python()
        if python is None:
            self.show_status("The Python that QGIS runs was not found next to QGIS; install the packages by hand "
                             "(see above).", error=True)
            return
        plan = install_plan(python, "cuda" if self.install_cuda.isChecked() else "cpu")
        answer = QMessageBox.question(
            self, "sarclear: install dependencies?",
            f"These commands will run (a download of several hundred MB):\n\n{plan.text()}\n\n"
            + "\n".join(plan.notes) + "\n\nRun them now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.install_task = InstallTask(plan, self._installed)
        self.install_task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.install_button.setEnabled(False)
        self.show_status("Installing PyTorch and the other dependencies with pip…")
        from qgis.core import QgsApplication

        QgsApplication.taskManager().addTask(self.install_task)

    def _installed(self, task) -> None:
        """Main thread: the installation ended."""
        self.install_task = None
        self.install_button.setEnabled(True)
        if task.error:
            self.show_status(f"Installing the dependencies failed: {task.error}", error=True)
            self.progress.setValue(0)
        else:
            self.show_status("Dependencies installed. Restart QGIS to use them.")
            self.progress.setValue(100)

    # ------------------------------------------------------------------ MS source

    def ms_layer(self) -> QgsRasterLayer | None:
        """The MS input as a layer: the chosen layer or, for band files / a folder / a SAFE, a
        layer of its finest band file (for the extent and CRS; not added to the project)."""
        if self.ms_files is None:
            return self.ms_combo.currentLayer()
        return self._ms_file_layer

    def ms_sources(self) -> list[tuple[str, str]]:
        """(label, path) of the MS input: the layer's file, or the picked files / folder."""
        if self.ms_files is not None:
            return [(Path(p).name, p) for p in self.ms_files]
        ms = self.ms_combo.currentLayer()
        return [(ms.name(), p) for p in layers.layer_paths(ms)] if ms is not None else []

    def ms_paths(self) -> list[str]:
        return [p for _, p in self.ms_sources()]

    def set_ms_files(self, paths: list[str] | None) -> None:
        """Read the MS input from band files, a folder or a SAFE (None: from the layer)."""
        self.ms_files = list(paths) if paths else None
        self._ms_file_layer = None
        if self.ms_files:
            finest = layers.finest_file(self.ms_files)
            if finest is not None:
                self._ms_file_layer = QgsRasterLayer(finest, Path(finest).name, "gdal")
            what = (f"{len(self.ms_files)} band files in {Path(self.ms_files[0]).parent}" if len(self.ms_files) > 1
                    else str(self.ms_files[0]))
            self.ms_files_label.setText(f"Reading {what}")
        self.ms_files_box.setVisible(self.ms_files is not None)
        self.ms_combo.setEnabled(self.ms_files is None)
        self._ms_changed()

    def pick_band_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Per-band files of one Sentinel-2 product", "",
                                                "Rasters (*.jp2 *.tif *.tiff *.vrt);;All files (*)")
        if files:
            self.set_ms_files(files)

    def pick_band_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of band files or a Sentinel-2 .SAFE")
        if folder:
            self.set_ms_files([folder])

    def sar_layer_ids(self) -> list[str]:
        return [self.sar_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.sar_list.count())
                if self.sar_list.item(i).checkState() == Qt.CheckState.Checked]

    def sar_layers(self) -> list[QgsMapLayer]:
        project = QgsProject.instance()
        return [project.mapLayer(i) for i in self.sar_layer_ids() if project.mapLayer(i) is not None]

    def set_sar_layers(self, chosen: list[QgsMapLayer]) -> None:
        ids = {layer.id() for layer in chosen}
        self.sar_list.blockSignals(True)
        for i in range(self.sar_list.count()):
            item = self.sar_list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in ids
                               else Qt.CheckState.Unchecked)
        self.sar_list.blockSignals(False)
        self._sar_changed()

    def _layers_changed(self, *_args) -> None:
        self._fill_sar_list()
        self._update_bands()

    def _ms_changed(self, *_args) -> None:
        self.ms_order = None
        self._update_bands()
        self._update_area()

    def _sar_changed(self, *_args) -> None:
        self.sar_order = None
        self._update_bands()

    def _model_chosen(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path:
            self.model_widget.setFilePath(path)
        else:
            self.model_widget.setFocus()
        self.model_widget.setEnabled(not path)

    def _select_model_entry(self, path: str) -> None:
        index = self.model_combo.findData(path)
        self.model_combo.setCurrentIndex(index if index >= 0 else self.model_combo.count() - 1)
        self.model_widget.setEnabled(index < 0)

    def ready(self) -> bool:
        """True once the model's header has been read (the background probe ended)."""
        return self.probe is None

    def _model_changed(self, path: str) -> None:
        """A model was chosen: read its header in the background (torch loads there)."""
        self.model_config = None
        self.adapt_option.set_model(None)
        self._select_model_entry(path)
        if self.missing:
            self.model_info.setText("The model cannot be read until PyTorch is installed (see above).")
            self._update_bands()
            return
        if not path:
            self.model_info.setText("Choose a model file (.safetensors); no model is installed here.")
            self.model_info.setStyleSheet(_ERROR_STYLE)
            self._update_bands()
            return
        self.model_info.setText(STAGE_LOADING)
        self.model_info.setStyleSheet("")
        self.probe = ProbeTask(path, [str(e.path) for e in self.models], self._probed)
        self.probes.append(self.probe)
        from qgis.core import QgsApplication

        QgsApplication.taskManager().addTask(self.probe)
        self._update_bands()

    def _probed(self, probe: ProbeTask) -> None:
        """Main thread: the probe ended; show the model, the device, and match the bands."""
        if probe in self.probes:
            self.probes.remove(probe)
        if probe is not self.probe:
            return  # another model was chosen meanwhile
        self.probe = None
        self.library_ready = not probe.missing
        if probe.missing:
            self.missing = probe.missing
            self.dependency_label.setText(probe.missing)
            self.dependency_label.setVisible(True)
            self.install_box.setVisible(python_problem() is None)
            self.model_info.setText("The model cannot be read until PyTorch is installed (see above).")
            self._update_bands()
            return
        self.cuda = probe.cuda
        for path, channels in probe.sar_channels.items():
            index = self.model_combo.findData(path)
            if index >= 0:
                self.model_combo.setItemText(index, model_label(path, channels))
        self._update_device_info()
        if probe.error:
            self.model_info.setText(probe.error)
            self.model_info.setStyleSheet(_ERROR_STYLE)
        else:
            config = self.model_config = probe.config
            sar = ", ".join(config.sar_channels) or "none (MS-only model: the SAR list is not used)"
            entry = next((e for e in self.models if str(e.path) == probe.model), None)
            card = (f' <a href="{entry.card.as_uri()}">model card</a>' if entry is not None and entry.card
                    else "")
            demo = ("<b>Demo model</b> (trained on a few scenes to show the pipeline; not for analysis). "
                    if "demo model" in model_label(probe.model) else "")
            self.model_info.setText(f"{demo}{config.preset} model, tiles of {config.tile_size} px; reads bands "
                                    f"{', '.join(config.bands)} and SAR {sar}.{card}")
            self.model_info.setStyleSheet("")
        self.sar_list.setEnabled(self.model_config is None or self.model_config.uses_sar)
        self.adapt_option.set_model(self.model_config, model_label(probe.model), probe.info)
        self._guess_layers()
        self._update_bands()
        self._update_area()
        self.fit()

    def _update_device_info(self) -> None:
        if self.missing or self.cuda is None:
            self.device_info.setText("")
            return
        usable, description = self.cuda
        self.device_combo.model().item(1).setEnabled(usable)
        if usable:
            self.device_info.setText(f"GPU detected: {description}")
        else:
            self.device_info.setText(f"CUDA unavailable: {description}. Runs on the CPU.")
            if self.device_combo.currentData() == "cuda":
                self.device_combo.setCurrentIndex(0)

    # ------------------------------------------------------------------ bands

    def _update_bands(self) -> None:
        """Match the chosen layers' bands against the model's (library calls) and show it."""
        self.band_table.setRowCount(0)
        self.ms_match = self.sar_match = self.reference_match = None
        if self.missing:
            self.band_status.setText("Band matching needs PyTorch (see above).")
            self._update_run_button()
            return
        if not self.library_ready:
            self.band_status.setText(STAGE_LOADING)
            self.band_status.setStyleSheet("")
            self._update_run_button()
            return
        cfg = self.model_config
        from sarclear.errors import SarclearError

        try:
            sources = self.ms_sources()
        except SarclearError as exc:
            sources, self.ms_match = [], layers.BandMatch(problem=str(exc), named=False)
        if sources:
            self.ms_match = layers.match_paths(sources, "optical", cfg.bands if cfg else None, self.ms_order)
        sar = self.sar_layers()
        if sar and (cfg is None or cfg.uses_sar):
            self.sar_match = layers.match_bands(sar, "sar", cfg.sar_channels if cfg else None, self.sar_order)
        reference = self.reference_combo.currentLayer()
        self.reference_match = (layers.match_bands([reference], "optical", cfg.bands)
                                if reference is not None and cfg is not None else None)
        self._fill_band_table()
        self._update_offset()
        self._update_status()

    def offset_choice(self) -> float | None:
        """The offset the user chose (None: automatic, the library's rule)."""
        value = self.offset_combo.currentData()
        if value == "auto":
            return None
        if value == "custom":
            return float(self.offset_spin.value())
        return 0.0 if value == "none" else float(value)

    def _offset_changed(self, *_args) -> None:
        self.offset_spin.setEnabled(self.offset_combo.currentData() == "custom")
        self._update_offset()

    def _update_offset(self) -> None:
        """Show how the optical values will become reflectance (the library's decision)."""
        self.offset = None
        cfg = self.model_config
        if cfg is None or self.ms_match is None or not self.ms_match.ok:
            self.offset_info.setText("")
            return
        from sarclear.errors import SarclearError

        try:
            self.offset = layers.offset_decision(self.ms_paths(), cfg.bands, self.ms_order, self.offset_choice())
        except SarclearError as exc:
            from .messages import describe

            self.offset_info.setText(describe(exc))
            self.offset_info.setStyleSheet(_ERROR_STYLE)
            return
        text = self.offset.text
        if self.offset.warning:
            text += f"\nWarning: {self.offset.warning}"
        self.offset_info.setText(text)
        self.offset_info.setStyleSheet(_ERROR_STYLE if self.offset.warning else "")

    def _update_status(self) -> None:
        """Show what blocks the run (bands, coverage) or the band summary; enable Run."""
        problems = self.band_problems()
        self.band_status.setText(problems or self._band_summary())
        self.band_status.setStyleSheet(_ERROR_STYLE if problems else _OK_STYLE)
        self._update_run_button()

    def _fill_band_table(self) -> None:
        from sarclear.bands import S1_CHANNELS, S2_BANDS

        self.band_table.blockSignals(True)
        for match, sensor, choices in ((self.ms_match, "optical", S2_BANDS), (self.sar_match, "sar", S1_CHANNELS)):
            if match is None:
                continue
            for band in match.rows:
                r = self.band_table.rowCount()
                self.band_table.insertRow(r)
                self.band_table.setItem(r, 0, QTableWidgetItem(band.layer))
                self.band_table.setItem(r, 1, QTableWidgetItem(str(band.index)))
                combo = QComboBox()
                combo.addItems(["", *choices])
                combo.setCurrentText(band.name)
                combo.setToolTip("The band's name as read from the file (description or file name) or from the "
                                 "default order for its band count; change it if it is wrong or missing")
                combo.currentTextChanged.connect(lambda _text, s=sensor: self._names_edited(s))
                self.band_table.setCellWidget(r, 2, combo)
                used = "" if band.use is None else f"#{band.use + 1}"
                if band.use is None and match.ok and self.model_config is not None and band.name:
                    used = "not used"
                self.band_table.setItem(r, 3, QTableWidgetItem(used))
                named = f"{band.how}: {Path(band.source).name}" if band.source else band.how
                source = QTableWidgetItem(named)
                source.setToolTip(band.source or "how the band's name was found")
                self.band_table.setItem(r, 4, source)
        self.band_table.blockSignals(False)

    def _names_edited(self, sensor: str) -> None:
        """The user named bands: use the table's names, in file order, for that input."""
        names_ms, names_sar = [], []
        n_ms = len(self.ms_match.rows) if self.ms_match else 0
        for r in range(self.band_table.rowCount()):
            text = self.band_table.cellWidget(r, 2).currentText()
            (names_ms if r < n_ms else names_sar).append(text)
        if sensor == "optical":
            self.ms_order = names_ms
        else:
            self.sar_order = names_sar
        self._update_bands()

    def band_problems(self) -> str | None:
        """Why the chosen layers cannot feed the model (the library's words), or None."""
        cfg = self.model_config
        if self.ms_layer() is None and not self.ms_files:
            return "Choose the cloudy Sentinel-2 layer, its band files, or its folder or .SAFE."
        problems = []
        if self.ms_match is not None and not self.ms_match.ok:
            problems.append(f"Sentinel-2: {self.ms_match.problem}")
        if cfg is not None and cfg.uses_sar:
            if self.sar_match is None:
                problems.append(f"Sentinel-1: tick the layer(s) with {', '.join(cfg.sar_channels)}.")
            elif not self.sar_match.ok:
                problems.append(f"Sentinel-1: {self.sar_match.problem}")
        if self.reference_match is not None and not self.reference_match.ok:
            problems.append(f"Reference: {self.reference_match.problem}")
        problems += self.coverage_problems()
        return "\n".join(problems) or None

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

    def _band_summary(self) -> str:
        text = self._band_found()
        doubts = [m.warning for m in (self.ms_match, self.reference_match) if m is not None and m.warning]
        return "\n".join([text, *doubts])

    def _band_found(self) -> str:
        cfg = self.model_config
        if cfg is None:
            return STAGE_LOADING if self.probe is not None else "Choose a model to match the bands against."
        text = f"All {len(cfg.bands)} bands the model reads were found"
        if cfg.uses_sar:
            text += f", and the SAR channels {', '.join(cfg.sar_channels)}"
        return text + "."

    # ------------------------------------------------------------------ area

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
            self.area_info.setStyleSheet(_ERROR_STYLE)
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

    # ------------------------------------------------------------------ run

    def _update_run_button(self) -> None:
        running = self.task is not None
        ready = not self.missing and self.model_config is not None and self.band_problems() is None
        self.run_button.setEnabled(ready and not running)
        self.cancel_button.setEnabled(running)

    def default_name(self) -> str:
        ms = self.ms_layer()
        return f"{ms.name() if ms else 'sarclear'} declouded {time.strftime('%Y-%m-%d %H-%M-%S')}"

    @staticmethod
    def project_folder() -> Path | None:
        """``sarclear`` beside the project file; None while the project is not saved."""
        project = QgsProject.instance()
        return Path(project.absolutePath()) / "sarclear" if project.fileName() else None

    def _choose_output(self) -> None:
        """Offer the project folder once the project is saved, and prefer it to the
        temporary folder unless the user chose where to save."""
        folder = self.project_folder()
        self.out_project.setEnabled(folder is not None)
        if folder is None and self.out_project.isChecked():
            self.out_temp.setChecked(True)
        elif folder is not None and self.out_temp.isChecked() and not self._output_chosen:
            self.out_project.setChecked(True)
        self._update_output_info()

    def _update_output_info(self) -> None:
        """Where the outputs go; a warning that the temporary folder does not last."""
        folder = self.project_folder()
        if self.out_temp.isChecked():
            self.out_info.setText("The temporary folder is deleted when QGIS exits: export the layers you keep "
                                  "(right-click > Export > Save As…), or save the project to write next to it.")
            self.out_info.setStyleSheet(_ERROR_STYLE)
        elif self.out_project.isChecked():
            self.out_info.setText(f"Written to {folder}")
            self.out_info.setStyleSheet("")
        else:
            self.out_info.setText("")

    def output_folder(self) -> Path:
        if self.out_folder.isChecked() and self.folder_widget.filePath():
            return Path(self.folder_widget.filePath())
        if self.out_project.isChecked() and self.project_folder() is not None:
            folder = self.project_folder()
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        return Path(tempfile.mkdtemp(prefix="sarclear-", dir=QgsProcessingUtils.tempFolder()))

    @staticmethod
    def numbered(name: str) -> str:
        """``name``, numbered " (2)", " (3)"... if a layer group of that name exists (a
        repeated run): each run keeps its own group, layers and files."""
        root = QgsProject.instance().layerTreeRoot()
        if root.findGroup(name) is None:
            return name
        n = 2
        while root.findGroup(f"{name} ({n})") is not None:
            n += 1
        return f"{name} ({n})"

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
                   **self.adapt_option.options()},
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
        self.status_label.setStyleSheet(_ERROR_STYLE if error else "")
        self.fit()  # a longer message must not squeeze the inputs
