"""A run's result layers: their names, adding them to the project in a group, and their
styles (true colour, pseudocolour maps with units, the cloud-mask classes), with a display
stretch taken from the input's clear pixels. Band names come from the library
(:data:`sarclear.bands.S2_RGB`), imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from qgis.core import (
    QgsBasicNumericFormat,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsLayerTreeGroup,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

from .band_match import offset_decision
from .layer_files import layer_paths


def rgb_band_numbers(path: str) -> tuple[int, int, int] | None:
    """GDAL band numbers of red, green and blue (:data:`sarclear.bands.S2_RGB`) in ``path``."""
    from sarclear.bands import S2_RGB
    from sarclear.errors import SarclearError
    from sarclear.raster import named_bands

    try:
        refs, _ = named_bands(path, sensor="optical")
    except SarclearError:
        return None
    index = {r.name: r.index for r in refs if r.name}
    if not all(b in index for b in S2_RGB):
        return None
    red, green, blue = (index[b] for b in S2_RGB)
    return red, green, blue


def style_true_colour(layer: QgsRasterLayer) -> bool:
    """Render ``layer`` as true colour (B4/B3/B2) with a 2-98 % cumulative-cut stretch;
    the data are untouched. False if the layer lacks one of those bands."""
    bands = rgb_band_numbers(layer_paths(layer)[0])
    if bands is None:
        return False
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), *bands))
    layer.setContrastEnhancement(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    layer.triggerRepaint()
    return True


def _map_ramp():
    ramp = QgsStyle.defaultStyle().colorRamp("Magma")
    if ramp is None:  # a style database without the matplotlib ramps
        ramp = QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191))
    return ramp


def map_units(path: str) -> str:
    """The unit the library wrote into a map's band ("reflectance", "degrees")."""
    from osgeo import gdal

    ds = gdal.Open(path)
    return ds.GetRasterBand(1).GetUnitType() if ds is not None else ""


def style_map(layer: QgsRasterLayer, units: str, high: float | None = None) -> tuple[float, float]:
    """Single-band pseudocolour from 0 to ``high`` (default: the 98th percentile), with a
    continuous legend labelled in ``units``. Returns the (min, max) of the colour scale."""
    provider = layer.dataProvider()
    if high is None:
        _, high = provider.cumulativeCut(1, 0.0, 0.98, QgsRectangle(), 250_000)  # a sample: never blocks long
    if not high > 0:
        high = max(provider.bandStatistics(1).maximumValue, 1e-6)
    function = QgsColorRampShader(0.0, high, _map_ramp(), QgsColorRampShader.Type.Interpolated)
    function.classifyColorRamp(5, 1)
    legend = QgsColorRampLegendNodeSettings()
    legend.setUseContinuousLegend(True)
    legend.setSuffix("°" if units == "degrees" else f" {units}" if units else "")
    number_format = QgsBasicNumericFormat()
    number_format.setNumberDecimalPlaces(1 if units == "degrees" else 2 if not units else 3)
    legend.setNumericFormat(number_format)
    function.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return 0.0, high


def style_result(layer: QgsRasterLayer, key: str) -> None:
    """Style a run's output ("output": true colour) or map (pseudocolour in its units)."""
    if key == "output":
        style_true_colour(layer)
    elif key == "mask":
        style_mask(layer)
    elif key == "uncertainty":
        style_map(layer, "reflectance")
    elif key == "cloud_probability":
        style_map(layer, "", high=1.0)
    else:
        style_map(layer, map_units(layer_paths(layer)[0]))


#: how the classes of a detected cloud mask are drawn: (value, colour, label)
MASK_CLASSES = ((0, QColor(0, 0, 0, 0), "clear (kept as it is)"), (1, QColor(255, 255, 255), "cloud"),
                (2, QColor(40, 40, 160), "cloud shadow"))


