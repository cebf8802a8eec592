"""SAR-guided fill: each hidden pixel is filled from the clear pixels around it that look like it
in SAR (water from water, town from town, forest from forest), not from every clear pixel around.

SAR sees through cloud, so under a cloud it still says which of the clear pixels nearby are the
same kind of ground. This is a joint bilateral filter (Kopf et al. 2007) whose range kernel is on
the backscatter, computed as a bilateral grid (Paris and Durand 2006) along the two
polarisations:

- **classes**: a fixed grid over VV and VH in dB (nodes every :data:`STEP_DB`, over the model's
  dB range, the same in every tile and scene, so neighbouring tiles agree), with tent
  memberships (linear between nodes, summing to 1), after a Gaussian smoothing of the
  backscatter in linear power (:data:`SMOOTH_PX`) that tames speckle;
- **one fill per class**: the normalized convolution (:func:`sarclear.fill.normalized_convolution`)
  of the fill's sources weighted by their membership;
- **a pixel's fill** is the membership-weighted mean of its classes' fills. A class with fewer
  than :data:`MIN_SOURCES` clear pixels in the tile gives its share to the plain fill, so a pixel
  whose backscatter no clear pixel shares gets the plain fill, and a scene where SAR says nothing
  about the optical ground gets about the plain fill;
- **beyond a class's reach** (:data:`sarclear.fill.FILL_REACH_PX` from its clear pixels) its fill
  fades to the class's mean over the whole scene (:func:`scene_classes`, from decloud's decimated
  view of the scene), the same in every tile, as the plain fill fades to the scene's clear mean.
  Without it each tile's class mean took that place, and large clouds showed the tiles.

Nothing is learned: the relation between SAR and the optical ground is taken afresh from each
scene's own clear pixels, so it holds for any place, season and product level.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .fill import FILL_REACH_PX, ClassicalFill, classical_fill, local_mean, normalized_convolution

#: Spacing of the class grid in dB, both polarisations. 3, 4 and 5 dB scored within 1 % of each
#: other on the train split (model card of sarclear-fill-guided).
STEP_DB = 4.0
#: Gaussian smoothing of the backscatter (pixels, in linear power) before the classes: speckle.
SMOOTH_PX = 2.0
#: Network-range SAR value that marks a pixel without SAR (real values are within [-1, 1]): decloud
#: gives it to a SAR-guided model instead of dropping the pixel, which then gets the plain fill.
SAR_MISSING = -3.0
#: A class needs this many clear pixels (membership-weighted) in a tile to get a fill of its own.
#: Low on purpose: with tent memberships a class that few clear pixels share is one that the
#: hidden pixels share little of too, and the normalized convolution already widens its reach
#: where its sources are sparse.
MIN_SOURCES = 1.0
#: A class's scene mean (:func:`scene_classes`) needs this many clear pixels (membership-weighted)
#: of the scene's decimated view: the mean of ten has a third of the class's spread as its error.
MIN_SCENE_SOURCES = 10.0

#: A class's key: its node index along each SAR channel (:func:`sar_memberships`).
ClassKey = tuple[int, ...]


def sar_memberships(sar_db: Tensor, db_range: Sequence[tuple[float, float]], step_db: float = STEP_DB,
                    smooth_px: float = SMOOTH_PX, valid: Tensor | None = None) -> list[Tensor]:
    """Tent memberships per SAR channel, (N, nodes, H, W) each, summing to 1 over the nodes at
    every pixel, from backscatter in dB (N, S, H, W) and each channel's (low, high) dB range:
    nodes every ``step_db`` dB (:data:`STEP_DB`) after a Gaussian smoothing of ``smooth_px``
    pixels in linear power. Values outside the range belong to its end nodes. A class is one
    node per channel; its membership, the product of theirs (:func:`classes`). ``valid``
    (N, 1, H, W): the pixels with SAR; the others belong to no class (they get the plain fill)
    and take no part in the smoothing."""
    x = sar_db.float()
    ok = torch.ones_like(x[:, :1], dtype=torch.bool) if valid is None else valid.to(torch.bool)
    x = torch.where(ok, x, -20.0)  # any finite value: these pixels' memberships are zeroed below
    if smooth_px > 0:
        x = 10 * torch.log10(local_mean(10 ** (x / 10), smooth_px, ok).clamp_min(1e-10))  # no edge darkening
    tents = []
    for i, (lo, hi) in enumerate(db_range):
        nodes = max(2, round((hi - lo) / step_db) + 1)
        width = (hi - lo) / (nodes - 1)
        centres = torch.linspace(lo, hi, nodes, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        tents.append((1 - (x[:, i:i + 1].clamp(lo, hi) - centres).abs() / width).clamp_min(0) * ok)
    return tents


def keyed_classes(tents: Sequence[Tensor]) -> Iterator[tuple[ClassKey, Tensor]]:
    """The classes' keys and memberships (N, 1, H, W), one per combination of the channels'
    nodes (:func:`sar_memberships`), skipping those no pixel belongs to."""
    active = [[j for j in range(t.shape[1]) if bool((t[:, j] > 0).any())] for t in tents]
    for key in itertools.product(*active):
        u = tents[0][:, key[0]:key[0] + 1]
        for t, j in zip(tents[1:], key[1:]):
            u = u * t[:, j:j + 1]
        if bool((u > 0).any()):
            yield key, u


def classes(tents: Sequence[Tensor]) -> Iterator[Tensor]:
    """The classes' memberships, as :func:`keyed_classes` without the keys."""
    return (u for _, u in keyed_classes(tents))


