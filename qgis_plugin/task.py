"""The background run: a QgsTask around :func:`sarclear.inference.decloud`.

``run()`` executes on a worker thread and touches no GUI object: it calls the library with
a progress callback (-> :meth:`QgsTask.setProgress`) and a cancel callback
(-> :meth:`QgsTask.isCanceled`) and keeps the outcome in plain Python attributes.
``finished()`` runs on the main thread and hands the task to the plugin's callback, which
adds the layers or shows the message. Library errors arrive as their message, never as a
traceback; an unexpected exception is reported in one line and its traceback goes to the
QGIS log (for bug reports).
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .environment import missing_dependencies

LOG_TAG = "sarclear"
log = logging.getLogger(__name__)


@dataclass
class RunParameters:
    """Everything a decloud run needs, as plain values (no QGIS object: the worker thread
    reads it). Built by the dialog; paths are files GDAL reads."""

    name: str                                   # the run's name (layer group)
    ms: list[str]                               # cloudy Sentinel-2 file(s)
    sar: list[str]                              # Sentinel-1 file(s): one multi-band or one per polarisation
    model: str                                  # model file (.safetensors)
    out: str                                    # reconstruction GeoTIFF; maps go beside it
    reference: list[str] | None = None          # cloud-free reference file(s)
    cloud_mask: str | None = "auto"             # "auto": detected by the library; None: no mask; or a file
    device: str = "auto"                        # auto, cpu, cuda
    aoi: tuple[float, float, float, float] | None = None  # in the MS layer's CRS; None: all of it
    ms_bands: list[str] | None = None           # the user's band names, in file order
    sar_channels: list[str] | None = None
    overwrite: bool = False                     # the user agreed to replace existing files
    model_label: str = ""                       # how the model is named in the output layer names
    extra: dict = field(default_factory=dict)   # other DecloudOptions fields (batch_size...)


def output_files(out: str | os.PathLike, with_reference: bool) -> list[Path]:
    """Every file a run on ``out`` may write: the reconstruction, its maps and metrics, the
    detected cloud mask and the uncertainty map."""
    from sarclear.evaluation import map_paths
    from sarclear.inference import side_paths

    return [Path(out), *map_paths(out, with_reference).values(), *side_paths(out).values()]


def metrics_text(metrics: dict) -> str:
    """The metrics of a run or an evaluation in one line, as the plugin shows them."""
    return (f"RMSE {metrics['rmse']:.4f}, SAM {metrics['sam_deg']:.2f}°, MAE {metrics['mae']:.4f}, "
            f"PSNR {metrics['psnr']:.1f} dB, SSIM {metrics['ssim']:.3f}")


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def run_decloud(params: RunParameters, progress: Callable[[int, int, str], None] | None = None,
                cancel: Callable[[], bool] | None = None, model=None):
    """Call :func:`sarclear.inference.decloud` with ``params``; returns its DecloudResult.

    On cancel the library leaves no half-written file; a cancel that comes after the
    reconstruction was committed (while the maps are computed) would leave it alone, so the
    files this run wrote are removed too: a cancelled run leaves nothing behind.
    """
    from sarclear.errors import Cancelled
    from sarclear.inference import DecloudOptions, decloud

    files = output_files(params.out, params.reference is not None)
    before = {p: _signature(p) for p in files}
    options = DecloudOptions(device=params.device, aoi=params.aoi, cloud_mask=params.cloud_mask,
                             ms_bands=params.ms_bands, sar_channels=params.sar_channels,
                             overwrite=params.overwrite, **params.extra)
    try:
        result = decloud(params.ms, params.sar or None, model or params.model, params.out, reference=params.reference,
                         maps=True, options=options, progress=progress, cancel=cancel)
        if cancel is not None and cancel():  # cancelled after the library's last check
            raise Cancelled("cancelled; nothing was kept")
        return result
    except Cancelled:
        for p in files:
            if _signature(p) != before[p]:  # written (or replaced) by this run
                p.unlink(missing_ok=True)
        raise


#: the stages a run reports (DecloudTask.stageChanged), besides "n/N tiles"
STAGE_LOADING = "loading PyTorch and the model…"
STAGE_MAPS = "writing the RMSE and SAM maps…"
STAGE_FITTING = "fitting the model to the scene"
#: what sarclear.adapt reports its progress in: seconds of its time budget, or fixed steps
FITTING_UNITS = ("s", "steps")


def stage_text(done: int, total: int, what: str) -> str:
    """A progress report of the library in words: "3/9 tiles", "fitting the model to the
    scene: 40 of 180 s"."""
    if what == "s":
        return f"{STAGE_FITTING}: {done} of {total} s"
    if what == "steps":
        return f"{STAGE_FITTING}: step {done} of {total}"
    return f"{done}/{total} {what}"


