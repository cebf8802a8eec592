"""Keeping the ground detail seen through thin cloud.

A classical fill (:mod:`sarclear.fill`) replaces every hidden pixel by a smooth mean of the
clear pixels around it. Under haze and at the thin edges of clouds that throws away what the
sensor still saw: field boundaries, roads, rivers, the fields themselves. :func:`keep_detail`
puts the observed pixels' own detail back on top of the fill, at two scales, where tests say
that the detail is ground and not cloud.

**Fine detail** (the observed image minus its local mean, a high-pass of about 40 m), where:

- **thin**: the observed local mean is at most a little brighter than the fill in blue (the
  band clouds brighten most): full detail up to ``THIN_EXCESS[0]``, none from ``THIN_EXCESS[1]``;
- **not cloud texture**: a cloud's own texture is white, so its blue and NIR detail move
  together (local correlation near 1); ground detail does not (vegetation is dark in blue and
  bright in NIR). Where the local blue-NIR correlation of the detail is below
  ``TEXTURE_CORRELATION[0]``, detail is also kept under brighter cloud, fading out between
  ``TEXTURE_EXCESS`` of blue excess.

Where a veil lies over the fill, the part of the fine detail that is the **cloud's own texture**
is taken out before it is kept (:func:`cloud_texture`): the blue detail beyond
``CLOUD_DETAIL``, which ground seen through a veil does not reach (the veil lowers its
contrast) but the edge of a thick core does, seen against a local mean that includes the core,
and so do tufts of broken cloud; it is taken out of every band in the proportions of the local
veil's excess over the fill (an edge of the veil moves each band by that much). Without it, the
veil around a thick core came back with a dark rim and broken cumulus with white tufts.

**Coarse detail** (local means at ``DETAIL_SIGMA_PX`` minus those at ``COARSE_SIGMA_PX``, about
40-160 m: whole fields and their contrast), with the same two tests at that scale and one more:

- **no more contrast than the ground has**: haze is a smooth veil, it only lowers the ground's
  contrast; cloud edges, cloud structure and shadow edges add contrast at this scale. Where the
  local blue contrast exceeds ``CONTRAST_RATIO`` times that of the clear ground nearby (the
  fill's sources), the coarse detail is dropped; ``GROUND_CONTRAST`` stands in where no clear
  pixel is near.

The detail is scaled by ``gain``, the model's ``keep_detail``: 1.0 in the default model, which
keeps it whole. A smaller gain hedges against detail that is partly the cloud's (haze scatters,
edges move); on the train split's synthetic clouds and real cloud layers the tests above already
drop most of that, and the whole detail did better than 0.7 (model card). Under thick cloud the
tests fail and the result is the fill, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .fill import FILL_REACH_PX, local_mean, normalized_convolution

DETAIL_SIGMA_PX = 4.0             # the local mean the fine detail is taken from (Gaussian, pixels)
THIN_EXCESS = (0.02, 0.05)        # blue excess over the fill (reflectance): full detail -> none
TEXTURE_CORRELATION = (0.5, 0.9)  # local blue-NIR correlation of the detail: ground -> cloud texture
TEXTURE_EXCESS = (0.1, 0.2)       # blue excess over which the texture test fades out
TEXTURE_SIGMA_PX = 6.0            # window of that correlation for the fine detail (Gaussian, pixels)
COARSE_SIGMA_PX = 16.0            # the coarse detail: local means at DETAIL_SIGMA_PX minus these
COARSE_WINDOW_PX = 12.0           # window of the coarse detail's tests (Gaussian, pixels)
CONTRAST_RATIO = (1.5, 3.0)       # coarse blue contrast over the clear ground's: full detail -> none
GROUND_CONTRAST = 0.008           # clear ground's coarse blue contrast (RMS, reflectance) where no
                                  # clear pixel is near: the median of the 54 train-split scenes
CLOUD_DETAIL = 0.02              # fine blue detail (reflectance) beyond which it is the cloud's own
VEIL_EXCESS = (0.01, 0.03)        # blue excess over the fill: no veil to take texture out -> a veil
BLUE, NIR = "B2", ("B8", "B8A")


def ramp(v: Tensor, full: float, none: float) -> Tensor:
    """1 at ``full``, 0 at ``none``, linear between (either order)."""
    return ((none - v) / (none - full)).clamp(0, 1)


def _blue_nir(bands: Sequence[str]) -> tuple[int, int] | None:
    """Indices of blue and NIR in ``bands``; None when either is missing."""
    nir = next((b for b in NIR if b in bands), None)
    if BLUE not in bands or nir is None:
        return None
    return list(bands).index(BLUE), list(bands).index(nir)


def _ground_tests(excess: Tensor, detail: Tensor, b: int, n: int, window: float,
                  valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """(weight, local blue variance of ``detail``), (N, 1, H, W) each: the thin and the
    not-cloud-texture tests (module docstring) on one scale of detail."""
    db, dn = detail[:, b:b + 1], detail[:, n:n + 1]
    cov, vb, vn = (local_mean(t, window, valid) for t in (db * dn, db * db, dn * dn))
    correlation = cov / (vb * vn).clamp_min(1e-12).sqrt()
    thin = ramp(excess, *THIN_EXCESS)
    ground = ramp(correlation, *TEXTURE_CORRELATION) * ramp(excess, *TEXTURE_EXCESS)
    return torch.maximum(thin, ground), vb


def observed_detail(observed: Tensor, valid: Tensor | None = None) -> Tensor:
    """The observed image minus its local mean (sigma ``DETAIL_SIGMA_PX``) over the ``valid``
    pixels (N, 1, H, W; default all), (N, C, H, W)."""
    return observed - local_mean(observed, DETAIL_SIGMA_PX, valid)


def coarse_detail(observed: Tensor, valid: Tensor | None = None, local: Tensor | None = None) -> Tensor:
    """The observed local means at ``DETAIL_SIGMA_PX`` minus those at ``COARSE_SIGMA_PX``, over
    the ``valid`` pixels (N, 1, H, W; default all), (N, C, H, W). ``local``: the first of them,
    when the caller has it (:func:`keep_detail` does, from the fine detail)."""
    if local is None:
        local = local_mean(observed, DETAIL_SIGMA_PX, valid)
    return local - local_mean(observed, COARSE_SIGMA_PX, valid)


def detail_weight(observed: Tensor, prior: Tensor, bands: Sequence[str], detail: Tensor | None = None,
                  valid: Tensor | None = None) -> Tensor:
    """(N, 1, H, W) in [0, 1]: how much of the observed fine detail is ground (see the module
    docstring); 0 everywhere when the bands lack blue or NIR. ``detail``: the
    :func:`observed_detail` of ``observed``, when the caller has it; ``valid`` (N, 1, H, W):
    the pixels with data (nodata takes no part in any local mean)."""
    idx = _blue_nir(bands)
    if idx is None:
        return torch.zeros_like(observed[:, :1])
    b, n = idx
    excess = local_mean(observed[:, b:b + 1] - prior[:, b:b + 1], DETAIL_SIGMA_PX, valid)
    if detail is None:
        detail = observed_detail(observed, valid)
    return _ground_tests(excess, detail, b, n, TEXTURE_SIGMA_PX, valid)[0]


def coarse_weight(observed: Tensor, prior: Tensor, bands: Sequence[str], coarse: Tensor,
                  sources: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
    """(N, 1, H, W) in [0, 1]: how much of the observed ``coarse`` detail (N, C, H, W) is
    ground: the module docstring's three tests. ``sources`` (N, 1, H, W): the clear pixels whose
    contrast is the reference (those the fill drew from); None: ``GROUND_CONTRAST`` throughout."""
    idx = _blue_nir(bands)
    if idx is None:
        return torch.zeros_like(observed[:, :1])
    b, n = idx
    excess = local_mean(observed[:, b:b + 1] - prior[:, b:b + 1], COARSE_SIGMA_PX, valid)
    weight, variance = _ground_tests(excess, coarse, b, n, COARSE_WINDOW_PX, valid)
    reference = torch.full_like(variance, GROUND_CONTRAST ** 2)
    if sources is not None:  # the clear ground's own contrast: local means over clear pixels only
        sources = sources.to(coarse)
        clear = coarse_detail(observed[:, b:b + 1], sources)
        reference = normalized_convolution(clear ** 2, sources, reach=FILL_REACH_PX,
                                           background=reference.new_tensor([GROUND_CONTRAST ** 2]))
    ratio = (variance / reference.clamp_min(1e-12)).sqrt()
    return weight * ramp(ratio, *CONTRAST_RATIO)


def cloud_texture(fine: Tensor, excess: Tensor, bands: Sequence[str]) -> Tensor:
    """The part of the observed ``fine`` detail (N, C, H, W) that is the cloud's own texture,
    (N, C, H, W): where a veil lies over the fill (``excess``, (N, C, H, W): the observed local
    mean over the fill's, at ``DETAIL_SIGMA_PX``; its blue against :data:`VEIL_EXCESS`), the
    blue detail beyond :data:`CLOUD_DETAIL`, which ground under a veil does not reach (the veil
    lowers its contrast) but a cloud's edges and tufts do, spread over the bands in the
    proportions of ``excess`` (the veil's colour). Zero where the bands lack blue."""
    idx = _blue_nir(bands)
    if idx is None:
        return torch.zeros_like(fine)
    b = idx[0]
    veil = excess[:, b:b + 1]
    colour = (excess / veil.clamp_min(1e-3)).clamp(0, 1.5)
    blue = fine[:, b:b + 1]
    beyond = blue.sign() * (blue.abs() - CLOUD_DETAIL).clamp_min(0)
    return (1 - ramp(veil, *VEIL_EXCESS)) * beyond * colour


def keep_detail(observed: Tensor, prior: Tensor, bands: Sequence[str], gain: float,
                valid: Tensor | None = None, sources: Tensor | None = None) -> Tensor:
    """``prior`` with ``gain`` times the observed fine and coarse detail in place of its own
    (the prior's detail at the same scales) where :func:`detail_weight` and
    :func:`coarse_weight` say it is ground, (N, C, H, W), never below 0. The caller uses it
    only for hidden pixels; clear ones stay as observed. ``valid`` (N, 1, H, W): the pixels
    with data; nodata (there, or where a value is not finite) takes no
    part in the local means and gets no detail. ``sources``: the clear pixels the fill drew
    from, whose contrast the coarse detail is checked against."""
    if gain <= 0:
        return prior
    ok = torch.isfinite(observed).all(dim=1, keepdim=True)
    if valid is not None:
        ok &= valid.to(torch.bool)
    observed = torch.where(ok, observed, prior)
    local = local_mean(observed, DETAIL_SIGMA_PX, ok)  # shared by both scales
    fine, coarse = (observed - local) * ok, coarse_detail(observed, ok, local) * ok
    if sources is not None:
        sources = sources * ok
    # the kept detail replaces the prior's own at the same scales (a SAR-guided fill has some): not added to it
    prior_local = local_mean(prior, DETAIL_SIGMA_PX, ok)
    prior_fine, prior_coarse = (prior - prior_local) * ok, coarse_detail(prior, ok, prior_local) * ok
    weight = detail_weight(observed, prior, bands, fine, ok)  # its tests read the detail as observed
    fine = fine - cloud_texture(fine, local - prior_local, bands) * ok  # the local means already taken
    detail = (weight * (fine - prior_fine)
              + coarse_weight(observed, prior, bands, coarse, sources, ok) * (coarse - prior_coarse))
    return (prior + gain * detail).clamp_min(0)
