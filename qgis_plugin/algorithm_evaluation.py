"""The evaluation algorithms: ``sarclear:errormaps`` (:func:`sarclear.evaluation.evaluate`,
RMSE and SAM maps of a reconstruction against a cloud-free reference) and
``sarclear:syntheticclouds`` (:func:`sarclear.synthetic.cloud_raster`, clouds, haze and
shadows added to a clear image, for testing). The library is imported in the methods only.
"""

from __future__ import annotations

import math
from typing import ClassVar

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRange,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import layers
from .algorithm_base import _names, _SarclearAlgorithm, _style_on_load
from .task import metrics_text


class ErrorMaps(_SarclearAlgorithm):
    NAME, DISPLAY_NAME = "errormaps", "Reconstruction error maps (RMSE/SAM against a reference)"
    GROUP, GROUP_ID = "Evaluation", "evaluation"
    HELP = (
        "Scores a reconstruction against a cloud-free Sentinel-2 reference: per-pixel RMSE (reflectance) and "
        "SAM (spectral angle, degrees) maps, and RMSE, SAM, MAE, PSNR and SSIM over the image (optionally "
        "saved as JSON). The reference is read on the reconstruction's grid (warped if needed).<br>"
        "<b>Bands</b>: the bands to compare, e.g. B2,B3,B4,B8; empty: every band named in the reconstruction.")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("PREDICTION", "Reconstruction"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Cloud-free reference"))
        self.addParameter(QgsProcessingParameterString(
            "BANDS", "Bands to compare (empty: every band of the reconstruction)", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("RMSE_MAP", "RMSE map (reflectance)"))
        self.addParameter(QgsProcessingParameterRasterDestination("SAM_MAP", "SAM map (degrees)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "METRICS", "Metrics (JSON)", fileFilter="JSON files (*.json)", optional=True, createByDefault=False))
        self.add_metric_outputs()

    def compute(self, parameters, context, feedback) -> dict:
        from sarclear.evaluation import evaluate
        from sarclear.raster import named_bands

        prediction = layers.layer_paths(self.parameterAsRasterLayer(parameters, "PREDICTION", context))
        reference = layers.layer_paths(self.parameterAsRasterLayer(parameters, "REFERENCE", context))
        bands = _names(self.parameterAsString(parameters, "BANDS", context))
        if bands is None:
            bands = [r.name for r in named_bands(prediction, sensor="optical")[0] if r.name]
        rmse = self.parameterAsOutputLayer(parameters, "RMSE_MAP", context)
        sam = self.parameterAsOutputLayer(parameters, "SAM_MAP", context)
        metrics_path = self.parameterAsFileOutput(parameters, "METRICS", context) or None
        feedback.pushInfo(f"comparing bands {', '.join(bands)}")
        metrics = evaluate(prediction, reference, bands, rmse_path=rmse, sam_path=sam, metrics_path=metrics_path,
                           overwrite=True, cancel=feedback.isCanceled)
        feedback.setProgress(100)
        _style_on_load(context, rmse, "rmse")
        _style_on_load(context, sam, "sam")
        feedback.pushInfo(f"{metrics_text(metrics)} over {metrics['pixels']} pixels")
        return {"RMSE_MAP": rmse, "SAM_MAP": sam, "METRICS": metrics_path or "", **self.metric_outputs(metrics)}


class SyntheticClouds(_SarclearAlgorithm):
    NAME, DISPLAY_NAME = "syntheticclouds", "Synthesize clouds (for testing)"
    GROUP, GROUP_ID = "Evaluation", "evaluation"
    HELP = (
        "Adds synthetic clouds, haze and cloud shadows to a clear Sentinel-2 image (fractal noise, wavelength-"
        "dependent haze), so a cloud-removal model can be tested where the truth is known: remove the clouds, "
        "then compare with the clear image (Reconstruction error maps).<br>"
        "Each range is the interval a value is drawn from with the seed; empty: the library's default range. "
        "<b>Coverage</b>: fraction of the image under thick cloud; <b>haze</b>: opacity of the haze veil at "
        "490 nm; <b>shadow</b>: darkening in cloud shadows (0..1); <b>light kept in shadow</b>: the share of the "
        "light at 490 nm a shadow keeps (diffuse skylight, less at longer wavelengths, so shadows darken NIR and "
        "SWIR most, as real ones do; 0 for grey shadows); <b>haze spectral power</b>: how the haze thins with "
        "wavelength (1: aerosol haze, thinner in NIR and SWIR; 0: neutral, the same in every band, as thin water "
        "cloud is). The optional opacity output is the cloud and haze opacity (0..1).")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Clear Sentinel-2 layer"))
        for name, label in (("COVERAGE", "Cloud coverage range (fraction)"), ("HAZE", "Haze opacity range"),
                            ("SHADOW", "Shadow darkening range"),
                            ("SHADOW_DIFFUSE", "Light kept in shadow at 490 nm, range (fraction)")):
            self.addParameter(QgsProcessingParameterRange(
                name, label, QgsProcessingParameterNumber.Type.Double, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "HAZE_POWER", "Haze spectral power (1 aerosol haze, 0 neutral thin cloud)",
            QgsProcessingParameterNumber.Type.Double, defaultValue=1.0, optional=True, minValue=0.0, maxValue=4.0))
        self.addParameter(QgsProcessingParameterNumber(
            "CELL_PX", "Size of the largest cloud structures (pixels)", QgsProcessingParameterNumber.Type.Double,
            defaultValue=100.0, minValue=2.0))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", "Random seed", QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Cloudy image"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OPACITY", "Cloud opacity", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("MEAN_OPACITY", "Mean cloud and haze opacity"))
        self.addOutput(QgsProcessingOutputNumber("THICK_CLOUD_FRACTION", "Fraction under thick cloud"))

    #: range parameter -> its name in sarclear.clouds.CloudConfig and its label in messages
    RANGES: ClassVar[dict[str, tuple[str, str]]] = {
        "COVERAGE": ("coverage", "Cloud coverage range"), "HAZE": ("haze", "Haze opacity range"),
        "SHADOW": ("shadow", "Shadow darkening range"),
        "SHADOW_DIFFUSE": ("shadow_diffuse", "Light kept in shadow range")}

    def ranges(self, parameters: dict, context: QgsProcessingContext, defaults) -> dict:
        """The ranges the user gave; an empty range (the toolbox sends "None,None", NaN
        here) or an empty bound takes the library's default (``defaults``, a CloudConfig)."""
        ranges = {}
        for name, (key, label) in self.RANGES.items():
            lo, hi = self.parameterAsRange(parameters, name, context)
            if math.isnan(lo) and math.isnan(hi):
                continue
            default = getattr(defaults, key)
            lo, hi = (default[0] if math.isnan(lo) else lo), (default[1] if math.isnan(hi) else hi)
            if not 0.0 <= lo <= hi <= 1.0:
                raise QgsProcessingException(f"{label} {lo:g} to {hi:g}: give 0 <= minimum <= maximum <= 1, "
                                             "or leave it empty for the default")
            ranges[key] = (lo, hi)
        return ranges

    def compute(self, parameters, context, feedback) -> dict:
        from sarclear.clouds import CloudConfig
        from sarclear.synthetic import cloud_raster

        clear = layers.layer_paths(self.parameterAsRasterLayer(parameters, "INPUT", context))
        # optional, so that models and scripts saved before it existed still run: empty is the default
        haze_power = self.parameterAsDouble(parameters, "HAZE_POWER", context)
        config = CloudConfig(cell_px=self.parameterAsDouble(parameters, "CELL_PX", context),
                             haze_power=CloudConfig.haze_power if math.isnan(haze_power) else haze_power,
                             **self.ranges(parameters, context, CloudConfig()))
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        opacity = self.parameterAsOutputLayer(parameters, "OPACITY", context) or None
        stats = cloud_raster(clear, out, opacity_out=opacity, config=config,
                             seed=self.parameterAsInt(parameters, "SEED", context), overwrite=True,
                             progress=self.progress(feedback), cancel=feedback.isCanceled)
        feedback.pushInfo(f"mean opacity {stats['mean_opacity']:.3f}, thick cloud over "
                          f"{100 * stats['thick_cloud_fraction']:.1f} % of {stats['pixels']} pixels")
        _style_on_load(context, out, "output")
        result = {"OUTPUT": out, "MEAN_OPACITY": stats["mean_opacity"],
                  "THICK_CLOUD_FRACTION": stats["thick_cloud_fraction"]}
        if opacity:
            result["OPACITY"] = opacity
        return result
