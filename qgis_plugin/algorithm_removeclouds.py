"""``sarclear:removeclouds``: :func:`sarclear.inference.decloud` (SAR-optical cGAN) through
the plugin's run, with its RMSE/SAM maps and metrics; the model's needs (SAR, fitting to the
scene) are checked before the run. The library is imported in the methods only.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import layers
from .adapt_option import unavailable_reason
from .algorithm_base import ResultStyle, _advanced, _names, _SarclearAlgorithm, _style_on_load
from .buffer_option import buffer_defaults
from .environment import missing_dependencies
from .level_option import LEVELS
from .models import model_label
from .task import RunParameters, metrics_text, progress_percent, run_decloud, stage_text

DEVICES = ("auto", "cpu", "cuda")
SAR_UNITS = ("auto", "db", "linear")


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
        "<b>Model</b>: a sarclear .safetensors file; empty: the default model, sarclear-fill-guided with SAR "
        "layers (each hidden pixel filled from the clear pixels around it that look like it in SAR), else "
        "sarclear-fill-classic (the same fill without SAR); both keep the ground detail seen through thin "
        "cloud and write an uncertainty map.<br>"
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
            "CLOUD_MASK", "Cloud mask (0 clear, > 0 cloud; Sentinel-2's SCL and MSK_CLDPRB files are read as "
            "such; clear pixels keep their values)", optional=True))
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
        mask_buffer, _ = buffer_defaults()
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "MASK_BUFFER", "Detected cloud and shadow grow by (pixels; without a cloud mask layer; real clouds "
            "are wider than what the detector calls cloud)", QgsProcessingParameterNumber.Type.Integer,
            defaultValue=mask_buffer, minValue=0, maxValue=64, optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "FILL_BUFFER", "Clear pixels this close to the mask are kept but do not feed the fill (pixels; empty: "
            "9 (90 m) past the cloud's edge counting the mask buffer, so 0 with detection, 9 with a cloud mask layer)",
            QgsProcessingParameterNumber.Type.Integer, minValue=0, maxValue=64, optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "SUN_AZIMUTH", "Sun azimuth in degrees from true north, for the check that a detected shadow lies on "
            "the far side of its cloud from the sun (empty: from the product's metadata, or its sensing time and "
            "place)", QgsProcessingParameterNumber.Type.Double, minValue=0.0, maxValue=360.0, optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterEnum(
            "PRODUCT_LEVEL", "Product level of the cloudy image, for cloud detection and the uncertainty "
            "(a 10-band stack made from an L1C product is otherwise read as L2A)",
            options=[label for label, _ in LEVELS], defaultValue=0)))
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
        config, info = self._config(model, bool(self.parameterAsLayerList(parameters, "SAR", context)))
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
    def _config(model: str, with_sar: bool = False):
        """The ModelConfig of ``model`` (the bundled default when empty: the SAR-guided one
        ``with_sar``) and its file information; (None, {}) if its header cannot be read here
        (the run then says why)."""
        if missing_dependencies():
            return None, {}
        from sarclear.checkpoint import read_header
        from sarclear.errors import SarclearError
        from sarclear.resources import default_model

        try:
            return read_header(model or default_model(with_sar))
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
        level = LEVELS[self.parameterAsEnum(parameters, "PRODUCT_LEVEL", context)][1]
        if level:  # empty: the library's rule (file names, else the bands, else guessed)
            extra["product_level"] = level
        if parameters.get("MS_OFFSET") not in (None, ""):  # empty: the library's rule (declared, else none)
            extra["ms_offset"] = self.parameterAsDouble(parameters, "MS_OFFSET", context)
        if parameters.get("SUN_AZIMUTH") not in (None, ""):  # empty: from the product (sarclear.sun)
            extra["sun_azimuth"] = self.parameterAsDouble(parameters, "SUN_AZIMUTH", context)
        batch = self.parameterAsInt(parameters, "BATCH_SIZE", context)
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        scale = self.parameterAsDouble(parameters, "MS_SCALE", context)
        extra.update({k: v for k, v in (("batch_size", batch), ("ms_scale", scale)) if v > 0})
        if overlap >= 0:
            extra["overlap"] = overlap
        if self.parameterAsBoolean(parameters, "ADAPT", context):
            extra.update(adapt=True, adapt_seconds=self.parameterAsDouble(parameters, "ADAPT_TIME", context))
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        sar = layers.layers_paths(self.parameterAsLayerList(parameters, "SAR", context))
        params = RunParameters(
            name=ms.name(),
            ms=layers.layer_paths(ms),
            sar=sar,
            model=self.parameterAsFile(parameters, "MODEL", context) or str(default_model(with_sar=bool(sar))),
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