def style_mask(layer: QgsRasterLayer) -> None:
    """A detected cloud mask as classes: clear transparent, cloud white, shadow dark blue."""
    from qgis.core import QgsPalettedRasterRenderer

    classes = [QgsPalettedRasterRenderer.Class(v, c, label) for v, c, label in MASK_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def result_layer_names(kind: str, model: str = "") -> dict[str, str]:
    """Layer names of a run's outputs; ``kind`` is the metrics' kind, "error" (against a
    reference) or "change" (input vs output); ``model``: the model's label ("... (demo
    model)"), so a demo's output is never taken for a real one."""
    output = f"reconstruction (true colour, {model})" if model else "reconstruction (true colour)"
    side = {"mask": "cloud mask (detected)", "cloud_probability": "cloud probability (detector, 0-1)",
            "uncertainty": "uncertainty (1 sigma)"}
    if kind == "error":
        return {"output": output, "rmse": "RMSE error vs reference", "sam": "SAM error vs reference", **side}
    return {"output": output, "rmse": "RMSE change, input vs output", "sam": "SAM change, input vs output", **side}


def result_layer_name(key: str, kind: str, path: str, model: str = "") -> str:
    """The name of one output ("output", "rmse", "sam", "mask", "cloud_probability", "uncertainty")
    with the map's units."""
    units = ("reflectance" if key == "uncertainty" else "" if key in ("output", "mask", "cloud_probability")
             else map_units(str(path)))
    return result_layer_names(kind, model).get(key, key) + (f" ({units})" if units else "")


def add_result_layers(name: str, output: str, maps: dict[str, str], kind: str, project: QgsProject | None = None,
                      model: str = "") -> tuple[QgsLayerTreeGroup, list[QgsRasterLayer]]:
    """Add a run's reconstruction and maps in a new group ``name`` at the top of the layer
    tree: the reconstruction in true colour (visible), the RMSE and SAM maps in
    pseudocolour with their units in the name and legend, the detected cloud mask (classes),
    the detector's cloud probability (0-1) and the uncertainty map, where the run wrote them
    (hidden, below it)."""
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, name)
    added = []
    order = ("rmse", "sam", "mask", "cloud_probability", "uncertainty")
    for key, path in [("output", output), *sorted(maps.items(), key=lambda kv: order.index(kv[0])
                                                  if kv[0] in order else len(order))]:
        layer_name = unique_layer_name(result_layer_name(key, kind, path, model), project)
        layer = QgsRasterLayer(str(path), layer_name, "gdal")
        if not layer.isValid():
            continue
        style_result(layer, key)
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        if key != "output":
            node.setItemVisibilityChecked(False)
            node.setExpanded(True)
        added.append(layer)
    return group, added


# --------------------------------------------------------------------------- display


#: Blue reflectance under which a pixel counts as clear for the display stretch (thick cloud and
#: haze brighten the blue band above it; clear land and water stay below it, even top of atmosphere)
CLEAR_BLUE_REFLECTANCE = 0.18


def _read_on(path: str, index: int, bounds: tuple[float, float, float, float], size: tuple[int, int]):
    """Band ``index`` of ``path`` resampled onto ``bounds`` (xmin, ymin, xmax, ymax, in its
    CRS) at ``size`` (columns, rows), as float64 with nodata as NaN."""
    import numpy as np
    from osgeo import gdal

    xmin, ymin, xmax, ymax = bounds
    ds = gdal.Translate("", path, format="MEM", bandList=[index], projWin=[xmin, ymax, xmax, ymin],
                        width=size[0], height=size[1], resampleAlg="nearest")
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray().astype(np.float64)
    if band.GetNoDataValue() is not None:
        values[values == band.GetNoDataValue()] = np.nan
    return values


def clear_stretch(ms_paths: Sequence[str], output: str, order: Sequence[str] | None = None,
                  cloud_mask: str | None = None, offset: float | None = None,
                  ) -> tuple[tuple[float, float], ...] | None:
    """The display range (2nd and 98th percentiles) of red, green and blue, taken from the
    input's clear pixels over the output's area: where ``cloud_mask`` is 0, else where the
    input's blue reflectance is below :data:`CLEAR_BLUE_REFLECTANCE` (all valid pixels if
    fewer than 1 % are clear). In the input's values, which the output shares (same data
    type and scaling), so both can be drawn alike. None if the input lacks a colour band."""
    import numpy as np
    from osgeo import gdal

    from sarclear.bands import S2_RGB
    from sarclear.errors import SarclearError
    from sarclear.io import identify_bands

    try:
        refs = identify_bands(list(ms_paths), S2_RGB, sensor="optical", order=order)  # red, green, blue
        decision = offset_decision(ms_paths, S2_RGB, order, offset)
    except SarclearError:
        return None
    ds = gdal.Open(output)
    gt = ds.GetGeoTransform()
    bounds = (gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3])
    scale = max(1, -(-max(ds.RasterXSize, ds.RasterYSize) // 512))  # at most 512 px a side
    size = (max(1, ds.RasterXSize // scale), max(1, ds.RasterYSize // scale))
    rgb = np.stack([_read_on(r.path, r.index, bounds, size) for r in refs])
    valid = np.isfinite(rgb).all(axis=0)
    if cloud_mask:
        clear = valid & (np.nan_to_num(_read_on(cloud_mask, 1, bounds, size), nan=1.0) == 0)
    else:
        blue = (rgb[2] + decision.offset) / decision.dn_per_reflectance
        clear = valid & (blue < CLEAR_BLUE_REFLECTANCE)
    if clear.sum() < 0.01 * max(valid.sum(), 1):
        clear = valid
    if not clear.any():
        return None
    return tuple((float(np.percentile(b[clear], 2)), float(np.percentile(b[clear], 98))) for b in rgb)


def apply_stretch(layer: QgsRasterLayer, ranges: Sequence[tuple[float, float]]) -> bool:
    """Draw ``layer`` in true colour with ``ranges`` (red, green, blue min/max) as its
    display stretch; the data are untouched."""
    bands = rgb_band_numbers(layer_paths(layer)[0])
    if bands is None:
        return False
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, (low, high), setter in zip(bands, ranges, setters):
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def unique_layer_name(name: str, project: QgsProject | None = None) -> str:
    """``name``, numbered " (2)", " (3)"... if the project has a layer of that name."""
    taken = {layer.name() for layer in (project or QgsProject.instance()).mapLayers().values()}
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
