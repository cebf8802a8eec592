"""Classical gap filling from the clear pixels: the baselines every model must beat, and the
prior that the mask-aware generator corrects.

Both functions take reflectance ``x`` of shape (N, C, H, W) and a clear weight ``clear`` of
shape (N, 1, H, W) in [0, 1] (1: the pixel is seen clearly, 0: hidden by cloud, shadow or
nodata), and return a filled image of the same shape as ``x``. They never look at the hidden
pixels' values, so those may be anything (NaN included). The caller decides where to use the
fill (usually only where ``clear`` is 0); the functions return it everywhere.

- :func:`mean_fill`: each band's mean over the clear pixels of its image.
- :func:`normalized_convolution`: Gaussian-weighted mean of the clear pixels around each
  pixel (Knutsson and Westin's normalized convolution), computed on a pyramid so that holes
  of any size get a value: where the fine scale sees too few clear pixels, the next coarser
  scale (twice the radius) fills in, blended smoothly by the local clear fraction.
"""

from __future__ import annotations

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


def _gauss_blur(t: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, C, H, W), zero outside the image."""
    radius = max(1, round(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=t.dtype, device=t.device)
    g = torch.exp(-(k**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(t.shape[1], 1, 1, 1)
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0)), g, groups=t.shape[1])
    return F.conv2d(F.pad(t, (0, 0, radius, radius)), g.transpose(2, 3), groups=t.shape[1])


def normalized_convolution(x: Tensor, clear: Tensor, sigma: float = 2.0, support: float = 0.25) -> Tensor:
    """Gaussian-weighted fill from the clear pixels, (N, C, H, W) -> (N, C, H, W).

    ``sigma`` is the finest scale in pixels; each coarser level doubles it. A level's
    estimate is trusted in proportion to its local clear fraction up to ``support``; below
    that the next coarser level's estimate fills in. An image with no clear pixel gets 0.
    """
    xs, w = _clean(x, clear)
    nums, dens = [], []
    num, den = xs * w, w
    while True:
        nums.append(_gauss_blur(num, sigma))
        dens.append(_gauss_blur(den, sigma))
        if min(num.shape[-2:]) <= 2:
            break
        num = F.avg_pool2d(num, 2, ceil_mode=True)
        den = F.avg_pool2d(den, 2, ceil_mode=True)
    # coarsest level: its own estimate, else the image mean
    est = torch.where(dens[-1] > 1e-6, nums[-1] / dens[-1].clamp_min(1e-12), mean_fill(x, clear)[..., :1, :1]
                      .expand_as(nums[-1]))
    for n, d in zip(reversed(nums[:-1]), reversed(dens[:-1])):
        up = F.interpolate(est, size=n.shape[-2:], mode="bilinear", align_corners=False)
        alpha = (d / support).clamp(0, 1)
        est = alpha * (n / d.clamp_min(1e-12)) + (1 - alpha) * up
    return est