def scene_classes(x: Tensor, clear: Tensor, tents: Sequence[Tensor],
                  min_sources: float = MIN_SCENE_SOURCES) -> dict[ClassKey, Tensor]:
    """Each class's clear mean and standard deviation over a whole scene, (2, C) per class key:
    ``x`` (1, C, H, W) reflectance, ``clear`` (1, 1, H, W) its clear pixels, ``tents`` its
    memberships (:func:`sar_memberships`). Classes with fewer than ``min_sources`` clear pixels
    (membership-weighted) are left out: their tiles keep their own mean."""
    out = {}
    for key, u in keyed_classes(tents):
        w = (u * clear.to(u)).to(x)
        total = float(w.sum())
        if total < min_sources:
            continue
        mean = (w * x).sum(dim=(0, 2, 3)) / total
        square = (w * x * x).sum(dim=(0, 2, 3)) / total
        out[key] = torch.stack([mean, (square - mean * mean).clamp_min(0).sqrt()])
    return out


def sar_guided_fill(x: Tensor, sources: Tensor, tents: Sequence[Tensor], background: Tensor | None = None, *,
                    hidden: Tensor | None = None, with_spread: bool = True,
                    scene: dict[ClassKey, Tensor] | None = None) -> ClassicalFill:
    """The fill of ``x`` (N, C, H, W) from ``sources`` (N, 1, H, W; :func:`sarclear.fill.fill_sources`)
    guided by SAR classes (``tents``: :func:`sar_memberships`), with its spread: the
    membership-weighted mean of each class's normalized convolution, and of its second moment
    (see the module docstring). ``background`` (2, C): as :func:`sarclear.fill.classical_fill`,
    for the plain fill that takes the share of classes without sources. ``scene``: the classes'
    scene means (:func:`scene_classes`), what each class's fill fades to beyond its reach (a
    class found there needs no source in the tile); without it, the class's mean in the image.
    ``hidden`` (N, 1, H, W): where the fill will be used; classes absent there are skipped (cost
    only)."""
    plain = classical_fill(x, sources, background, with_spread=with_spread)
    moments = torch.cat([x, x * x], dim=1) if with_spread else x
    c = x.shape[1]
    num = torch.zeros_like(moments)
    share = torch.zeros_like(x[:, :1])
    for key, u in keyed_classes(tents):
        u = u.to(x)
        weight = sources * u
        known = scene.get(key) if scene else None
        usable = weight.sum(dim=(1, 2, 3)) >= (0.0 if known is not None else MIN_SOURCES)  # (N,)
        if hidden is not None:
            usable &= (u * hidden.to(x)).sum(dim=(1, 2, 3)) > 0
        if not bool(usable.any()):
            continue
        u = u * usable.view(-1, 1, 1, 1)
        back = None  # the class's own mean in each image
        if known is not None:
            known = known.to(x)
            back = torch.cat([known[0], known[0] ** 2 + known[1] ** 2]) if with_spread else known[0]
        est = normalized_convolution(moments, weight, reach=FILL_REACH_PX, background=back)
        num += u * est
        share += u
    rest = (1 - share).clamp_min(0)
    prior = num[:, :c] + rest * plain.prior
    if not with_spread:
        return ClassicalFill(prior, None)
    assert plain.spread is not None
    second = num[:, c:] + rest * (plain.spread**2 + plain.prior**2)
    return ClassicalFill(prior, (second - prior * prior).clamp_min(0).sqrt())


def model_prior(x: Tensor, sources: Tensor, background: Tensor | None = None, *, sar_db: Tensor | None = None,
                db_range: Sequence[tuple[float, float]] = (), step_db: float = 0.0, hidden: Tensor | None = None,
                sar_valid: Tensor | None = None, with_spread: bool = True,
                scene: dict[ClassKey, Tensor] | None = None) -> ClassicalFill:
    """The prior a mask-aware model corrects, as decloud computes it on a tile: the SAR-guided
    fill where the model asks for one (``step_db`` > 0, its config's ``sar_guide``) and SAR is
    given (dB, (N, S, H, W), with each channel's ``db_range``; ``sar_valid`` (N, 1, H, W): where
    there is SAR), else :func:`sarclear.fill.classical_fill`. Arguments as :func:`sar_guided_fill`."""
    if step_db > 0 and sar_db is not None:
        tents = sar_memberships(sar_db, db_range, step_db, valid=sar_valid)
        return sar_guided_fill(x, sources, tents, background, hidden=hidden, with_spread=with_spread, scene=scene)
    return classical_fill(x, sources, background, with_spread=with_spread)
