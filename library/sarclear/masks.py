"""Cloud and cloud-shadow detection for Sentinel-2: which pixels are seen clearly, which are
hidden by cloud or shadow, and which hold no data.

The result is a class per pixel, ``CLEAR`` (0), ``CLOUD`` (1), ``SHADOW`` (2) or ``NODATA``
(255), and a cloud probability in [0, 1] where the detector gives one. Two detectors exist
(:mod:`sarclear.mask_detectors`): the ukis-csmask CNNs (optional extra ``masks``), and
documented spectral rules that always work. ``method="auto"`` takes the CNN when it is
installed and the area is large enough for it, else the rules; the log and
:attr:`MaskResult.method` say which ran.

How a mask is made (both detectors):

1. *Working resolution.* The bands are averaged over blocks of about 30 m (3 x 3 pixels of
   10 m data), over valid pixels only; the CNN was measured to put false cloud and shadow on
   farmland, sea and beaches at native 10 m, and to be right at 30 m.
2. *Detection* at 30 m. The CNN needs context: ``auto`` runs it on areas at least 2.4 km
   across (80 blocks of 30 m, 240 px of 10 m data; smaller ones are mirrored to its 256-block
   tile), and the spectral rules on smaller chips (BigEarthNet's 120 px, say); forcing the CNN
   on them is allowed, with a note. Measured by ``benchmarks/detector_context.py``
   (docs/quality/detector_context.md): on real clear ground cut into 240-px crops the CNN
   hides 0.09 % of the pixels (the rules 0.03 %), on 120-px crops 0.7 % (the rules 0.03 %);
   on real 256-264 px cloudy scenes the rules leave cloud edges and shadows that the CNN
   finds (whole-scene RMSE of default decloud against a 10-day reference 0.0283 with the CNN,
   0.0317 with the rules; 2026-12-05). On synthetic clouds the CNN costs: it hides more clear ground
   between dense cloud fields (same benchmark); synthetic clouds lack the haze around real ones.
   Until 2026-12-02 the limit was 7.68 km, which left SEN12MS-CR-sized scenes (2.56 km) to the
   rules. *Where the CNN runs, the rules' cloud test runs beside it, and their cloud bodies
   that hold a 150 m core and are as bright as thick cloud
   (:func:`sarclear.mask_detectors.thick_cloud_bodies`) are cloud too.* The CNN reads texture and
   passes over flat, bright cloud bodies: a uniform thick cloud of 0.5 reflectance over the
   sea gets none of its cloud class, and it left 15-29 % of the opaque cores of the quality
   benchmark's synthetic thick clouds on 384-px crops clear; the rules found every one of
   those. On the real clear ground of that benchmark (crops of 120-384 px) the union hides
   exactly what the CNN alone hides, and on the real cloudy scenes (SSL4EO, the SEN12MS-CR
   sample, the overcast Major TOM cell) it changes no pixel (the core keeps out bright roofs:
   without it, a 150 m roof in Virginia's farmland was hidden). The cloud probability is the
   CNN's, and 1 where the rules call cloud (they do not grade).
3. *Shadow near cloud only.* Shadow pixels farther than ``shadow_max_distance_m`` (1.5 km)
   from any cloud pixel become clear: the CNN reads dark soil and burn scars as shadow. And
   there are at most ``shadow_cloud_ratio`` (1.5) shadow pixels per cloud pixel, the nearest
   to a cloud kept: a shadow is its cloud's projection, no larger than the cloud, so a far
   larger shadow class is mostly dark water or forest near a small cloud. *Where the sun's
   azimuth is known* (``sun_azimuth_deg``, from the input's metadata or its sensing time and
   place: :mod:`sarclear.sun`), a shadow must also have a cloud within that distance toward the
   sun, within ``shadow_cone_deg`` (30 degrees) of its azimuth, from at least one of its pixels
   (a shadow is a connected part of the shadow class, :data:`SHADOW_LINK_BLOCKS`: the far side
   of a large shadow has no cloud within reach toward the sun): a shadow falls on the far side of its cloud from
   the sun, so dark ground on a cloud's sunny side is ground. On the real cloudy SSL4EO scene
   (sun at 137 degrees) this keeps all of the CNN's shadow, on the overcast Major TOM cell all of
   it too (per pixel, 1.6 % of that overcast cell, dark cloud far from the cloud class, would have
   been let through as clear). *The rules' shadow must also have its cloud's shape*
   (:func:`cast_shadow`, Fmask's shadow matching): only the dark ground under the cloud moved
   away from the sun, by the distances at which that shape matches best, stays shadow, and
   none where no distance matches (with the sun unknown, every direction is tried). The rules
   call any dark ground beside a cloud shadow; on the quality benchmark's train-split chips
   under synthetic thick cloud, which casts no shadow, that was about 17 % of the clear
   ground, and it was filled. With the match, the default fill's error there fell from 0.0728
   to 0.0633 (normalized convolution's from 0.0867 to 0.0790), and under thick cloud with
   shadows from 0.0631 to 0.0549. Forcing the rules on the real cloudy SSL4EO scene (whose
   shadows lie 0.5-0.6 km from their clouds) costs little there: 0.0317 against 0.0312
   whole-scene RMSE (:mod:`benchmarks.detector_context`). The CNN's shadows are left as they are: on that
   scene the match would hide 70 % rather than 87 % of it, and the default fill would score
   0.0336 against mean fill's 0.0307 over what stays hidden (0.0285 against 0.0280 without it).
4. *Back to the input grid* (nearest for classes, bilinear for the probability), then cloud
   and shadow grow by ``dilate_px`` pixels, 90 m by default (cloud wins where both reach), so
   thin edges and the haze around a cloud are hidden too. 90 m is Fmask's buffer; on the real
   cloudy scene of the project's benchmark (benchmarks/real_clouds.py), the observed pixels'
   RMSE against a 10-day-earlier date falls from 0.069 at 10-30 m from the detected cloud to
   0.043 at 60-100 m and 0.031 at 200-400 m. Nodata pixels are marked ``NODATA`` last; they
   never count as cloud. Nodata is what the caller marks invalid, non-finite values, and pixels with no positive band
   (Sentinel-2's fill value 0, also where a file does not declare it).

Distances are Chebyshev (square neighbourhoods). :func:`sarclear.mask_raster.detect_raster` runs
this over a raster of any size in windows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .defaults import MASK_BUFFER_PX
from .errors import InputError, SarclearError
from .mask_detectors import (
    CLEAR,
    CLOUD,
    SHADOW,
    CsmaskRunner,
    block_mean,
    csmask_available,
    csmask_band_order,
    dilate,
    rules_missing,
    shadow_reference,
    spectral_rules,
    thick_cloud_bodies,
    upsample_nearest,
    upsample_smooth,
)
from .product_level import guess_product_level
from .shadow_geometry import SHADOW_LINK_BLOCKS, bound_shadow, cast_shadow, grown_within, toward_sun

log = logging.getLogger(__name__)

__all__ = ["CLEAR", "CLOUD", "NODATA", "SHADOW", "MaskOptions", "MaskResult", "MaskSummary", "detect_array"]

NODATA = 255
METHODS = ("auto", "csmask", "rules")
RULES_LABEL = "spectral rules"


@dataclass
class MaskOptions:
    """How to detect clouds; every field has a default that was checked on real scenes."""

    method: str = "auto"                  # auto (csmask if importable, else rules), csmask, rules
    shadow_max_distance_m: float = 1500.0  # shadow farther than this from any cloud is clear
    shadow_cloud_ratio: float = 1.5       # at most this many shadow pixels per cloud pixel (nearest kept)
    dilate_px: int = MASK_BUFFER_PX       # cloud and shadow grow by this many input pixels (90 m, Fmask's)
    working_resolution_m: float = 30.0    # detection runs on blocks of about this size
    min_context_m: float = 2400.0         # the CNN runs on areas at least this wide (80 blocks of 30 m)
    window_px: int = 2048                 # detect_raster: window size in input pixels
    overlap_px: int = 320                 # detect_raster: context read on each side of a window
    threads: int = 0                      # onnxruntime threads (0: its own choice)
    sun_azimuth_deg: float | None = None  # the sun, clockwise from the grid's up; None: unknown (step 3)
    shadow_cone_deg: float = 30.0         # a shadow's cloud lies within this angle of the sun's azimuth
    no_cloud_fraction: float = 0.001      # below this cloud+shadow fraction: "no cloud" note
    overcast_fraction: float = 0.95       # above this cloud+shadow fraction: "nearly all cloud" note

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown cloud-mask method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.shadow_max_distance_m < 0 or self.dilate_px < 0 or self.overlap_px < 0:
            raise ValueError("shadow_max_distance_m, dilate_px and overlap_px must be >= 0")
        if not self.shadow_cloud_ratio >= 0:
            raise ValueError("shadow_cloud_ratio must be >= 0")
        if not 0 < self.shadow_cone_deg <= 90:
            raise ValueError("shadow_cone_deg must be in (0, 90]")
        if self.working_resolution_m <= 0 or self.window_px < 16:
            raise ValueError("working_resolution_m must be > 0 and window_px >= 16")


@dataclass
class MaskResult:
    """Classes (H, W) uint8, cloud probability (H, W) float32 in [0, 1] (NaN on nodata) or
    None, the detector that ran, and notes for the user."""

    classes: np.ndarray
    probability: np.ndarray | None
    method: str
    notes: list[str] = field(default_factory=list)

    def fractions(self) -> tuple[float, float, int]:
        """(cloud fraction, shadow fraction, valid pixels); fractions of the valid pixels."""
        return class_fractions(*count_classes(self.classes))


@dataclass
class MaskSummary:
    """What :func:`detect_raster` wrote and found."""

    path: Path
    method: str
    cloud_fraction: float
    shadow_fraction: float
    valid_pixels: int
    notes: list[str] = field(default_factory=list)
    probability_path: Path | None = None


# --------------------------------------------------------------------------- choices


def choose_method(opts: MaskOptions, bands: Sequence[str], extent_m: float) -> tuple[str, list[str]]:
    """"csmask" or "rules" for ``bands`` over an area ``extent_m`` across (its shorter side),
    and notes saying why when the choice is not the obvious one."""
    missing = rules_missing(bands)
    if missing:
        raise InputError(f"cloud detection needs bands {', '.join(missing)}, which the optical "
                         f"input lacks (it has {', '.join(bands)}); supply them or give a cloud mask")
    small = extent_m < opts.min_context_m
    small_note = (f"the area is {extent_m / 1000:.2f} km across, less than the {opts.min_context_m / 1000:.2f} km "
                  "the CNN detector needs for context")
    if opts.method == "rules":
        return "rules", []
    if opts.method == "csmask":
        if not csmask_available():
            raise SarclearError("the cloud detector ukis-csmask is not installed: install sarclear's 'masks' "
                                "extra (pip install 'ukis-csmask[cpu]'), or use the spectral rules")
        try:
            csmask_band_order(bands)
        except ValueError as err:
            raise InputError(f"{err}, which the optical input lacks; supply it or use the spectral rules") from None
        return "csmask", [small_note + ": its result may show false cloud or shadow"] if small else []
    if not csmask_available():
        return "rules", ["ukis-csmask is not installed: clouds detected by spectral rules"]
    if small:
        return "rules", [small_note + ": spectral rules used instead"]
    return "csmask", []


# --------------------------------------------------------------------------- one array


def detect_array(reflectance: np.ndarray, bands: Sequence[str], valid: np.ndarray,
                 product_level: str | None = None, pixel_size_m: float = 10.0,
                 options: MaskOptions | None = None) -> MaskResult:
    """Detect cloud and shadow in reflectance (C, H, W) float32 with band names ``bands``
    (Sentinel-2 names, any subset with B2, B3, B4 and B8 or B8A) and a validity mask (H, W).
    ``product_level``: "l1c" (top of atmosphere), "l2a" (surface) or None (guessed: B10
    present -> L1C)."""
    opts = options or MaskOptions()
    bands = tuple(bands)
    if reflectance.ndim != 3 or reflectance.shape[0] != len(bands) or valid.shape != reflectance.shape[1:]:
        raise InputError(f"reflectance {reflectance.shape} must be (C, H, W) with C = {len(bands)} bands "
                         f"and valid (H, W); got valid {valid.shape}")
    level, notes = guess_product_level(product_level, bands)
    method, why = choose_method(opts, bands, min(valid.shape) * pixel_size_m)
    runner = CsmaskRunner(level, bands, opts.threads) if method == "csmask" else None
    ok = valid & np.isfinite(reflectance).all(axis=0)
    result = detect_window(reflectance, bands, ok, level, pixel_size_m, opts, runner)
    result.notes = notes + announce(result.method, why + scene_notes(*result.fractions(), opts))
    return result


def announce(method: str, warnings: list[str]) -> list[str]:
    """Log which detector ran and the warnings; return the warnings."""
    log.info("cloud mask by %s", method)
    for note in warnings:
        log.warning(note)
    return warnings


def detect_window(x: np.ndarray, bands: Sequence[str], valid: np.ndarray, level: str, pixel_size_m: float,
                  opts: MaskOptions, runner: CsmaskRunner | None,
                  reference: tuple[float, float] | None = None) -> MaskResult:
    """The pipeline of the module docstring on one array of reflectance (C, H, W) whose top-left
    corner is a block corner, with the detector ``runner`` (None: the rules) and the rules'
    shadow ``reference`` (None: from this array); no notes (:func:`detect_array` and
    :func:`sarclear.mask_raster.detect_raster` add them)."""
    h, w = valid.shape
    factor = max(1, round(opts.working_resolution_m / pixel_size_m))
    valid = valid & (x > 0).any(axis=0)
    if not valid.any():
        prob = np.full((h, w), np.nan, np.float32) if runner else None
        return MaskResult(np.full((h, w), NODATA, np.uint8), prob, runner.label if runner else RULES_LABEL)
    xs, vs = block_mean(x, valid, factor)
    if runner is not None:
        probs = runner(xs, bands, vs)
        coarse = probs.argmax(axis=0).astype(np.uint8)
        ruled = thick_cloud_bodies(xs, bands, level, vs)  # flat, bright bodies the CNN passed over
        coarse[ruled] = CLOUD
        cloud_p = np.where(ruled, np.float32(1), probs[1])
    else:
        if reference is None:
            reference = shadow_reference(xs, bands, vs, level)
        coarse, cloud_p = spectral_rules(xs, bands, level, reference), None
    coarse[~vs] = CLEAR
    reach = round(opts.shadow_max_distance_m / (pixel_size_m * factor))
    coarse[(coarse == SHADOW) & ~dilate(coarse == CLOUD, reach)] = CLEAR
    if opts.sun_azimuth_deg is not None:
        shadow = coarse == SHADOW
        seeds = shadow & toward_sun(coarse == CLOUD, opts.sun_azimuth_deg, reach, opts.shadow_cone_deg)
        coarse[shadow & ~grown_within(seeds, shadow, SHADOW_LINK_BLOCKS)] = CLEAR
    if runner is None:  # the rules' shadow must have its cloud's shape (step 3)
        shadow = coarse == SHADOW
        coarse[shadow & ~cast_shadow(coarse == CLOUD, shadow, vs, opts.sun_azimuth_deg, reach)] = CLEAR
    bound_shadow(coarse, opts.shadow_cloud_ratio, reach)
    classes = upsample_nearest(coarse, factor, (h, w)).copy()
    if opts.dilate_px:
        cloud = dilate(classes == CLOUD, opts.dilate_px)
        shadow = dilate(classes == SHADOW, opts.dilate_px)
        classes[shadow] = SHADOW
        classes[cloud] = CLOUD
    classes[~valid] = NODATA
    prob = None
    if cloud_p is not None:
        prob = upsample_smooth(cloud_p, factor, (h, w)).clip(0, 1)
        prob[~valid] = np.nan
    return MaskResult(classes, prob, runner.label if runner else RULES_LABEL)


def count_classes(classes: np.ndarray) -> tuple[int, int, int]:
    """Cloud, shadow and valid pixel counts of a class array."""
    counts = np.bincount(classes.ravel(), minlength=256)
    return int(counts[CLOUD]), int(counts[SHADOW]), int(classes.size - counts[NODATA])


def class_fractions(cloud: int, shadow: int, valid: int) -> tuple[float, float, int]:
    """Cloud and shadow shares of the valid pixels, and their count."""
    return (cloud / valid if valid else 0.0), (shadow / valid if valid else 0.0), valid


def scene_notes(cloud_fraction: float, shadow_fraction: float, valid_pixels: int, opts: MaskOptions) -> list[str]:
    """Warnings about a whole scene: no valid pixel, no cloud, or nearly all cloud."""
    if valid_pixels == 0:
        return ["the optical input has no valid pixel: nothing to detect"]
    if cloud_fraction + shadow_fraction < opts.no_cloud_fraction:
        return [f"no cloud or shadow detected ({100 * (cloud_fraction + shadow_fraction):.2f} % of valid pixels): "
                "nothing to remove, the output will equal the input"]
    if cloud_fraction + shadow_fraction > opts.overcast_fraction:
        return [f"nearly all cloud ({100 * cloud_fraction:.1f} % cloud, {100 * shadow_fraction:.1f} % shadow "
                "of valid pixels): the reconstruction rests on the few clear pixels (and on SAR, for a model "
                "that reads it) and is much less certain than under broken cloud"]
    return []
