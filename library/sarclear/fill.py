"""Classical gap filling from the clear pixels: the baselines every model must beat, and the
prior that the mask-aware generator corrects.

Both functions take reflectance ``x`` of shape (N, C, H, W) and a clear weight ``clear`` of
shape (N, 1, H, W) in [0, 1] (1: the pixel is seen clearly, 0: hidden by cloud, shadow or
nodata), and return a filled image of the same shape as ``x``. They never look at the hidden
pixels' values, so those may be anything (NaN included). The caller decides where to use the
fill (usually only where ``clear`` is 0); the functions return it everywhere.

- :func:`mean_fill`: each band's mean over the clear pixels of its image.
- :func:`fill_sources`: the clear pixels a fill draws from, without a buffer along the mask.
- :func:`local_mean`: a Gaussian local mean over the pixels a weight allows (the detail and
  layer code's building block).
- :func:`normalized_convolution`: Gaussian-weighted mean of the clear pixels around each
  pixel (Knutsson and Westin's normalized convolution), computed on a pyramid so that holes
  of any size get a value: where the fine scale sees too few clear pixels, the next coarser
  scale (twice the radius) fills in, blended smoothly by the local clear fraction.
- :func:`classical_fill`: that fill as decloud runs it (reach, scene background) together
  with its *spread*: the standard deviation of the clear pixels it averaged, weighted the
  same way. A fill drawn from a varied neighbourhood is less sure than one drawn from a
  uniform field; :func:`fill_variance` turns the spread into a calibrated variance, widened
  by :func:`haze_excess` where the scene's clear pixels are themselves hazy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _clean(x: Tensor, clear: Tensor) -> tuple[Tensor, Tensor]:
    w = clear.clamp(0, 1) * torch.isfinite(x).all(dim=1, keepdim=True)
    return torch.where(w > 0, x, torch.zeros_like(x)), w


def mean_fill(x: Tensor, clear: Tensor) -> Tensor:
    """Each band's mean over the clear pixels of its image (N, C, H, W); 0 where an image
    has no clear pixel."""
    xs, w = _clean(x, clear)
    num = (xs * w).sum(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    den = w.sum(dim=(2, 3), keepdim=True)          # (N, 1, 1, 1)
    mean = torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    return mean.expand_as(x).clone()


#: The prior's ``reach`` (:func:`normalized_convolution`): farther than about this from any clear
#: pixel the fill is the scene's clear mean, the same in every tile (no seams in large holes).
FILL_REACH_PX = 64.0


def fill_sources(clear: Tensor, buffer_px: int) -> Tensor:
    """The clear pixels a fill may draw from: ``clear`` (N, 1, H, W) without those within
    ``buffer_px`` pixels (8-neighbourhood) of a hidden one. Real cloud edges are soft and
    their adjacency haze reaches past any mask, so the clear pixels next to a cloud are often
    brighter than the ground (Fmask and s2cloudless buffer their masks for the same reason);
    here they stay as observed but do not feed the fill. An image the buffer would leave
    with no source keeps its unbuffered ``clear``."""
    if buffer_px <= 0:
        return clear
    k = int(buffer_px)
    kept = clear * (1 - F.max_pool2d(1 - clear.clamp(0, 1), 2 * k + 1, stride=1, padding=k))
    empty = kept.flatten(1).amax(dim=1) <= 0
    return torch.where(empty[:, None, None, None], clear, kept)


def gauss_blur(t: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, C, H, W), zero outside the image."""
    radius = max(1, round(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=t.dtype, device=t.device)
    g = torch.exp(-(k**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(t.shape[1], 1, 1, 1)
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0)), g, groups=t.shape[1])
    return F.conv2d(F.pad(t, (0, 0, radius, radius)), g.transpose(2, 3), groups=t.shape[1])


def local_mean(t: Tensor, sigma: float, weight: Tensor | None = None) -> Tensor:
    """Gaussian local mean of ``t`` (N, C, H, W) over the pixels where ``weight`` (N, 1, H, W;
    default all) is 1: near the border it averages the pixels inside the image only."""
    w = torch.ones_like(t[:, :1]) if weight is None else weight.to(t)
    return gauss_blur(t * w, sigma) / gauss_blur(w, sigma).clamp_min(1e-6)


def normalized_convolution(x: Tensor, clear: Tensor, sigma: float = 2.0, support: float = 0.25,
                           reach: float | None = None, background: Tensor | None = None) -> Tensor:
    """Gaussian-weighted fill from the clear pixels, (N, C, H, W) -> (N, C, H, W).

    ``sigma`` is the finest scale in pixels; each coarser level doubles it. A level's
    estimate is trusted in proportion to its local clear fraction up to ``support``; below
    that the next coarser level's estimate fills in. With ``reach`` (pixels), no level is
    coarser than that: where even the coarsest level sees too few clear pixels, the fill
    fades to ``background`` (C,) (default: each image's clear mean) instead of a local mean
    of far-away pixels. An image with no clear pixel gets ``background``, or 0.
    """
    xs, w = _clean(x, clear)
    nums, dens = [], []
    num, den = xs * w, w
    level_sigma = sigma
    while True:
        nums.append(gauss_blur(num, sigma))
        dens.append(gauss_blur(den, sigma))
        level_sigma *= 2
        if min(num.shape[-2:]) <= 2 or (reach is not None and level_sigma > reach):
            break
        num = F.avg_pool2d(num, 2, ceil_mode=True)
        den = F.avg_pool2d(den, 2, ceil_mode=True)
    if background is None:
        back = mean_fill(x, clear)[..., :1, :1].expand_as(nums[-1])
    else:
        back = background.to(x).view(1, -1, 1, 1).expand_as(nums[-1])
    if reach is None:  # coarsest level: its own estimate, else the background
        est = torch.where(dens[-1] > 1e-6, nums[-1] / dens[-1].clamp_min(1e-12), back)
    else:
        alpha = (dens[-1] / support).clamp(0, 1)
        est = alpha * (nums[-1] / dens[-1].clamp_min(1e-12)) + (1 - alpha) * back
    for n, d in zip(reversed(nums[:-1]), reversed(dens[:-1])):
        up = F.interpolate(est, size=n.shape[-2:], mode="bilinear", align_corners=False)
        alpha = (d / support).clamp(0, 1)
        est = alpha * (n / d.clamp_min(1e-12)) + (1 - alpha) * up
    return est