def progress_percent(done: int, total: int, what: str, fitting: bool = False) -> float:
    """Where a progress report puts the run's bar: cloud detection in the first 10 %, then
    fitting the model to the scene (when chosen) up to 50 %, the tiles up to 90 %, the
    maps the last 10 %."""
    part = done / max(total, 1)
    tiles_from = 50.0 if fitting else 10.0
    if what == "tiles":
        return tiles_from + (90.0 - tiles_from) * part
    if what in FITTING_UNITS:
        return 10.0 + 40.0 * part
    return 10.0 * part


class DecloudTask(QgsTask):
    """Runs :func:`run_decloud` in the background; cancellable from the task manager or the
    dialog. After it ends, exactly one of ``result``, ``error`` or ``cancelled`` is set.
    ``stageChanged`` says what it is doing (loading the model, n/N tiles, writing maps)."""

    stageChanged = pyqtSignal(str)

    def __init__(self, params: RunParameters, on_finished: Callable[[DecloudTask], None] | None = None):
        super().__init__(f"sarclear: {params.name}", QgsTask.Flag.CanCancel)
        self.params = params
        self.on_finished = on_finished
        self.result = None          # sarclear.inference.DecloudResult
        self.error: str | None = None
        self.cancelled = False
        self.stage = ""
        self.stages: list[str] = []  # every stage reported, in order (shown in the dialog)

    def _report(self, text: str) -> None:
        self.stages.append(text)
        self.stageChanged.emit(text)

    def _progress(self, done: int, total: int, what: str) -> None:
        text = stage_text(done, total, what)
        if text != self.stage:  # fitting reports every step, in whole seconds: say each once
            self.stage = text
            self._report(text)
        self.setProgress(progress_percent(done, total, what, bool(self.params.extra.get("adapt"))))
        if done >= total and what == "tiles":
            self._report(STAGE_MAPS)

    def run(self) -> bool:  # worker thread: no GUI here
        self._report(STAGE_LOADING)
        missing = missing_dependencies()  # the first torch import happens here, not in the GUI thread
        if missing:
            self.error = missing
            return False
        from sarclear.errors import Cancelled, SarclearError

        try:
            from sarclear.checkpoint import load_model
            from sarclear.devices import resolve_device

            model = load_model(self.params.model, resolve_device(self.params.device))
            if self.isCanceled():
                raise Cancelled("cancelled; nothing was written")
            self.result = run_decloud(self.params, self._progress, self.isCanceled, model=model)
        except Cancelled:
            self.cancelled = True
            return False
        except SarclearError as exc:
            from .messages import describe

            self.error = describe(exc, "dialog")
            return False
        except ImportError as exc:  # e.g. a torch that imports but misses a piece
            self.error = f"a Python package failed to import: {exc}"
            return False
        except Exception as exc:  # a bug: one line for the user, the traceback in the log
            self.error = f"unexpected error ({type(exc).__name__}: {exc}); details in the sarclear log"
            self.trace = traceback.format_exc()
            return False
        self.setProgress(100.0)
        return True

    def finished(self, ok: bool) -> None:  # main thread
        if getattr(self, "trace", None):
            QgsMessageLog.logMessage(self.trace, LOG_TAG, Qgis.MessageLevel.Critical)
        if not ok and not self.error and self.result is None:
            self.cancelled = True  # cancelled before run() started
        if self.on_finished is not None:
            self.on_finished(self)


class ProbeTask(QgsTask):
    """Imports torch and reads a model's header and the bundled models' headers in the
    background (the first torch import takes seconds: never in the GUI thread), and asks
    whether CUDA is usable. ``on_finished(self)`` runs on the main thread."""

    def __init__(self, model: str, bundled: list[str], on_finished: Callable[[ProbeTask], None]):
        super().__init__("sarclear: loading model…")
        self.model = model
        self.bundled = bundled
        self.on_finished = on_finished
        self.missing: str | None = None
        self.config = None                    # sarclear.networks.ModelConfig of ``model``
        self.info: dict = {}                  # and the information stored with it
        self.error: str | None = None
        self.sar_channels: dict[str, tuple[str, ...]] = {}  # bundled model -> its SAR channels
        self.cuda: tuple[bool, str] | None = None

    def run(self) -> bool:  # worker thread
        self.missing = missing_dependencies()
        if self.missing:
            return True
        from sarclear.checkpoint import read_header
        from sarclear.devices import cuda_status
        from sarclear.errors import SarclearError

        self.cuda = cuda_status()
        for path in self.bundled:
            with contextlib.suppress(SarclearError):  # an unreadable one keeps its plain label
                self.sar_channels[path] = read_header(path)[0].sar_channels
        if self.model:
            try:
                self.config, self.info = read_header(self.model)
            except SarclearError as exc:
                from .messages import describe

                self.error = describe(exc)
        return True

    def finished(self, ok: bool) -> None:  # main thread
        if self.on_finished is None:
            return
        try:
            self.on_finished(self)
        except Exception:  # never let an exception out of a Qt virtual (it aborts QGIS)
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.MessageLevel.Critical)
