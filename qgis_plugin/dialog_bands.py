"""The dialog's band matching: the chosen inputs' bands against the model's (the library's
matching, as the run will do it), shown in an editable table; the L2A offset decision; and
what blocks the run, in words.
"""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtWidgets import QComboBox, QTableWidgetItem

from . import layers
from .dialog_widgets import ERROR_STYLE, OK_STYLE
from .task import STAGE_LOADING


class DialogBands:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: band table, offset, and the
    status line that explains a blocked run."""

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
            self.offset_info.setStyleSheet(ERROR_STYLE)
            return
        text = self.offset.text
        if self.offset.warning:
            text += f"\nWarning: {self.offset.warning}"
        self.offset_info.setText(text)
        self.offset_info.setStyleSheet(ERROR_STYLE if self.offset.warning else "")

    def _update_status(self) -> None:
        """Show what blocks the run (bands, coverage) or the band summary; enable Run."""
        problems = self.band_problems()
        self.band_status.setText(problems or self._band_summary())
        self.band_status.setStyleSheet(ERROR_STYLE if problems else OK_STYLE)
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
