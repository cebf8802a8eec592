"""The dialog's inputs: the cloudy Sentinel-2 source (a layer, or band files, a folder or a
.SAFE read from disk), the ticked Sentinel-1 layers, and the guess of both from the project
(the selected, visible layers that cover the map first; SAR nearest in time).

The layer ranking and band checks are :mod:`qgis_plugin.layers` calls.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFileDialog, QListWidgetItem

from . import layers


class DialogInputs:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: which MS and SAR inputs are
    chosen; a change re-matches the bands and the area."""

    def raster_layers(self) -> list[QgsRasterLayer]:
        """The project's valid raster layers in layer-tree order (layers just added, not yet
        in the tree, last)."""
        project = QgsProject.instance()
        ordered = project.layerTreeRoot().layerOrder()
        ordered += [layer for layer in project.mapLayers().values() if layer not in ordered]
        return [layer for layer in ordered if isinstance(layer, QgsRasterLayer) and layer.isValid()]

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
            self.set_sar_layers(layers.guess_sar_layers(self.sar_candidates(candidates),
                                                        self.model_config.sar_channels))

    def sar_candidates(self, candidates: list[QgsRasterLayer] | None = None) -> list[QgsRasterLayer]:
        """The layers that could be the SAR input, best first: not the MS layer, those that
        cover it first, then nearest in time (``candidates``: the ranked raster layers)."""
        if candidates is None:
            view, view_crs = self.canvas.extent(), self.canvas.mapSettings().destinationCrs()
            candidates = layers.rank_layers(self.raster_layers(), self.selected_layers(), view, view_crs)
        ms = self.ms_layer()
        others = layers.by_date([c for c in candidates if c is not ms], ms)  # nearest in time first
        if ms is not None:  # those that cover the MS layer first
            others.sort(key=lambda c: not layers.intersects(c, ms.extent(), ms.crs()))
        return others

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
        if self.model_config is not None and self.choose_default_model():
            return  # a SAR layer came or went: the other default model loads, then re-matches
        self._update_bands()

    def _ms_changed(self, *_args) -> None:
        self.ms_order = None
        self._update_bands()
        self._update_area()

    def _sar_changed(self, *_args) -> None:
        self.sar_order = None
        self._update_bands()
