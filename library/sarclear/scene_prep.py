"""What decloud learns about a scene before its tiles run: the detected cloud and shadow mask,
the clear pixels' statistics (the prior of tiles that see no clear pixel, and how hazy those
pixels are), and, when asked, a copy of the model fitted to the scene. Each step reads the
whole area (decimated or a central window) once; the tiles then stream
(:mod:`sarclear.inference`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .checkpoint import Model
from .fill import haze_excess
from .ground_prior import CLOUDED_DARK_EXCESS, MIN_CLEAR_PIXELS, GroundPrior
from .io import RasterStack, numpy_dtype, preview
from .radiometry import OpticalScaling
from .sar_guide import ClassKey, sar_memberships, scene_classes
from .tiling import Window

if TYPE_CHECKING:
    from .callbacks import CancelFn, ProgressFn
    from .inference import DecloudOptions
    from .masks import MaskSummary
    from .networks import ModelConfig

log = logging.getLogger(__name__)


def detect_mask(stack: RasterStack, scaling: OpticalScaling, paths: dict[str, Path], area: Window, level: str,
                opts: DecloudOptions, notes: list[str], progress: ProgressFn | None,
                cancel: CancelFn | None) -> MaskSummary:
    """Detect clouds and shadows over ``area`` of a product of ``level`` into ``paths["mask"]``
    (and the cloud probability, where the detector gives one, into ``paths["probability"]``);
    returns the detector's :class:`~sarclear.masks.MaskSummary`. Its notes (no cloud, nearly
    all cloud, which detector ran and why) join ``notes``."""
    from .mask_raster import detect_raster
    from .masks import MaskOptions

    summary = detect_raster(stack, scaling, paths["mask"], area=area, product_level=level,
                            options=MaskOptions(method=opts.mask_method, dilate_px=opts.mask_buffer),
                            sun_azimuth=opts.sun_azimuth, progress=progress, cancel=cancel,
                            overwrite=True, probability_path=paths["probability"])
    log.info("cloud mask (%s): %.1f %% cloud, %.1f %% shadow", summary.method,
             100 * summary.cloud_fraction, 100 * summary.shadow_fraction)
    notes.extend(summary.notes)  # detect_raster has logged them
    return summary


@dataclass(frozen=True)
class ClearStats:
    """What the clear pixels of a whole scene tell every tile."""

    background: np.ndarray  # (2, C): each band's mean and standard deviation, the prior of tiles
                            # that see no clear pixel at all
    haze: float             # sarclear.fill.haze_excess of the same pixels: widens the fill's uncertainty
    level: str              # the product level they were read at ("l1c" / "l2a"): a veil's de-hazing needs it
    classes: dict[ClassKey, torch.Tensor] | None = None  # a SAR-guided fill's classes: scene mean and std
                                                         # (sarclear.sar_guide.scene_classes)
    from_prior: bool = False  # the scene had (almost) no clear pixel: all of the above is the model's
                              # ground prior (sarclear.ground_prior), not this scene's
    veiled: bool = False      # the scene had (almost) no clear pixel but its darkest ground shows
                              # through: the above are over all its (veiled) pixels, and a
                              # classical fill de-hazes the observed pixels (sarclear.dehaze)


@dataclass(frozen=True)
class SceneView:
    """A decimated view of the whole area (at most 512 px a side), read once for the scene
    pass: the user-mask checks and the clear statistics both look at it."""

    ms: np.ndarray                # (C, h, w) raw optical values, NaN nodata
    hidden: np.ndarray | None     # (h, w) the mask's cloud weight (:func:`mask_weight`), with a mask


def scene_view(stacks: dict[str, RasterStack], area: Window) -> SceneView:
    """The :class:`SceneView` of ``area``: the optical stack decimated, and the mask on the
    same pixels, read as :func:`mask_encoding` says."""
    ms = preview(stacks["ms"], 512, area)
    hidden = None
    if "mask" in stacks:
        m = stacks["mask"].open().read_decimated(area, ms.shape[2], ms.shape[1])[0]
        hidden = mask_weight(m, np.isfinite(m), stacks["mask"].dtype, mask_encoding(stacks["mask"]))
    return SceneView(ms, hidden)


def clear_stats(view: SceneView, stacks: dict[str, RasterStack], scaling: OpticalScaling, area: Window,
                level: str, config: ModelConfig | None = None) -> ClearStats | None:
    """The :class:`ClearStats` of the clear pixels of the scene's decimated ``view`` of ``area``
    (product ``level`` "l1c" / "l2a"). With fewer than :data:`~sarclear.ground_prior.MIN_CLEAR_PIXELS`
    clear pixels where even the darkest pixels are cloud (:data:`~sarclear.ground_prior.CLOUDED_DARK_EXCESS`),
    the model's ground prior where its config carries one (``from_prior``); else over all valid
    pixels when there is no clear one (haze: the ground shows through; ``veiled`` wherever there
    are too few and the darkest pixels are not cloud); None when the view has no valid pixel.
    With the ``config`` of a SAR-guided model and SAR in ``stacks``, also its classes' scene
    means, from the same view of the SAR."""
    refl = scaling.to_reflectance(view.ms)  # (C, h, w), NaN nodata
    ok = np.isfinite(refl).all(axis=0)
    if not ok.any():
        return None
    veiled = False
    if view.hidden is not None:
        clear = ok & (view.hidden == 0)
        prior = GroundPrior.from_table(config.ground_prior) if config is not None else None
        few = int(clear.sum()) < MIN_CLEAR_PIXELS
        clouded = few and haze_excess(refl[:, ok], stacks["ms"].names, level) >= CLOUDED_DARK_EXCESS
        if prior is not None and clouded:
            background, classes = prior.at_level(level, config.bands)
            guided = config.sar_guide and "sar" in stacks
            return ClearStats(background, 0.0, level, classes if guided else None, from_prior=True)
        veiled = few and not clouded
        if clear.any():
            ok = clear
    seen = refl[:, ok].astype(np.float64)
    classes = None
    if config is not None and config.sar_guide and "sar" in stacks:
        sar_db = torch.from_numpy(stacks["sar"].open().read_decimated(area, refl.shape[2], refl.shape[1]))
        sar_ok = torch.isfinite(sar_db).all(dim=0)
        tents = sar_memberships(torch.nan_to_num(sar_db)[None], config.sar_ranges, config.sar_guide,
                                valid=sar_ok[None, None])
        x = torch.from_numpy(np.nan_to_num(refl)[None]).float()
        classes = scene_classes(x, torch.from_numpy(ok)[None, None] & sar_ok[None, None], tents)
    return ClearStats(np.stack([seen.mean(axis=1), seen.std(axis=1)]).astype(np.float32),
                      haze_excess(seen, stacks["ms"].names, level), level, classes, veiled=veiled)


def fill_notes(stats: ClearStats | None) -> list[str]:
    """Warnings about what a scene's fill rests on: the model's ground prior (no clear pixel, the
    darkest ones cloud), or the de-hazed input (no clear pixel, the darkest ones ground: a veil
    over the whole scene, benchmarks/overcast.py; or a small image whose clear ground the mask's
    buffer hides)."""
    if stats is None:
        return []
    if stats.from_prior:
        return ["the mask leaves (almost) no clear pixel: the fill is the model's ground prior, the typical "
                "clear ground of its training places" + (" for each pixel's SAR class" if stats.classes else "")
                + ", not this scene's own; read it as a rough guess (see the uncertainty map)"]
    if stats.veiled:
        return ["the mask leaves (almost) no clear pixel, yet the scene's darkest pixels are not as bright as "
                "cloud: either a veil that the ground shows through, or clouds whose clear ground in between "
                "the mask hides too (its buffer, on a small image). A classical fill then de-hazes the input: "
                "it takes off the brightness the veil adds, read from the darkest ground in each 320 m "
                "window, and leaves the thick parts of any cloud as they are; with clear ground in between, "
                "a smaller mask buffer leaves the fill something to draw from"]
    return []


#: Sentinel-2 L2A scene classification (SCL) classes that hide the ground: 1 saturated or
#: defective, 3 cloud shadow, 8 and 9 cloud (medium, high probability), 10 thin cirrus. 0 is no
#: data; the others (2 dark area, 4 vegetation, 5 bare soil, 6 water, 7 unclassified, 11 snow)
#: are clear.
SCL_HIDDEN = (1, 3, 8, 9, 10)
#: The band name of the stack that holds decloud's own detected mask (0 clear, 1 cloud, 2 shadow).
DETECTED_MASK = "detected mask"


def mask_encoding(stack: RasterStack) -> str:
    """How a caller's cloud-mask raster is read (:func:`mask_weight`): ``"scl"``, Sentinel-2's
    scene classification, and ``"percent"``, its cloud probability in percent (0-100), known by
    the file names ESA gives them (``..._SCL_20m``, ``MSK_CLDPRB_20m``) or the band description;
    else ``"probability"`` (floating point: 0 to 1) or ``"binary"`` (integers: > 0 is cloud).
    sarclear's own detected mask (:data:`DETECTED_MASK`) is always binary, whatever its name."""
    if stack.bands[0].name == DETECTED_MASK:
        return "binary"
    names = f"{Path(stack.bands[0].path).stem} {stack.descriptions[0]}".upper()
    if re.search(r"(^|[^A-Z])SCL([^A-Z]|$)", names):
        return "scl"
    if "CLDPRB" in names:
        return "percent"
    return "probability" if numpy_dtype(stack.dtype).kind == "f" else "binary"


