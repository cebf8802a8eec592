"""Check the installed plugin in the real QGIS desktop (run under Xvfb), as an analyst would.

QGIS runs this file at start-up (``qgis --code``); it drives the plugin through its widgets,
takes screenshots of the whole screen and writes ``report.json`` into ``$SARCLEAR_CHECK_OUT``,
then quits QGIS. Two phases (``$SARCLEAR_CHECK_PHASE``):

- ``install``: a QGIS without PyTorch: the dialog's message, the "Install dependencies"
  button (its confirmation box with the pip commands is accepted), pip's outcome;
- ``run``: a QGIS with the dependencies: layers loaded (a second S2 layer 40 km east, the
  active layer), the proposed layers, how long the GUI thread stalls while the dialog opens
  (a 20 ms timer's longest gap), a run on the cloudy sample (stages, layers, stretch), and
  "Synthesize clouds" with its default ranges.

Usage (see README, QGIS plugin): ``xvfb-run -s "-screen 0 1600x1000x24" qgis --profiles-path P
--noversioncheck --nologo --code scripts/qgis_desktop_check.py`` with the plugin installed in
profile P and the two environment variables set.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

from osgeo import gdal
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox
from qgis.utils import iface, plugins

ROOT = Path(__file__).resolve().parent.parent if "__file__" in globals() else Path.cwd()
SAMPLE = ROOT / "resources" / "samples" / "sen12ms-cr-cloudy"
OUT = Path(os.environ.get("SARCLEAR_CHECK_OUT", "/tmp/sarclear-desktop-check"))
PHASE = os.environ.get("SARCLEAR_CHECK_PHASE", "run")
OUT.mkdir(parents=True, exist_ok=True)
report: dict = {"phase": PHASE}


def shot(name: str) -> None:
    """The whole (virtual) screen, as the analyst sees it."""
    QApplication.processEvents()
    QApplication.primaryScreen().grabWindow(0).save(str(OUT / f"{PHASE}_{name}.png"))


def wait(predicate, timeout: float = 600.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        QApplication.processEvents()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def finish() -> None:
    (OUT / f"{PHASE}_report.json").write_text(json.dumps(report, indent=2, default=str))
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(500, QApplication.instance().quit)


def accept_question(record: str) -> None:
    """Screenshot the modal confirmation box, then press Yes."""
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        report[record] = box.text()
        shot("confirm")
        box.button(QMessageBox.StandardButton.Yes).click()
    else:
        QTimer.singleShot(300, lambda: accept_question(record))


def phase_install() -> None:
    dialog = plugins["sarclear_qgis"].show_dialog()
    report["dependency_message"] = dialog.dependency_label.text()
    report["install_button_visible"] = dialog.install_box.isVisible()
    shot("dialog_without_torch")
    QTimer.singleShot(300, lambda: accept_question("confirmation"))
    dialog.install_button.click()  # the modal box; its nested loop runs the timer
    report["install_started"] = dialog.install_task is not None
    wait(lambda: dialog.install_task is None, 1200)
    report["install_status"] = dialog.status_label.text()
    shot("after_install")
    finish()


def phase_run() -> None:
    src = gdal.Open(str(SAMPLE / "ROIs1868_summer_s2_cloudy_19_p30.tif"))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    dx = 40_000 + px * src.RasterXSize
    far = OUT / "far_s2.tif"
    gdal.Translate(str(far), src, outputBounds=[x0 + dx, y0, x0 + dx + px * src.RasterXSize, y0 + py * src.RasterYSize])
    cloudy = iface.addRasterLayer(str(SAMPLE / "ROIs1868_summer_s2_cloudy_19_p30.tif"), "cloudy S2")
    iface.addRasterLayer(str(SAMPLE / "ROIs1868_summer_s1_19_p30.tif"), "S1 VV VH")
    far_layer = iface.addRasterLayer(str(far), "far S2 (40 km east)")
    iface.setActiveLayer(far_layer)  # selected, but not on the map view
    wait(lambda: False, 2)  # QGIS zooms to the new layers first
    iface.mapCanvas().setDestinationCrs(cloudy.crs())
    iface.mapCanvas().setExtent(cloudy.extent())
    iface.mapCanvas().refresh()
    wait(lambda: False, 2)
    report["view"] = iface.mapCanvas().extent().toString(0)

    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    t0 = time.monotonic()
    dialog = plugins["sarclear_qgis"].show_dialog()
    report["dialog_constructed_s"] = round(time.monotonic() - t0, 3)
    report["model_info_at_open"] = dialog.model_info.text()
    wait(dialog.ready, 120)
    report["ready_after_s"] = round(time.monotonic() - t0, 3)
    timer.stop()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    report["longest_gui_stall_s"] = round(max([ticks[0] - t0, *gaps]) if ticks else time.monotonic() - t0, 3)
    report["proposed_ms"] = dialog.ms_combo.currentLayer().name() if dialog.ms_combo.currentLayer() else None
    report["proposed_sar"] = [layer.name() for layer in dialog.sar_layers()]
    report["model_info"] = dialog.model_info.text()
    report["band_status"] = dialog.band_status.text()
    report["offset_info"] = dialog.offset_info.text()
    report["output_info"] = dialog.out_info.text()
    shot("dialog")
    dialog.dock_button.click()  # beside the map, one column
    report["docked"] = plugins["sarclear_qgis"].dock is not None
    wait(lambda: False, 1)
    shot("docked")

    dialog.ms_combo.setLayer(far_layer)  # the wrong scene: said in words
    report["far_layer_area_info"] = dialog.area_info.text()
    report["far_layer_run_enabled"] = dialog.run_button.isEnabled()
    shot("dialog_far_layer")
    dialog.ms_combo.setLayer(cloudy)

    stages: list[str] = []
    dialog.area_layer.setChecked(True)
    dialog.run()
    if dialog.task is not None:
        dialog.task.stageChanged.connect(stages.append)
    wait(lambda: dialog.task is None, 600)
    report["stages"] = stages
    report["status"] = dialog.status_label.text()
    report["layers"] = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    output = next((layer for layer in QgsProject.instance().mapLayers().values()
                   if layer.name().startswith("reconstruction")), None)
    if output is not None:
        r_out, r_in = output.renderer(), cloudy.renderer()
        report["stretch_output"] = [r_out.redContrastEnhancement().minimumValue(),
                                    r_out.redContrastEnhancement().maximumValue()]
        report["stretch_input"] = [r_in.redContrastEnhancement().minimumValue(),
                                   r_in.redContrastEnhancement().maximumValue()]
        report["band_names"] = [output.bandName(i) for i in range(1, output.bandCount() + 1)]
        iface.mapCanvas().setExtent(cloudy.extent())
        iface.mapCanvas().refresh()
        wait(lambda: False, 3)
    shot("after_run")
    dialog.dock_button.click()  # float again (the setting is remembered per profile)
    dialog.close()

    import processing

    result = processing.run("sarclear:syntheticclouds", {"INPUT": cloudy, "OUTPUT": str(OUT / "synthetic.tif")})
    report["synthetic_default_ranges"] = {k: v for k, v in result.items() if k != "OUTPUT"}
    finish()


QTimer.singleShot(3000, phase_install if PHASE == "install" else phase_run)
