"""De-hazing a scene that a veil hides whole: the observed pixels less the veil's brightness.

When the mask hides every pixel of a scene but its darkest ground still shows through (a veil:
haze or thin cloud over all of it, :attr:`sarclear.scene_prep.ClearStats.veiled`), a classical
fill has no clear pixel to draw from. It used to put the mean of all the (veiled) pixels there,
with the fine detail on top: the broad pattern of the ground was flattened and the veil's
brightness kept, and on synthetic haze that was further from the ground than the input itself
(``benchmarks/overcast.py``). Here the estimate is the observed image with the veil's
**additive brightness taken off**, estimated as in Chavez's dark-object subtraction but locally:

- **local dark ground** (:func:`local_dark`): the minimum of blue and of red over windows of
  :data:`DARK_WINDOW_PX` (320 m at 10 m) half-overlapping, brought back to every pixel
  bilinearly. A veil is smooth at that scale and lifts the darkest ground in every window;
- **less what clear ground shows there** (:data:`DARK_REFERENCE`: the same operator's median
  over clear scenes of the same product level), never below 0: the veil's excess in blue and in
  red. Blue and red are the bands whose dark ground is sure (water, vegetation and shade are dark
  in both); red-edge, NIR and SWIR dark ground varies from place to place (a field of crops has
  no dark NIR window, the sea has no bright one), so their excess is not read from them;
- **spread over the bands as scattered light is** (:func:`veil_excess`): blue's excess times
  ``(490 nm / wavelength) ** p``, with ``p`` read from how much less the veil lifts red than
  blue (0 for a thin water cloud, which is neutral; about 1 for aerosol haze; at most
  :data:`MAX_POWER`). Where red's dark ground is brighter than the reference (dry soil) ``p``
  reads low, the neutral side, the veil of a thin cloud;
- **times** :data:`DEHAZE_GAIN`: a hedge, as part of a window's darkness above the reference is
  the ground's own.

A scene hidden whole is not always a veil: on a small image the mask's buffer may hide the clear
ground between cumulus too. So :func:`dehaze_veil` de-hazes only where a veil is what it sees,
and keeps the fill it is given (the mean of all the pixels with the detail seen through thin
cloud, :mod:`sarclear.thin_cloud`) where a cloud is thicker than a veil: where the window's
darkest blue is itself cloud-bright (:data:`THICK_WINDOW`, above its reference) or the pixel's
blue stands far above its window's darkest (:data:`THICK_PIXEL`: more than ground varies within
320 m; a cumulus among fields).

Chosen on the train split's clear scenes under the quality benchmark's seeded haze and thin
cloud, all-cloud mask, among per-band dark-object subtractions, whole-scene and local, capped and
not (exploration, not a committed script; resources/models/sarclear-fill-classic.md, "A veil over
the whole scene"), and checked on the validation places.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .bands import S2_WAVELENGTH_NM
from .thin_cloud import ramp

#: The window of the local dark ground (pixels), the windows half-overlapping.
DARK_WINDOW_PX = 32
#: How much of the estimated excess is taken off (the train split's best of 0.5, 0.75 and 1).
DEHAZE_GAIN = 0.75
#: Median :func:`local_dark` of clear scenes, per product level, of blue and red (reflectance):
#: over the train split's clear scenes (384-px crops; 45 L2A, 9 L1C; ``scripts/veil_constants.py``,
#: which now gives L2A 0.016 / 0.019: see there). L1C is top of atmosphere, so its dark ground
#: carries the air's path radiance.
DARK_REFERENCE: Mapping[str, Mapping[str, float]] = {
    "l2a": {"B2": 0.017, "B4": 0.020},
    "l1c": {"B2": 0.092, "B4": 0.037},
}
#: The de-hazed pixels' error, (floor, slope): sigma^2 = floor^2 + (slope x excess)^2 per band, with
#: the excess of :func:`veil_excess`; fitted by maximum likelihood on the train split's clear scenes
#: under the quality benchmark's haze and thin cloud (2 seeds each, every band-pixel), where 95.5 %
#: of the errors fell inside its 90 % interval (89.0 % on the validation places;
#: ``scripts/veil_constants.py``).
VEIL_SIGMA = (0.0175, 0.4)
#: The largest spectral power of a veil read from red against blue (aerosol haze is about 1).
MAX_POWER = 2.0
BLUE, RED = "B2", "B4"
#: Blue excess of a window's darkest ground over its reference (reflectance): a veil up to the
#: first, a cloud that fills the window from the second (de-hazing it would only dim it).
THICK_WINDOW = (0.15, 0.3)
#: A pixel's blue above its window's darkest (reflectance): ground up to the first, a cloud
#: from the second.
THICK_PIXEL = (0.15, 0.3)


def local_dark(x: Tensor, valid: Tensor | None = None) -> Tensor:
    """Each band's minimum over half-overlapping windows of :data:`DARK_WINDOW_PX`, bilinear
    back to every pixel, (N, C, H, W) from ``x`` (N, C, H, W); ``valid`` (N, 1, H, W): the
    pixels with data (default all). A window without valid pixels is NaN; so is every pixel it
    reaches."""
    ok = torch.isfinite(x).all(dim=1, keepdim=True)
    if valid is not None:
        ok &= valid.to(torch.bool)
    high = torch.where(ok, x, torch.full_like(x, float("inf")))
    w, step = DARK_WINDOW_PX, DARK_WINDOW_PX // 2
    # window k spans rows step*k - step/2 ... + w: its centre is where bilinear upsampling by
    # ``step`` puts cell k, so every window's minimum lands on its own centre
    low = -F.max_pool2d(-high, w, stride=step, padding=step // 2, ceil_mode=True)
    low = torch.where(torch.isfinite(low), low, torch.full_like(low, float("nan")))
    up = F.interpolate(low, scale_factor=step, mode="bilinear", align_corners=False)
    return up[..., :x.shape[-2], :x.shape[-1]]


def _table(bands: Sequence[str], level: str) -> Mapping[str, float] | None:
    """:data:`DARK_REFERENCE` of ``level``; None when it or ``bands`` lack blue."""
    table = DARK_REFERENCE.get(level, {})
    return table if BLUE in bands and BLUE in table else None


def _dark(observed: Tensor, bands: Sequence[str], band: str, valid: Tensor | None) -> Tensor:
    """:func:`local_dark` of one band of ``observed``, (N, 1, H, W)."""
    i = list(bands).index(band)
    return local_dark(observed[:, i:i + 1], valid)


def _above(dark: Tensor, reference: float) -> Tensor:
    """Local dark ground above its ``reference``, >= 0; 0 where no valid pixel is near (NaN)."""
    return torch.nan_to_num(dark - reference, nan=0.0).clamp_min(0)


def _spread(observed: Tensor, bands: Sequence[str], table: Mapping[str, float], blue_dark: Tensor,
            valid: Tensor | None) -> Tensor:
    """:func:`veil_excess` from blue's local dark ground ``blue_dark`` (N, 1, H, W)."""
    blue = _above(blue_dark, table[BLUE])
    if RED in bands:
        red = _above(_dark(observed, bands, RED, valid), table[RED])
        ratio = (red / blue.clamp_min(1e-4)).clamp(1e-3, 1.0)
        power = (ratio.log() / math.log(490 / S2_WAVELENGTH_NM[RED])).clamp(0, MAX_POWER)
    else:
        power = torch.ones_like(blue)
    ratio = observed.new_tensor([490 / S2_WAVELENGTH_NM.get(b, 490) for b in bands])[None, :, None, None]
    return blue * ratio ** power


