"""Regenerate the plugin screenshots in docs/screenshots/ (offscreen, no display needed).

Loads the real cloudy SEN12MS-CR pair into a QGIS project, opens the plugin's dialog, runs
the plugin on the whole layer (the same background task a user starts with Run), then saves:

- ``dialog.png``: the dialog after the run (inputs, model, device, area, band matching);
- ``canvas.png``: before and after, side by side: the cloudy input and the reconstruction
  (both true colour B4/B3/B2 with the one display stretch the plugin gives them, from the
  input's clear pixels) and the SAM change map;
- ``layers.png``: the layer tree: the run's group with the three layers and their legends.

Usage: ``python scripts/screenshots.py [--model FILE] [--out DIR]``; the model defaults to
the bundled demo model (resources/models/sarclear-lite-demo.safetensors).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "library"), str(ROOT)]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsLayerTreeModel,
    QgsMapRendererCustomPainterJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsLayerTreeView  # noqa: E402
from qgis.PyQt.QtCore import QRectF, QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from headless_iface import HeadlessIface  # noqa: E402

SAMPLE_S2 = ROOT / "resources" / "samples" / "sen12ms-cr-cloudy" / "ROIs1868_summer_s2_cloudy_19_p30.tif"
SAMPLE_S1 = ROOT / "resources" / "samples" / "sen12ms-cr-cloudy" / "ROIs1868_summer_s1_19_p30.tif"


def render(layers: list[QgsRasterLayer], size: int) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[0].crs())
    settings.setExtent(layers[0].extent())
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("white"))
    image = QImage(QSize(size, size), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.renderSynchronously()
    painter.end()
    return image


def side_by_side(panels: list[tuple[str, QImage]], legend: QImage | None) -> QImage:
    size, pad, title_h = panels[0][1].width(), 16, 34
    width = len(panels) * (size + pad) + pad + (legend.width() + pad if legend else 0)
    out = QImage(width, size + title_h + 2 * pad, QImage.Format.Format_ARGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    font = QFont()
    font.setPointSize(13)
    painter.setFont(font)
    for k, (title, image) in enumerate(panels):
        x = pad + k * (size + pad)
        painter.drawText(QRectF(x, pad, size, title_h), Qt.AlignmentFlag.AlignCenter, title)
        painter.drawImage(x, pad + title_h, image)
    if legend is not None:
        painter.drawImage(pad + len(panels) * (size + pad), pad + title_h, legend)
    painter.end()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default: the bundled demo model)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    app = QgsApplication([], True)
    app.initQgis()

    import qgis_plugin
    from qgis_plugin import layers
    from sarclear.resources import default_model

    model = args.model or default_model()
    args.out.mkdir(parents=True, exist_ok=True)
    iface = HeadlessIface(echo=True)
    project = QgsProject.instance()
    cloudy = QgsRasterLayer(str(SAMPLE_S2), "cloudy S2 (SEN12MS-CR)", "gdal")
    sar = QgsRasterLayer(str(SAMPLE_S1), "S1 VV VH (SEN12MS-CR)", "gdal")
    project.addMapLayers([cloudy, sar])
    layers.style_true_colour(cloudy)
    iface.canvas.setDestinationCrs(cloudy.crs())
    iface.canvas.setExtent(cloudy.extent())

    plugin = qgis_plugin.classFactory(iface)
    plugin.initGui()
    dialog = plugin.show_dialog()
    dialog.model_widget.setFilePath(str(model))
    while not dialog.ready():  # the model's header is read in a background task
        app.processEvents()
        time.sleep(0.02)
    dialog.area_layer.setChecked(True)
    dialog.name_edit.setText("SEN12MS-CR cloudy sample")
    dialog.out_folder.setChecked(True)
    folder = Path(tempfile.mkdtemp(prefix="sarclear-screenshots-"))
    dialog.folder_widget.setFilePath(str(folder))
    dialog.run()
    while plugin.tasks:
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()
    dialog.resize(1240, 860)  # a desktop screen (the offscreen one is 800 x 600, where the dialog scrolls)
    app.processEvents()
    dialog.grab().save(str(args.out / "dialog.png"))

    group = project.layerTreeRoot().findGroup("SEN12MS-CR cloudy sample")
    found = [node.layer() for node in group.findLayers()]  # reconstruction, maps, mask, uncertainty
    print("layers: " + ", ".join(layer.name() for layer in found))
    sam = next(layer for layer in found if "SAM" in layer.name())
    maps = ("RMSE", "SAM", "mask", "uncertainty", "probability")
    output = next(layer for layer in found if not any(k.lower() in layer.name().lower() for k in maps))
    size = 420
    model_tree = QgsLayerTreeModel(project.layerTreeRoot())
    model_tree.setFlag(QgsLayerTreeModel.Flag.AllowNodeChangeVisibility)
    view = QgsLayerTreeView()
    view.setModel(model_tree)
    view.resize(540, 520)
    view.show()
    view.expandAll()
    for _ in range(5):
        app.processEvents()
    legend_view = view.grab()
    side_by_side([("Before: cloudy Sentinel-2", render([cloudy], size)),
                  (f"After: reconstruction ({Path(model).stem})", render([output], size)),
                  ("SAM change, input vs output", render([sam], size))], None).save(str(args.out / "canvas.png"))
    legend_view.save(str(args.out / "layers.png"))
    print(f"wrote {', '.join(p.name for p in sorted(args.out.glob('*.png')))} to {args.out} (model {model})")
    plugin.unload()
    project.removeAllMapLayers()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
