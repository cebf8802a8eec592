"""The plugin object QGIS loads: a toolbar button and a Raster menu entry that open the
dialog, the Processing provider, and the background runs (one QgsTask each) whose results
are added as layers when they end."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsSettings
from qgis.PyQt.QtWidgets import QAction

from .environment import plugin_icon
from .task import LOG_TAG, DecloudTask, RunParameters, metrics_text

MENU = "&sarclear"


def metrics_summary(metrics: dict | None) -> str:
    """One line for the message bar: the run's metrics, named as errors or as changes."""
    if not metrics:
        return ""
    values = metrics_text(metrics)
    if metrics.get("kind") == "error":
        return f"error against the reference: {values}"
    return f"change between cloudy input and output (not a quality score: no reference given): {values}"


class SarclearPlugin:
    """Toolbar/menu action, Processing provider, background runs."""

    def __init__(self, iface):
        self.iface = iface
        self.action: QAction | None = None
        self.toolbar = None
        self.provider = None
        self.dialog = None
        self.dock = None  # the QgsDockWidget holding the dialog, when docked
        self.tasks: list[DecloudTask] = []  # keep the Python wrappers alive while they run

    # ------------------------------------------------------------------ life cycle

    def initProcessing(self) -> None:
        if self.provider is None:
            from .provider import SarclearProvider

            self.provider = SarclearProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        self.action = QAction(plugin_icon(), "Remove clouds with SAR (sarclear)…", self.iface.mainWindow())
        self.action.setObjectName("sarclearRemoveClouds")
        self.action.setToolTip("sarclear: remove clouds from a Sentinel-2 layer using Sentinel-1 SAR")
        self.action.triggered.connect(self.show_dialog)
        self.toolbar = self.iface.addToolBar("sarclear")
        self.toolbar.setObjectName("sarclearToolbar")
        self.toolbar.addAction(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def unload(self) -> None:
        for task in list(self.tasks):
            task.on_finished = None
            task.cancel()
        self.tasks.clear()
        if self.dock is not None:
            self.dock_dialog(False)
        if self.dialog is not None:
            self.dialog.cleanup()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            if self.toolbar is not None:
                self.toolbar.removeAction(self.action)
                self.toolbar.deleteLater()
                self.toolbar = None
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # ------------------------------------------------------------------ dialog and runs

    def show_dialog(self):
        if self.dialog is None:
            from .dialog import SarclearDialog

            self.dialog = SarclearDialog(self.iface, self.start_run)
            self.dialog.on_dock = self.dock_dialog
            if QgsSettings().value("sarclear/docked", False, type=bool):
                self.dock_dialog(True)
        else:
            self.dialog.prepare()
        if self.dock is not None:
            self.dock.show()
            self.dock.raise_()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def dock_dialog(self, docked: bool) -> None:
        """Move the dialog into a dock beside the map (remembered for next time), or back
        into a window of its own."""
        from qgis.gui import QgsDockWidget
        from qgis.PyQt.QtCore import Qt

        dialog = self.dialog
        if docked and self.dock is None:
            self.dock = QgsDockWidget("sarclear: remove clouds", self.iface.mainWindow())
            self.dock.setObjectName("sarclearDock")
            dialog.setWindowFlags(Qt.WindowType.Widget)
            self.dock.setWidget(dialog)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.show()
        elif not docked and self.dock is not None:
            dock, self.dock = self.dock, None
            dialog.setParent(self.iface.mainWindow(), Qt.WindowType.Dialog)
            remove = getattr(self.iface, "removeDockWidget", None)
            if remove is not None:
                remove(dock)
            dock.deleteLater()
        dialog.set_docked(self.dock is not None)
        QgsSettings().setValue("sarclear/docked", self.dock is not None)
        dialog.show()

    def start_run(self, params: RunParameters) -> DecloudTask:
        """Start a background run; its layers are added when it ends."""
        task = DecloudTask(params, on_finished=self._finished)
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    @staticmethod
    def _same_stretch(params: RunParameters, output, mask: str | None = None) -> None:
        """Draw the input layer and the reconstruction with one stretch, from the input's
        clear pixels (so a difference on screen is a difference in the data)."""
        from qgis.core import QgsProject

        from . import layers

        if output is None:
            return
        ranges = layers.clear_stretch(params.ms, output.source(), params.ms_bands,
                                      mask if params.cloud_mask == "auto" else params.cloud_mask,
                                      params.extra.get("ms_offset"))
        if ranges is None:
            return
        layers.apply_stretch(output, ranges)
        for layer in QgsProject.instance().mapLayers().values():  # the input, where it is a layer
            if layer is not output and layer.source() in params.ms and layer.bandCount() > 1:
                layers.apply_stretch(layer, ranges)

    def _finished(self, task: DecloudTask) -> None:
        """Main thread: add the layers, or say why there are none."""
        if task in self.tasks:
            self.tasks.remove(task)
        bar = self.iface.messageBar()
        name = task.params.name
        if task.result is not None:
            from . import layers

            res = task.result
            maps = {k: str(v) for k, v in res.maps.items()}
            kind = (res.metrics or {}).get("kind", "error" if task.params.reference else "change")
            _group, added = layers.add_result_layers(name, str(res.output), maps, kind,
                                                     model=task.params.model_label)
            self._same_stretch(task.params, added[0] if added else None, maps.get("mask"))
            if self.dialog is not None and added:
                self.dialog.set_result(added[0])
            summary = metrics_summary(res.metrics)
            message = (f"{name}: {res.window.width} x {res.window.height} px, {res.tiles} tiles in "
                       f"{res.seconds:.1f} s on {res.device}" + (f"; {summary}" if summary else ""))
            for note in res.notes:  # e.g. out-of-memory retries with a smaller batch
                message += f" ({note})"
            QgsMessageLog.logMessage(f"{message}\noutput: {res.output}\nmetrics: {res.metrics_path}",
                                     LOG_TAG, Qgis.MessageLevel.Info)
            bar.pushMessage("sarclear", message, Qgis.MessageLevel.Success, 15)
            error = False
        elif task.cancelled:
            message = f"{name}: cancelled; nothing was written"
            bar.pushMessage("sarclear", message, Qgis.MessageLevel.Info, 8)
            error = False
        else:
            message = f"{name}: {task.error}"
            QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Critical)
            bar.pushMessage("sarclear", message, Qgis.MessageLevel.Critical, 0)
            error = True
        if self.dialog is not None:
            self.dialog.run_finished(task, message, error)
