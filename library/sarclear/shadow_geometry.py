"""Where a cloud's shadow can lie: the geometry behind the shadow checks of
:mod:`sarclear.masks` (step 3 of its docstring), on boolean block arrays (H, W).

A shadow is its cloud's projection on the ground, away from the sun: it lies on the cloud's
far side from the sun (:func:`toward_sun`), it is no larger than its cloud
(:func:`bound_shadow`), and it has the cloud's shape (:func:`cast_shadow`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .mask_detectors import CLEAR, CLOUD, SHADOW, dilate

#: Shadow blocks this close (30 m blocks) belong to one shadow for the sun check: a far part of a
#: large shadow has no cloud within reach toward the sun, but the part next to its cloud has.
SHADOW_LINK_BLOCKS = 2
#: The rules' shadow must have its cloud's shape (:func:`cast_shadow`): at least this share of
#: the visible ground under the cloud moved away from the sun is shadow, at the best distance ...
SHADOW_MATCH = 0.3
#: ... and at least this many times the share of shadow over all the visible ground.
SHADOW_MATCH_LIFT = 3.0
#: The distances kept score at least this share of the best one's.
SHADOW_MATCH_SPREAD = 0.8
#: A moved cloud that covers fewer visible blocks than this is no match.
SHADOW_MATCH_MIN = 4
#: Where the sun is unknown, the directions tried (degrees apart).
SHADOW_SEARCH_STEP_DEG = 15.0


def grown_within(seeds: np.ndarray, region: np.ndarray, step: int) -> np.ndarray:
    """The parts of ``region`` (H, W bool) connected to ``seeds``, where pixels up to ``step``
    apart count as connected (a geodesic dilation, repeated until nothing changes)."""
    kept = seeds & region
    while True:
        grown = dilate(kept, step) & region
        if np.array_equal(grown, kept):
            return kept
        kept = grown


def cast_shadow(cloud: np.ndarray, shadow: np.ndarray, valid: np.ndarray, azimuth_deg: float | None,
                reach: int) -> np.ndarray:
    """Where the clouds' shadow falls, as far as ``shadow`` (H, W bool, the dark ground a
    detector called shadow) shows it: ``cloud`` moved away from the sun (``azimuth_deg``,
    clockwise from the grid's up; None: unknown, every :data:`SHADOW_SEARCH_STEP_DEG` tried) by
    the distances, up to ``reach`` pixels, at which its shape matches ``shadow`` best (Fmask's
    cloud-shadow matching, one height for a whole window). A distance matches where the share of
    the visible ground under the moved cloud that is shadow is at least :data:`SHADOW_MATCH`
    and :data:`SHADOW_MATCH_LIFT` times the share over all the visible ground (dark ground is
    not matched by chance); the distances within :data:`SHADOW_MATCH_SPREAD` of the best are
    kept, grown by one pixel. Empty where none matches: dark ground beside a cloud that has
    not the cloud's shape is ground."""
    ground = valid & ~cloud
    n_ground = int(ground.sum())
    if not n_ground or not cloud.any():
        return np.zeros_like(cloud)
    base = float((shadow & ground).sum()) / n_ground
    azimuths = [azimuth_deg] if azimuth_deg is not None else \
        np.arange(0.0, 360.0, SHADOW_SEARCH_STEP_DEG).tolist()
    best, kept = 0.0, np.zeros_like(cloud)
    for az in azimuths:
        scores = [(float((m & ground & shadow).sum()) / n, m) for m in _moved(cloud, az, reach)
                  if (n := int((m & ground).sum())) >= SHADOW_MATCH_MIN]
        top = max((s for s, _ in scores), default=0.0)
        if top > best:
            best, kept = top, np.zeros_like(cloud)
            for s, m in scores:
                if s >= SHADOW_MATCH_SPREAD * top:
                    kept |= m
    if best < max(SHADOW_MATCH, SHADOW_MATCH_LIFT * base):
        return np.zeros_like(cloud)
    return dilate(kept, 1)


def _moved(mask: np.ndarray, azimuth_deg: float, reach: int) -> Iterator[np.ndarray]:
    """``mask`` moved away from ``azimuth_deg`` by 1, 2, ... ``reach`` pixels (while it overlaps)."""
    a = math.radians(azimuth_deg)
    h, w = mask.shape
    for d in range(1, reach + 1):
        dr, dc = round(d * math.cos(a)), round(-d * math.sin(a))
        if abs(dr) >= h or abs(dc) >= w:
            return
        moved = np.zeros_like(mask)
        to, frm = _overlap(h, w, dr, dc)
        moved[to] = mask[frm]
        yield moved


def _overlap(h: int, w: int, dr: int, dc: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The slices (to, from) of an (h, w) array that move its content by ``dr`` rows and ``dc``
    columns: ``moved[to] = a[frm]`` puts ``a[r, c]`` at ``(r + dr, c + dc)``."""
    return ((slice(max(0, dr), h - max(0, -dr)), slice(max(0, dc), w - max(0, -dc))),
            (slice(max(0, -dr), h - max(0, dr)), slice(max(0, -dc), w - max(0, dc))))


def toward_sun(cloud: np.ndarray, azimuth_deg: float, reach: int, cone_deg: float) -> np.ndarray:
    """Where ``cloud`` (H, W bool) has a pixel within ``reach`` pixels toward the sun: along
    directions within ``cone_deg`` of ``azimuth_deg`` (clockwise from the grid's up), sampled
    every 5 degrees at every whole distance. Up to about 1,300 array ORs for the default reach."""
    h, w = cloud.shape
    out = np.zeros_like(cloud)
    steps = max(1, int(np.ceil(cone_deg / 5.0)))
    offsets = set()
    for a in np.radians(azimuth_deg + np.linspace(-cone_deg, cone_deg, 2 * steps + 1)).tolist():
        for d in range(1, reach + 1):
            offsets.add((round(-d * math.cos(a)), round(d * math.sin(a))))
    for dr, dc in offsets:
        if abs(dr) >= h or abs(dc) >= w:
            continue
        to, frm = _overlap(h, w, -dr, -dc)  # the cloud at (dr, dc) from a pixel marks that pixel
        out[to] |= cloud[frm]
    return out


def bound_shadow(coarse: np.ndarray, ratio: float, reach: int) -> None:
    """Keep at most ``ratio`` shadow pixels per cloud pixel of ``coarse`` (in place), the
    nearest to a cloud first. A cloud's shadow is its projection on the ground, no larger than
    the cloud, so a shadow class far larger than the cloud class is mostly dark ground (water,
    forest, burnt land) taken for shadow."""
    shadow = coarse == SHADOW
    limit = ratio * int((coarse == CLOUD).sum())
    if shadow.sum() <= limit:
        return
    near = coarse == CLOUD
    for _ in range(max(1, reach)):
        grown = dilate(near, 1)
        if (grown & shadow).sum() > limit:
            break
        near = grown
    coarse[shadow & ~near] = CLEAR