#: How :func:`mask_encoding`'s encodings are read, for notes.
ENCODING_NOTES = {
    "scl": "the cloud mask is read as Sentinel-2's scene classification (SCL): classes "
           f"{', '.join(map(str, SCL_HIDDEN))} (defective, cloud shadow, cloud, cirrus) are hidden, 0 is no data, "
           "the others are clear",
    "percent": "the cloud mask is read as Sentinel-2's cloud probability in percent (MSK_CLDPRB): 0-100",
}


def mask_weight(raw: np.ndarray, valid: np.ndarray, dtype: int, encoding: str | None = None) -> np.ndarray:
    """Cloud-mask raster values -> cloud weight in [0, 1], by ``encoding``
    (:func:`mask_encoding`; default: by ``dtype``): binary integers: > 0 is cloud; floating
    point: a probability, clipped to [0, 1]; percent: divided by 100; SCL: 1 for
    :data:`SCL_HIDDEN`. Nodata (``~valid``, NaN, SCL's 0) counts as cloud."""
    encoding = encoding or ("probability" if numpy_dtype(dtype).kind == "f" else "binary")
    missing = ~np.isfinite(raw) | ~valid
    values = np.where(missing, 0, raw)
    if encoding == "scl":
        m = np.isin(values, SCL_HIDDEN) | (values == 0)
    elif encoding == "percent":
        m = np.clip(values / 100.0, 0.0, 1.0)
    elif encoding == "probability":
        m = np.clip(values, 0.0, 1.0)
    else:
        m = values > 0
    m = np.asarray(m, np.float32)
    m[missing] = 1.0
    return m


