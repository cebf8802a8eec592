"""Keeping the ground detail seen through thin cloud.

A classical fill (:mod:`sarclear.fill`) replaces every hidden pixel by a smooth mean of the
clear pixels around it. Under haze and at the thin edges of clouds that throws away what the
sensor still saw: field boundaries, roads, rivers. :func:`keep_detail` puts the observed
pixels' own detail (the observed image minus its local mean, a high-pass of about 40 m) back on
top of the fill, where two tests say that the detail is ground and not cloud:

- **thin**: the observed local mean is at most a little brighter than the fill in blue (the
  band clouds brighten most): full detail up to ``THIN_EXCESS[0]``, none from ``THIN_EXCESS[1]``;
- **not cloud texture**: a cloud's own texture is white, so its blue and NIR detail move
  together (local correlation near 1); ground detail does not (vegetation is dark in blue and
  bright in NIR). Where the local blue-NIR correlation of the detail is below
  ``TEXTURE_CORRELATION[0]``, detail is also kept under brighter cloud, fading out between
  ``TEXTURE_EXCESS`` of blue excess.

The detail is shrunk by ``gain`` (0.7 in the default model): under real clouds it is only
partly the ground's (haze scatters, edges move), and a shrunk detail costs little where it is
wrong. Under thick cloud both tests fail and the result is the fill, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .fill import gauss_blur

DETAIL_SIGMA_PX = 4.0             # the local mean the detail is taken from (Gaussian, pixels)
THIN_EXCESS = (0.02, 0.05)        # blue excess over the fill (reflectance): full detail -> none
TEXTURE_CORRELATION = (0.5, 0.9)  # local blue-NIR correlation of the detail: ground -> cloud texture
TEXTURE_EXCESS = (0.1, 0.2)       # blue excess over which the texture test fades out
TEXTURE_SIGMA_PX = 6.0            # window of that correlation (Gaussian, pixels)
BLUE, NIR = "B2", ("B8", "B8A")


def _local_mean(t: Tensor, sigma: float, weight: Tensor | None = None) -> Tensor:
    """Gaussian local mean of ``t`` over the pixels where ``weight`` (N, 1, H, W) is 1."""
    w = torch.ones_like(t[:, :1]) if weight is None else weight.to(t)
    return gauss_blur(t * w, sigma) / gauss_blur(w, sigma).clamp_min(1e-6)


def _ramp(v: Tensor, full: float, none: float) -> Tensor:
    """1 at ``full``, 0 at ``none``, linear between (either order)."""
    return ((none - v) / (none - full)).clamp(0, 1)


def observed_detail(observed: Tensor, valid: Tensor | None = None) -> Tensor:
    """The observed image minus its local mean (sigma ``DETAIL_SIGMA_PX``) over the ``valid``
    pixels (N, 1, H, W; default all), (N, C, H, W)."""
    return observed - _local_mean(observed, DETAIL_SIGMA_PX, valid)


def detail_weight(observed: Tensor, prior: Tensor, bands: Sequence[str], detail: Tensor | None = None,
                  valid: Tensor | None = None) -> Tensor:
    """(N, 1, H, W) in [0, 1]: how much of the observed detail is ground (see the module
    docstring); 0 everywhere when the bands lack blue or NIR. ``detail``: the
    :func:`observed_detail` of ``observed``, when the caller has it; ``valid`` (N, 1, H, W):
    the pixels with data (nodata takes no part in any local mean)."""
    nir = next((b for b in NIR if b in bands), None)
    if BLUE not in bands or nir is None:
        return torch.zeros_like(observed[:, :1])
    b, n = list(bands).index(BLUE), list(bands).index(nir)
    excess = _local_mean(observed[:, b:b + 1] - prior[:, b:b + 1], DETAIL_SIGMA_PX, valid)
    if detail is None:
        detail = observed_detail(observed, valid)
    db, dn = detail[:, b:b + 1], detail[:, n:n + 1]
    cov, vb, vn = (_local_mean(t, TEXTURE_SIGMA_PX, valid) for t in (db * dn, db * db, dn * dn))
    correlation = cov / (vb * vn).clamp_min(1e-12).sqrt()
    thin = _ramp(excess, *THIN_EXCESS)
    ground = _ramp(correlation, *TEXTURE_CORRELATION) * _ramp(excess, *TEXTURE_EXCESS)
    return torch.maximum(thin, ground)


def keep_detail(observed: Tensor, prior: Tensor, bands: Sequence[str], gain: float,
                valid: Tensor | None = None) -> Tensor:
    """``prior`` plus ``gain`` times the observed detail where :func:`detail_weight` says it is
    ground, (N, C, H, W), never below 0. The caller uses it only for hidden pixels; clear ones
    stay as observed. ``valid`` (N, 1, H, W): the pixels with data; nodata (there, or where a
    value is not finite) takes no part in the local means and gets no detail."""
    if gain <= 0:
        return prior
    ok = torch.isfinite(observed).all(dim=1, keepdim=True)
    if valid is not None:
        ok &= valid.to(torch.bool)
    observed = torch.where(ok, observed, prior)
    detail = observed_detail(observed, ok) * ok
    return (prior + gain * detail_weight(observed, prior, bands, detail, ok) * detail).clamp_min(0)
