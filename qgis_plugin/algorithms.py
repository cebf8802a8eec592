"""Processing algorithms: one library call each.

- ``sarclear:removeclouds``: :func:`sarclear.inference.decloud` (SAR-optical cGAN), with
  its RMSE/SAM maps and metrics;
- ``sarclear:errormaps``: :func:`sarclear.evaluation.evaluate`, RMSE and SAM maps of a
  reconstruction against a cloud-free reference;
- ``sarclear:syntheticclouds``: :func:`sarclear.synthetic.cloud_raster`, clouds, haze and
  shadows added to a clear image, for testing.

Library errors become a :class:`QgsProcessingException` carrying the library's message (the
problem and the fix); progress and cancellation go through the feedback object. Torch and
the library's heavy modules are imported in ``processAlgorithm`` only, so the provider
loads in a QGIS without torch. As everywhere in Processing, an output file chosen by the
user is replaced (the file dialog asks first); the maps beside the reconstruction too.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRange,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from . import layers
from .adapt_option import unavailable_reason
from .buffer_option import buffer_defaults
from .environment import missing_dependencies, plugin_icon
from .models import model_label
from .task import RunParameters, metrics_text, progress_percent, run_decloud, stage_text

DEVICES = ("auto", "cpu", "cuda")
SAR_UNITS = ("auto", "db", "linear")
#: number outputs: output name -> (key of the library's metrics, description)
METRIC_OUTPUTS = {"RMSE": ("rmse", "RMSE (reflectance)"), "SAM_DEG": ("sam_deg", "SAM (degrees)"),
                  "MAE": ("mae", "MAE (reflectance)"), "PSNR": ("psnr", "PSNR (dB)"), "SSIM": ("ssim", "SSIM")}
_HELP_URL = "https://github.com/sarclear/sarclear#qgis-plugin"


def _names(text: str | None) -> list[str] | None:
    """'B2, B3 B4' -> ['B2', 'B3', 'B4']; empty -> None."""
    names = [t for t in re.split(r"[,;\s]+", text or "") if t]
    return names or None


def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return param


class ResultStyle(QgsProcessingLayerPostProcessorInterface):
    """Styles an output when Processing loads it into the project: true colour for images,
    pseudocolour with units for maps (the same styles as the dialog's runs)."""

    _instances: ClassVar[dict[str, ResultStyle]] = {}  # Processing holds a C++ pointer: keep them alive

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    @classmethod
    def get(cls, key: str) -> ResultStyle:
        """``key``: "output" (true colour) or a map name ("rmse", "sam", "opacity")."""
        if key not in cls._instances:
            cls._instances[key] = cls(key)
        return cls._instances[key]

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            layers.style_result(layer, self.key)


def _style_on_load(context: QgsProcessingContext, path: str, key: str) -> None:
    """When Processing will load ``path`` (toolbox, runAndLoadResults), style it."""
    if path and context.willLoadLayerOnCompletion(path):
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(ResultStyle.get(key))


class _SarclearAlgorithm(QgsProcessingAlgorithm):
    """Shared: names from the class attributes, icon, help link, instance creation, and
    turning library errors into Processing errors."""

    NAME = DISPLAY_NAME = GROUP = GROUP_ID = HELP = ""  # set by each algorithm

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:
        return self.GROUP_ID

    def shortHelpString(self) -> str:
        return self.HELP

    def createInstance(self):
        return type(self)()

    def icon(self):
        return plugin_icon()

    def helpUrl(self) -> str:
        return _HELP_URL

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict:
        missing = missing_dependencies()
        if missing:
            raise QgsProcessingException(missing)
        from sarclear.errors import Cancelled, SarclearError

        try:
            return self.compute(parameters, context, feedback)
        except Cancelled:
            raise QgsProcessingException("cancelled; nothing was written") from None
        except SarclearError as exc:
            from .messages import describe

            raise QgsProcessingException(describe(exc, "processing")) from None

    def compute(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        raise NotImplementedError

    @staticmethod
    def progress(feedback: QgsProcessingFeedback):
        def report(done: int, total: int, what: str) -> None:
            feedback.setProgress(100.0 * done / max(total, 1))
        return report

    @staticmethod
    def metric_outputs(metrics: dict | None) -> dict:
        return {key: (metrics or {}).get(name) for key, (name, _) in METRIC_OUTPUTS.items()}

    def add_metric_outputs(self) -> None:
        for key, (_, description) in METRIC_OUTPUTS.items():
            self.addOutput(QgsProcessingOutputNumber(key, description))


class RemoveClouds(_SarclearAlgorithm):
    NAME, DISPLAY_NAME = "removeclouds", "Remove clouds (SAR-optical cGAN)"
    GROUP, GROUP_ID = "Cloud removal", "cloudremoval"
    HELP = (
        "Reconstructs a cloudy Sentinel-2 image with co-registered Sentinel-1 SAR, which sees through clouds, "
        "using a SAR-Opt-cGAN model (a pix2pix-style conditional GAN).<br>"
        "<b>Cloudy Sentinel-2</b>: one multi-band layer; bands are named from their descriptions, else from "
        "the documented order for 13, 12 or 10 bands, else as given under <i>MS band names</i>.<br>"
        "<b>Sentinel-1</b>: one multi-band layer or one layer per polarisation, in dB or linear power, on any "
        "grid or CRS (warped onto the optical grid). Only the overlap is processed.<br>"
        "<b>Model</b>: a sarclear .safetensors file; empty: the default model (sarclear-fill-classic, a "
        "classical fill of what the cloud mask hides that keeps the ground detail seen through thin cloud, "
        "with an uncertainty map).<br>"
        "<b>Cloud mask</b>: empty: clouds and shadows are detected, then grown by <i>Detected cloud and shadow "
        "grow by</i> pixels (default 9, 90 m at 10 m); pixels the mask calls clear keep their values.<br>"
        "<b>Area</b>: empty: the whole layer; else snapped outward to the layer's pixel grid.<br>"
        "<b>Outputs</b>: the reconstruction (GeoTIFF, the input's data type, CRS and nodata) and, beside it, "
        "RMSE and SAM maps and a metrics JSON: errors against the reference when one is given, else "
        "input-vs-output change maps (named *_change_*). Existing files of these names are replaced.<br>"
        "<b>Fit the model to this scene first</b> (mask-aware gap-fill models only, e.g. sarclear-fill): before "
        "declouding, a copy of the model is fine-tuned on the scene's own clear pixels, with synthetic clouds "
        "drawn over them, for <i>Fitting time</i> seconds (this adds that time to the run; the model file is "
        "not changed).")

    @staticmethod
    def decloud_progress(feedback: QgsProcessingFeedback, fitting: bool):
        """One bar over the run's stages (cloud mask, fitting, tiles), as the dialog's task;
        the stage named once as it begins (the algorithm dialog logs every progress text)."""
        stages: list[str] = []

        def report(done: int, total: int, what: str) -> None:
            if what not in stages:
                stages.append(what)
                feedback.setProgressText(stage_text(done, total, what))
            feedback.setProgress(progress_percent(done, total, what, fitting))
        return report

    def initAlgorithm(self, config=None) -> None:
        from sarclear.resources import bundled_models

        models = bundled_models()
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Cloudy Sentinel-2 (MS) layer"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "SAR", "Sentinel-1 SAR layer(s) (required unless the model is MS-only)",
            QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model file (empty: the default model)", extension="safetensors",
            defaultValue=str(models[0]) if models else None, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", "Cloud-free reference (maps become errors against it)", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "CLOUD_MASK", "Cloud mask (0 clear, > 0 cloud; clear pixels keep their values)", optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Area (empty: the whole MS layer)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=list(DEVICES), defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            "ADAPT", "Fit the model to this scene first (gap-fill models only; adds the fitting time)",
            defaultValue=False, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "ADAPT_TIME", "Fitting time (seconds)", QgsProcessingParameterNumber.Type.Double,
            defaultValue=180.0, minValue=1.0, maxValue=86400.0, optional=True))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "MS_BANDS", "MS band names in file order (for unlabelled rasters), e.g. B2,B3,B4,B8", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "SAR_CHANNELS", "SAR channel names in file order (for unlabelled rasters), e.g. VV,VH", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterEnum(
            "SAR_UNITS", "SAR units", options=list(SAR_UNITS), defaultValue=0)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "BATCH_SIZE", "Tiles per batch (0: automatic; halved automatically on out-of-memory)",
            QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "OVERLAP", "Tile overlap in pixels (-1: a quarter of the tile)",
            QgsProcessingParameterNumber.Type.Integer, defaultValue=-1, minValue=-1)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "MS_SCALE", "MS digital numbers per unit reflectance (0: detect)",
            QgsProcessingParameterNumber.Type.Double, defaultValue=0.0, minValue=0.0)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "MS_OFFSET", "Offset added to MS digital numbers (empty: as the product declares it; L2A baseline "
            "04.00 and later: -1000)", QgsProcessingParameterNumber.Type.Double, optional=True)))
        mask_buffer, fill_buffer = buffer_defaults()
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "MASK_BUFFER", "Detected cloud and shadow grow by (pixels; without a cloud mask layer; real clouds "
            "are wider than what the detector calls cloud)", QgsProcessingParameterNumber.Type.Integer,
            defaultValue=mask_buffer, minValue=0, maxValue=64, optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "FILL_BUFFER", "Clear pixels this close to the mask are kept but do not feed the fill (pixels)",
            QgsProcessingParameterNumber.Type.Integer, defaultValue=fill_buffer, minValue=0, maxValue=64,
            optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterBoolean(
            "COG", "Write a Cloud Optimized GeoTIFF", defaultValue=False)))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Reconstruction"))
        self.addOutput(QgsProcessingOutputRasterLayer("RMSE_MAP", "RMSE map (reflectance)"))
        self.addOutput(QgsProcessingOutputRasterLayer("SAM_MAP", "SAM map (degrees)"))
        self.addOutput(QgsProcessingOutputFile("METRICS", "Metrics (JSON)"))
        self.add_metric_outputs()

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:
        """SAR is required unless the chosen model reads none (an MS-only model); fitting to
        the scene needs a gap-fill model."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        model = self.parameterAsFile(parameters, "MODEL", context)
        config, info = self._config(model)
        if config is None:
            return True, ""  # unreadable here: the run says why
        reason = unavailable_reason(config, model_label(model or config.preset), info)
        if self.parameterAsBoolean(parameters, "ADAPT", context) and reason:
            return False, f"Fit the model to this scene first: {reason} (under Model file), or untick it."
        if config.sar_channels and not self.parameterAsLayerList(parameters, "SAR", context):
            return False, (f"Sentinel-1 SAR layer(s): the model {model_label(model)} fuses SAR and needs "
                           f"{', '.join(config.sar_channels)}; add the SAR layer(s), or choose an MS-only model "
                           "under Model file")
        return True, ""

    @staticmethod
    def _config(model: str):
        """The ModelConfig of ``model`` (the bundled default when empty) and its file
        information; (None, {}) if its header cannot be read here (the run then says why)."""
        if missing_dependencies():
            return None, {}
        from sarclear.checkpoint import read_header
        from sarclear.errors import SarclearError
        from sarclear.resources import default_model

        try:
            return read_header(model or default_model())
        except SarclearError:
            return None, {}

    def compute(self, parameters, context, feedback) -> dict:
        from sarclear.resources import default_model

        ms = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if ms is None:
            raise QgsProcessingException("the cloudy Sentinel-2 layer could not be loaded")
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        mask = self.parameterAsRasterLayer(parameters, "CLOUD_MASK", context)
        rect = self.parameterAsExtent(parameters, "EXTENT", context, ms.crs())
        aoi = None if rect.isNull() or rect.isEmpty() else (
            rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        extra = {"sar_units": SAR_UNITS[self.parameterAsEnum(parameters, "SAR_UNITS", context)],
                 "cog": self.parameterAsBoolean(parameters, "COG", context)}
        for name in ("MASK_BUFFER", "FILL_BUFFER"):  # absent (older models, scripts): the library's default
            if parameters.get(name) not in (None, ""):
                extra[name.lower()] = self.parameterAsInt(parameters, name, context)
        if parameters.get("MS_OFFSET") not in (None, ""):  # empty: the library's rule (declared, else none)
            extra["ms_offset"] = self.parameterAsDouble(parameters, "MS_OFFSET", context)
        batch = self.parameterAsInt(parameters, "BATCH_SIZE", context)
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        scale = self.parameterAsDouble(parameters, "MS_SCALE", context)
        extra.update({k: v for k, v in (("batch_size", batch), ("ms_scale", scale)) if v > 0})
        if overlap >= 0:
            extra["overlap"] = overlap
        if self.parameterAsBoolean(parameters, "ADAPT", context):
            extra.update(adapt=True, adapt_seconds=self.parameterAsDouble(parameters, "ADAPT_TIME", context))
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        params = RunParameters(
            name=ms.name(),
            ms=layers.layer_paths(ms),
            sar=layers.layers_paths(self.parameterAsLayerList(parameters, "SAR", context)),
            model=self.parameterAsFile(parameters, "MODEL", context) or str(default_model()),
            out=out,
            reference=layers.layer_paths(reference) if reference is not None else None,
            cloud_mask=layers.layer_paths(mask)[0] if mask is not None else "auto",
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            aoi=aoi,
            ms_bands=_names(self.parameterAsString(parameters, "MS_BANDS", context)),
            sar_channels=_names(self.parameterAsString(parameters, "SAR_CHANNELS", context)),
            overwrite=True,
            extra=extra,
        )
        result = run_decloud(params, self.decloud_progress(feedback, bool(extra.get("adapt"))), feedback.isCanceled)
        feedback.setProgress(100)
        feedback.pushInfo(f"{result.tiles} tiles in {result.seconds:.1f} s on {result.device} "
                          f"(batch {result.batch_size}); area {result.window.width} x {result.window.height} px")
        for note in result.notes:
            feedback.pushWarning(note)
        if result.metrics:
            feedback.pushInfo(f"{result.metrics['kind']} metrics: {metrics_text(result.metrics)}")
        _style_on_load(context, out, "output")
        if context.willLoadLayerOnCompletion(out):  # named for its model (a demo says so); the maps too
            kind = (result.metrics or {}).get("kind", "change")
            context.layerToLoadOnCompletionDetails(out).name = layers.result_layer_name(
                "output", kind, out, model_label(params.model))
            for key, path in sorted(result.maps.items()):
                details = QgsProcessingContext.LayerDetails(layers.result_layer_name(key, kind, str(path)),
                                                            context.project(), f"{key.upper()}_MAP")
                details.setPostProcessor(ResultStyle.get(key))
                context.addLayerToLoadOnCompletion(str(path), details)
        return {"OUTPUT": str(result.output), "RMSE_MAP": str(result.maps.get("rmse", "")),
                "SAM_MAP": str(result.maps.get("sam", "")), "METRICS": str(result.metrics_path or ""),
                **self.metric_outputs(result.metrics)}


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
        "490 nm; <b>shadow</b>: darkening in cloud shadows (0..1). The optional opacity output is the cloud "
        "and haze opacity (0..1).")

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Clear Sentinel-2 layer"))
        for name, label in (("COVERAGE", "Cloud coverage range (fraction)"), ("HAZE", "Haze opacity range"),
                            ("SHADOW", "Shadow darkening range")):
            self.addParameter(QgsProcessingParameterRange(
                name, label, QgsProcessingParameterNumber.Type.Double, optional=True))
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
        "SHADOW": ("shadow", "Shadow darkening range")}

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
        config = CloudConfig(cell_px=self.parameterAsDouble(parameters, "CELL_PX", context),
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


ALGORITHMS = (RemoveClouds, ErrorMaps, SyntheticClouds)
