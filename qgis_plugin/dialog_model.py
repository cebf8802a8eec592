"""The dialog's model, device and dependencies: the chosen model's header is read in a
background task (:class:`~qgis_plugin.task.ProbeTask`, where torch loads, also detecting
CUDA), its answer fills the model and device information; a QGIS without PyTorch gets the
"Install dependencies" button (pip in a background task).
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QMessageBox

from . import layers
from .dialog_widgets import ERROR_STYLE
from .environment import python_problem
from .models import model_label
from .task import STAGE_LOADING, ProbeTask


class DialogModel:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: the model file, its probe, the
    device choice and the dependency installation."""

    def _model_chosen(self, index: int) -> None:
        self.auto_model = None  # the user chose: keep it
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
        if path != self.auto_model:
            self.auto_model = None  # the user chose: keep it
        self.adapt_option.set_model(None)
        self._select_model_entry(path)
        if self.missing:
            self.model_info.setText("The model cannot be read until PyTorch is installed (see above).")
            self._update_bands()
            return
        if not path:
            self.model_info.setText("Choose a model file (.safetensors); no model is installed here.")
            self.model_info.setStyleSheet(ERROR_STYLE)
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
        self.bundled_sar_channels.update(probe.sar_channels)
        for path, channels in probe.sar_channels.items():
            index = self.model_combo.findData(path)
            if index >= 0:
                self.model_combo.setItemText(index, model_label(path, channels))
        self._update_device_info()
        if probe.error:
            self.model_info.setText(probe.error)
            self.model_info.setStyleSheet(ERROR_STYLE)
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
        if not probe.error and self.choose_default_model():
            return  # the other default model loads; this runs again when it has
        self._update_bands()
        self._update_area()
        self.fit()

    def default_model(self) -> str | None:
        """The model the library would choose for the project's layers
        (:func:`sarclear.resources.default_model`): with SAR when the project holds SAR layers
        that its SAR default reads and that overlap the MS layer; None if no model is bundled."""
        from sarclear.errors import SarclearError
        from sarclear.resources import default_model

        try:
            sar_default = str(default_model(with_sar=True))
        except SarclearError:
            return None
        ms = self.ms_layer()
        candidates = [c for c in self.sar_candidates() if ms is None or layers.intersects(c, ms.extent(), ms.crs())]
        channels = self.bundled_sar_channels.get(sar_default)
        with_sar = bool(channels) and bool(layers.guess_sar_layers(candidates, channels))
        return str(default_model(with_sar=with_sar))

    def choose_default_model(self) -> bool:
        """Until the user chooses a model, keep the default that fits the project: the
        SAR-guided fill when SAR layers are there, the plain fill without. Runs once torch is
        loaded (the band check needs the library); True when it switched model (a new probe
        runs)."""
        if self.auto_model is None or not self.library_ready:
            return False
        wanted = self.default_model()
        if wanted is None or wanted == self.model_widget.filePath():
            return False
        self.auto_model = wanted
        self.model_widget.setFilePath(wanted)  # -> _model_changed: probes it
        return True

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