def user_mask_notes(view: SceneView, mask: RasterStack, name: str) -> list[str]:
    """Warnings about a cloud mask the caller gave (``mask``, called ``name``), from the scene's
    decimated ``view``: one that hides no valid pixel (the output then equals the input) or
    nearly all of them (the fill has almost nothing to draw from). Both are also what a raster
    in another encoding gives (a class map, a probability in percent), so the notes say how a
    mask is read."""
    from .masks import MaskOptions

    limits = MaskOptions()
    valid = np.isfinite(view.ms).all(axis=0)
    if view.hidden is None or not valid.any():
        return []
    encoding = mask_encoding(mask)
    share = float(view.hidden[valid].mean())
    notes = [ENCODING_NOTES[encoding]] if encoding in ENCODING_NOTES else []
    how = ("A mask reads 0 as clear and anything above 0 as cloud (a floating-point mask: the cloud "
           "probability, 0 to 1)")
    if share < limits.no_cloud_fraction:
        return [*notes, f"the cloud mask {name} marks no cloud ({100 * share:.2f} % of the valid pixels): the output "
                f"will equal the input. {how}; if the scene has clouds, check the mask's values, or let "
                "sarclear detect the clouds"]
    if share > limits.overcast_fraction:
        return [*notes, f"the cloud mask {name} marks {100 * share:.1f} % of the valid pixels as cloud: the "
                "reconstruction rests on the few clear pixels (and on SAR, for a model that reads it). "
                f"{how}: a class map such as Sentinel-2's scene classification (SCL), or a cloud probability "
                "in percent, must be converted first"]
    return notes


def adapt_to_scene(model: Model, stacks: dict[str, RasterStack], scaling: OpticalScaling, area: Window,
                   opts: DecloudOptions, device: torch.device, notes: list[str], progress: ProgressFn | None,
                   cancel: CancelFn | None) -> Model:
    """A copy of ``model`` fitted to the scene: its clear pixels in the central window of
    ``area`` (at most ``adapt_size`` a side), with synthetic clouds drawn over them."""
    from .adapt import AdaptOptions, adapt_model, estimate_seconds

    side = opts.adapt_size
    win = Window(area.col_off + max(0, (area.width - side) // 2), area.row_off + max(0, (area.height - side) // 2),
                 min(side, area.width), min(side, area.height))
    raw, valid = stacks["ms"].open().read(win)
    ms = scaling.to_reflectance(raw)
    sar = None
    if "sar" in stacks:
        sar, sar_valid = stacks["sar"].open().read(win)
        valid &= sar_valid
    clear = valid.copy()
    if "mask" in stacks:
        m, m_valid = stacks["mask"].open().read(win)
        clear &= mask_weight(m[0], m_valid, stacks["mask"].dtype, mask_encoding(stacks["mask"])) == 0
    options = AdaptOptions(seconds=opts.adapt_seconds, fill_buffer=opts.fill_buffer)
    eta = estimate_seconds(model, win.height, win.width, options, device)
    log.info("fitting the model to this scene (%d x %d px, %.0f %% clear): about %.0f s", win.width, win.height,
             100 * clear.mean(), eta)
    if clear.mean() < 0.05:
        notes.append(f"too few clear pixels to fit the model to this scene ({100 * clear.mean():.1f} %); "
                     "the model is used as trained")
        log.warning(notes[-1])
        return model
    adapted = adapt_model(model, ms, sar, clear, options, progress=progress, cancel=cancel)
    rec = adapted.info.get("adapted", {})
    note = f"model fitted to this scene for {opts.adapt_seconds:.0f} s on {clear.sum()} clear pixels"
    if rec.get("kept") == "as trained":
        note += (f"; the fit did not lower the error on held-out synthetic clouds of the scene "
                 f"({rec['held_out_error_after']:.4f} against {rec['held_out_error_before']:.4f}), so the model "
                 "is used as trained")
        log.warning(note)
    notes.append(note)
    return adapted
