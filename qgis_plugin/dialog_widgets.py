"""The dialog's widgets and layout: what each group box holds and in what order, and how the
panel sizes itself as a window or lays itself out in a dock beside the map.

Construction only: what the widgets do belongs to the other ``dialog_*`` modules, and their
signals are connected by :class:`~qgis_plugin.dialog.SarclearDialog`.
"""

from __future__ import annotations

from collections.abc import Callable

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox, QgsMapToolExtent
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from .adapt_option import AdaptOption
from .buffer_option import BufferOptions
from .environment import python_problem
from .level_option import LevelOption
from .models import card_summary, model_label
from .sun_option import SunOption

HELP_URL = "https://github.com/sarclear/sarclear#qgis-plugin"
ERROR_STYLE = "color: #b00020;"
OK_STYLE = "color: #1b5e20;"


def raster_combo(tooltip: str, optional: bool = False) -> QgsMapLayerComboBox:
    """A combo box of the project's raster layers; an optional one starts empty."""
    combo = QgsMapLayerComboBox()
    combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
    combo.setToolTip(tooltip)
    if optional:
        combo.setAllowEmptyLayer(True)
        combo.setLayer(None)
    return combo


def info_label(selectable: bool = False) -> QLabel:
    """A wrapping label for status and information text; ``selectable`` where a user may want
    to copy it (errors, dependency instructions)."""
    label = QLabel()
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class DialogWidgets:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: builds its widgets (``_build``,
    one method per group box) and sizes it. Reads ``missing``, ``models`` and ``canvas``,
    set before ``_build`` runs."""

    def _build(self) -> None:
        """Every widget, top to bottom: the dependency notice, the two columns (in a scroll
        area), the progress bar, the status line and the buttons."""
        root = QVBoxLayout(self)
        self._build_dependencies(root)
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
        left.addWidget(self._inputs_box())
        left.addWidget(self._model_box())
        left.addWidget(self._area_box())
        right.addWidget(self._bands_box(), 1)
        left.addWidget(self._output_box())
        left.addStretch(1)
        self._build_footer(root)
        self.resize(self.compact_size())

        self.extent_tool = QgsMapToolExtent(self.canvas)

    def _build_dependencies(self, root: QVBoxLayout) -> None:
        """What is missing (PyTorch...) and the button that installs it; hidden when all is there."""
        self.dependency_label = info_label(selectable=True)
        self.dependency_label.setStyleSheet(ERROR_STYLE)
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

    def _inputs_box(self) -> QGroupBox:
        """The cloudy MS layer (or its band files), the SAR layers, the reference, the mask and its buffers."""
        inputs = QGroupBox("Inputs")
        form = QFormLayout(inputs)
        form.setVerticalSpacing(8)  # rows never touch (the SAR list has a fixed height)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.ms_combo = raster_combo("The cloudy Sentinel-2 layer (one multi-band raster)")
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
        self.ms_files_label = info_label(selectable=True)
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
        self.reference_combo = raster_combo("A cloud-free Sentinel-2 image of the same place: the maps become "
                                             "errors against it and the metrics are reported", optional=True)
        form.addRow("Reference (optional)", self.reference_combo)
        self.mask_combo = raster_combo("Cloud mask (band 1: 0 clear, > 0 cloud, or a cloud probability; "
                                        "Sentinel-2's SCL and MSK_CLDPRB files are known by their names): clear "
                                        "pixels keep their values", optional=True)
        form.addRow("Cloud mask (optional)", self.mask_combo)
        self.buffer_option = BufferOptions()  # the mask buffer greys out with a mask layer (SarclearDialog)
        form.addRow("Mask buffer", self.buffer_option.mask_spin)
        form.addRow("Fill buffer", self.buffer_option.fill_spin)
        self.level_option = LevelOption()  # stays with a mask layer: the uncertainty reads the level
        form.addRow("Product level", self.level_option.combo)
        self.sun_option = SunOption()  # greys out with a mask layer (SarclearDialog)
        form.addRow("Sun azimuth", self.sun_option.spin)
        return inputs

    def _model_box(self) -> QGroupBox:
        """The model (bundled or a file), its description, the device and scene fitting."""
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
        self.model_info = info_label()
        self.model_info.setOpenExternalLinks(True)
        form.addRow("", self.model_info)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto (GPU if usable, else CPU)", "auto")
        self.device_combo.addItem("CUDA GPU", "cuda")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.currentIndexChanged.connect(lambda *_: self._update_area())
        form.addRow("Device", self.device_combo)
        self.device_info = info_label()
        form.addRow("", self.device_info)
        self.adapt_option = AdaptOption()  # enabled for a gap-fill model (_probed)
        form.addRow("Scene fitting", self.adapt_option)
        return model_box

    def _area_box(self) -> QGroupBox:
        """Map extent, whole layer or drawn rectangle, and the area's size."""
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
        self.area_info = info_label()
        row.addWidget(self.area_info, 1)
        area.addLayout(row)
        return area_box

    def _bands_box(self) -> QGroupBox:
        """The band table, the matching status and the L2A offset."""
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
        self.band_status = info_label(selectable=True)
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
        self.offset_info = info_label(selectable=True)
        bands.addWidget(self.offset_info)
        return bands_box

    def _output_box(self) -> QGroupBox:
        """The run's name and where it is saved."""
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
        self.out_info = info_label()
        form.addRow("", self.out_info)
        self.out_group = QButtonGroup(self)
        for button in (self.out_project, self.out_temp, self.out_folder):
            self.out_group.addButton(button)
        return out_box

    def _build_footer(self, root: QVBoxLayout) -> None:
        """Progress bar, status line and the buttons (Run, Cancel run, Before / after, Dock)."""
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        root.addWidget(self.progress)
        self.status_label = info_label(selectable=True)
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

        self.extent_tool = QgsMapToolExtent(self.canvas)

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