def veil_excess(observed: Tensor, bands: Sequence[str], level: str, valid: Tensor | None = None) -> Tensor:
    """How much a veil lifts each band at each pixel (reflectance, (N, C, H, W), >= 0): blue's
    local dark ground above :data:`DARK_REFERENCE` of product ``level``, spread over the bands
    by the power that red's excess against blue's gives (module docstring). Zero without blue
    or a reference for ``level``; without red the power is 1 (aerosol haze)."""
    table = _table(bands, level)
    if table is None:
        return torch.zeros_like(observed)
    return _spread(observed, bands, table, _dark(observed, bands, BLUE, valid), valid)


def dehaze_veil(observed: Tensor, fill: Tensor, fill_var: Tensor, bands: Sequence[str], level: str,
                valid: Tensor | None = None, gain: float = DEHAZE_GAIN) -> tuple[Tensor, Tensor]:
    """(estimate, variance) under a veil that hides a whole scene, (N, C, H, W) each, reflectance:
    ``observed`` less ``gain`` times its veil's excess (:func:`veil_excess`, never below 0) where a
    veil is what it sees, ``fill`` (variance ``fill_var``, broadcastable) where a cloud is thicker
    (module docstring). The de-hazed pixels' variance is :data:`VEIL_SIGMA`'s. ``fill`` and
    ``fill_var`` everywhere when the bands lack blue or ``level`` has no reference."""
    table = _table(bands, level)
    if table is None:
        return fill, fill_var
    b = list(bands).index(BLUE)
    dark = _dark(observed, bands, BLUE, valid)  # once: the thick tests and the excess share it
    veil = ramp(torch.nan_to_num(dark - table[BLUE], nan=float("inf")), *THICK_WINDOW)
    veil = veil * ramp(torch.nan_to_num(observed[:, b:b + 1] - dark, nan=float("inf")), *THICK_PIXEL)
    excess = _spread(observed, bands, table, dark, valid)
    dehazed = (observed - gain * excess).clamp_min(0)
    floor, slope = VEIL_SIGMA
    variance = floor**2 + (slope * excess) ** 2
    return veil * dehazed + (1 - veil) * fill, veil * variance + (1 - veil) * fill_var
