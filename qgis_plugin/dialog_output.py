"""The dialog's output: the run's name (numbered when repeated) and file name, and the folder
it is written to (beside the saved project, QGIS's temporary folder or one the user picks).
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from qgis.core import QgsProcessingUtils, QgsProject

from .dialog_widgets import ERROR_STYLE


def safe_file_name(text: str) -> str:
    """A run name as a file name: letters, digits, '-', '_' and '.'."""
    name = re.sub(r"[^\w.-]+", "_", text.strip(), flags=re.ASCII).strip("._")
    return name or "sarclear"


class DialogOutput:
    """Mixin of :class:`~qgis_plugin.dialog.SarclearDialog`: run name and output folder."""

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
            self.out_info.setStyleSheet(ERROR_STYLE)
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
