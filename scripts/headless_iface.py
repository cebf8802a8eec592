"""The part of QGIS's ``iface`` the plugin uses, for scripts that run the plugin without the
QGIS main window (screenshots, the install check): a window, a canvas, a Raster menu, and a
message bar that keeps what it is told."""

from __future__ import annotations

from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow, QMenu


class HeadlessIface:
    def __init__(self, echo: bool = False) -> None:
        self.window = QMainWindow()
        self.canvas = QgsMapCanvas(self.window)
        self.menu = QMenu("Raster", self.window)
        self.messages: list[str] = []
        self.echo = echo
        self.active = None

    def mainWindow(self):
        return self.window

    def mapCanvas(self):
        return self.canvas

    def activeLayer(self):
        return self.active

    def setActiveLayer(self, layer) -> None:
        self.active = layer

    def messageBar(self):
        return self

    def pushMessage(self, title, text, level=0, duration=-1):
        self.messages.append(f"{title}: {text}")
        if self.echo:
            print(f"[message bar] {title}: {text}")

    def addToolBar(self, name):
        return self.window.addToolBar(name)

    def addPluginToRasterMenu(self, name, action):
        self.menu.addAction(action)

    def removePluginRasterMenu(self, name, action):
        self.menu.removeAction(action)