class ClassicalFill(NamedTuple):
    """The prior of every mask-aware model, and what says how far to trust it."""

    prior: Tensor   # (N, C, H, W) the fill
    spread: Tensor | None  # (N, C, H, W) standard deviation of the clear pixels it averaged


def classical_fill(x: Tensor, sources: Tensor, background: Tensor | None = None, *,
                   with_spread: bool = True) -> ClassicalFill:
    """The normalized-convolution fill of ``x`` from ``sources`` (:func:`fill_sources`) as
    decloud runs it, with its spread (see :class:`ClassicalFill`).

    ``background`` (2, C): the scene's clear mean and standard deviation per band, what the fill
    fades to beyond :data:`FILL_REACH_PX` of any source (default: each image's own). The spread
    is ``sqrt(E[x^2] - E[x]^2)`` with both expectations taken by the same normalized
    convolution, so it grows with the holes: deep inside a large cloud the fill averages a wide,
    varied area, and far from any source it is the scene's standard deviation. Without
    ``with_spread`` the spread is None and costs nothing (a model with its own variance)."""
    mean = square = None  # each image's own clear mean of x and of x^2
    if background is not None:
        background = background.to(x)
        mean, square = background[0], background[0] ** 2 + background[1] ** 2
    prior = normalized_convolution(x, sources, reach=FILL_REACH_PX, background=mean)
    if not with_spread:
        return ClassicalFill(prior, None)
    second = normalized_convolution(x * x, sources, reach=FILL_REACH_PX, background=square)
    return ClassicalFill(prior, (second - prior * prior).clamp_min(0).sqrt())


#: Typical dark-object blue (reflectance, the :data:`DARK_PERCENTILE` percentile of B2 over a
#: scene's clear pixels) per product level: the medians of the 9 L1C and 45 L2A clear scenes of
#: the train split (benchmarks/quality_io.split_scenes, 384 px crops). L1C is top of atmosphere,
#: so its darkest ground still carries the air's blue path radiance; L2A is surface reflectance.
DARK_BLUE = {"l1c": 0.092, "l2a": 0.016}
DARK_PERCENTILE = 2.0


def dark_blue(blue: np.ndarray) -> float | None:
    """The :data:`DARK_PERCENTILE` percentile of ``blue`` (B2 reflectance, any shape; NaN
    ignored): how bright the scene's darkest ground is; None without a finite value."""
    values = np.asarray(blue, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    return float(np.percentile(values, DARK_PERCENTILE)) if values.size else None


def haze_excess(pixels: np.ndarray, bands: Sequence[str], level: str) -> float:
    """How much a veil lifts the scene's darkest ground: the :func:`dark_blue` of ``pixels``
    (reflectance (C, ...) of the pixels the mask calls clear, band names ``bands``) above
    :data:`DARK_BLUE` of its product ``level``, never below 0; 0 without B2 or a finite value.

    A fill drawn from clear pixels is biased by whatever haze or thin cloud the mask did not
    catch over them, and nothing local can see that bias: the spread of a uniformly hazy
    neighbourhood is small. Haze lifts dark ground most (a veil adds its own brightness where
    the ground has little), so the scene's dark objects show it (Chavez's dark-object
    subtraction reads the same signal). A bright scene (snow, desert, a town) also lifts them:
    there the uncertainty grows without haze, which errs on the cautious side."""
    dark = dark_blue(pixels[list(bands).index("B2")]) if "B2" in bands else None
    return 0.0 if dark is None else max(0.0, dark - DARK_BLUE[level])


def fill_variance(spread: Tensor, sigma: Sequence[float], haze: float = 0.0) -> Tensor:
    """Variance (reflectance^2, the shape of ``spread``) of a classical fill's error, from its
    spread (:attr:`ClassicalFill.spread`) and the scene's :func:`haze_excess`:
    ``(gain * spread)^2 + floor^2 + (haze_gain * haze)^2``, ``sigma`` = (gain, floor) or
    (gain, floor, haze_gain), fitted once on synthetic clouds over training places
    (scripts/make_classic_model.py) and stored in the model file (``fill_sigma``): a fill is
    less sure where the pixels it averaged vary, and in a scene whose clear pixels are hazy. (A
    term for sparse sources, the share of clear pixels around, was fitted to zero on those
    clouds and dropped: the spread already grows where the fill reaches far, as it then
    averages a wider, more varied area.)"""
    gain, floor, *rest = sigma
    haze_gain = rest[0] if rest else 0.0
    return (gain * spread) ** 2 + floor**2 + (haze_gain * haze) ** 2
