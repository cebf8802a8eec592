"""The two cloud and shadow detectors behind :mod:`sarclear.masks`, and the pixel-grid helpers
they share (block means, dilation). Both detectors work on reflectance at the *working
resolution* (about 30 m, see :mod:`sarclear.masks`) and return per-pixel classes CLEAR, CLOUD
or SHADOW; shadow is only a candidate here (masks.py keeps shadow near cloud only).

Spectral rules (:func:`spectral_rules`, always available)
    A pixel is **cloud** when all four tests hold:

    - *bright*: blue B2 above 0.20 (L1C, top of atmosphere);
    - *white*: flat visible spectrum, ``sum |Bi - m| / m < 0.7`` over B2, B3, B4 with their
      mean ``m`` (Fmask's whiteness: soil, sand and vegetation are coloured, cloud is not);
    - *hazy*: the haze-optimised transform ``B2 - 0.5 B4 > 0.08`` (L1C; cloud and haze are
      bluer than the ground that is as bright as them);
    - *not snow*: NDSI ``(B3 - B11) / (B3 + B11) < 0.4`` (snow and ice absorb in the SWIR,
      water clouds do not), or B11 above :data:`SNOW_MAX_SWIR` (0.2): a cloud over snow keeps
      the snow's high NDSI but lifts the SWIR far above what snow reflects (since 2026-12-05;
      before, the NDSI test alone passed over thick cloud on snowfields); skipped when B11 is
      missing;

    or, when the cirrus band B10 is present (L1C), when B10 exceeds 0.03 top-of-atmosphere
    reflectance (only high, thin ice cloud reflects at 1375 nm). A pixel is a **shadow
    candidate** when it is dark in NIR and SWIR (B8 or B8A, and B11, below 0.6 of the scene's
    clear median, :data:`SHADOW_DARKNESS`) but not water (NIR above green; water is darker in
    NIR than in green, land in shadow is not).

    Thresholds follow Fmask (Zhu and Woodcock 2012), which sets them on top-of-atmosphere
    reflectance, and were checked on the real scenes in the project's data. For L2A (surface
    reflectance) *bright* and *hazy* are the same tests with the atmosphere's path reflectance
    taken out (:func:`sarclear.product_level.path_reflectance`): B2 above 0.16, and
    ``B2 - 0.5 B4 > 0.051`` (since 2026-12-04; before, 0.08 at both levels, a top-of-atmosphere
    test on surface reflectance, which passed over the edges of real clouds on BigEarthNet's L2A
    chips, where a cloud without its path radiance is hardly bluer than red). The rules find the
    bodies of clouds; they are weaker on thin cloud edges and on shadows, and may flag bright
    roofs and sand.

ukis-csmask (:class:`CsmaskRunner`, optional extra ``masks``)
    The DLR CNNs (U-Net, EfficientNet-B4) for Sentinel-2 L1C or L2A, six bands (blue, green,
    red, NIR, SWIR 1.6, SWIR 2.2) or four (no SWIR), run with onnxruntime on 256 x 256 tiles
    that overlap by a quarter and are blended with :func:`sarclear.tiling.blend_weights`.
    Its softmax gives the cloud probability. The package's models and band statistics are
    used as shipped; its own tiling (which pads every image by one tile) is not.
    :mod:`sarclear.masks` adds the spectral rules' large, bright cloud bodies
    (:func:`thick_cloud_bodies`) to its cloud class: the CNN passes over flat, thick cloud bodies
    that the rules find.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .product_level import path_reflectance

log = logging.getLogger(__name__)

CLEAR, CLOUD, SHADOW = 0, 1, 2

#: csmask's band names -> Sentinel-2 bands, in order of preference.
CSMASK_BANDS = {"blue": ("B2",), "green": ("B3",), "red": ("B4",), "nir": ("B8", "B8A"),
                "swir16": ("B11",), "swir22": ("B12",)}

#: Bands the detectors read (anything else in a stack is ignored).
USEFUL_BANDS = ("B2", "B3", "B4", "B8", "B8A", "B10", "B11", "B12")

#: the CNN's tile and the overlap of neighbouring tiles, in working-resolution pixels
CSMASK_TILE, CSMASK_OVERLAP = 256, 64
#: the rules' *bright* and *hazy* tests on top-of-atmosphere reflectance (Fmask's; L2A:
#: :func:`rule_thresholds`)
BRIGHT_TOA, HAZY_TOA = 0.20, 0.08
#: SWIR (B11) reflectance above which a pixel with snow's NDSI is cloud over snow: snow and ice
#: absorb at 1.6 um. On every bright (blue above the *bright* test) pixel with NDSI >= 0.4 of the
#: project's clear scenes (snowfields in the Alps and Finland, bright pixels in Virginia and
#: Major TOM cells; L1C and L2A) B11 stays below 0.17 (99.9 % below 0.15). The project's real
#: clouds (blue above 0.3; SSL4EO, SEN12MS-CR, BigEarthNet, the overcast Major TOM deck) have a
#: median B11 of 0.24-0.55, their first percentile 0.21-0.35: a deck as dim as Major TOM's over
#: snow is only partly found.
SNOW_MAX_SWIR = 0.2
#: shadow: NIR and SWIR below this fraction of the scene's clear median
SHADOW_DARKNESS = 0.6
#: cloud objects are kept when they hold a 3 x 3 core, grown back through cloud pixels at most this far
RECONSTRUCT_PX = 50
#: Where the CNN runs, a body of the rules' cloud joins its cloud class only when it holds a core of
#: (2 x this + 1) working pixels a side (150 m): the CNN misses large flat bodies, while a bright
#: roof or sand pit the rules take for cloud is small (a 150 m roof of Virginia's farmland passed the
#: rules' 90 m core).
UNION_CORE_PX = 2
#: ... and only where they are as bright as thick cloud (B2 reflectance): haze and thin veils, which
#: the rules also call cloud, stay the CNN's to judge. Over a scene-wide veil (the demo's synthetic
#: scene: blue 0.21 everywhere) the rules take the whole scene, and the fill then has nothing clear
#: to draw from; the thick cores the CNN missed are brighter than 0.35.
UNION_MIN_BLUE = 0.3


# --------------------------------------------------------------------------- grid helpers


def block_mean(x: np.ndarray, valid: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each ``factor`` x ``factor`` block over its valid pixels: (C, H, W) ->
    (C, ceil(H/f), ceil(W/f)) float32, and a block validity (at least one valid pixel).
    Invalid blocks are 0. Blocks start at the array's top-left corner."""
    if factor == 1:
        return np.where(valid, x, 0).astype(np.float32), valid.copy()
    c, h, w = x.shape
    hb, wb = -(-h // factor), -(-w // factor)
    pad = ((0, hb * factor - h), (0, wb * factor - w))
    xs = np.where(valid, x, np.float32(0)).astype(np.float32, copy=False)
    if pad != ((0, 0), (0, 0)):
        xs = np.pad(xs, ((0, 0), *pad))
    vs = np.pad(valid, pad).astype(np.float32)
    num = xs.reshape(c, hb, factor, wb, factor).sum(axis=(2, 4))
    den = vs.reshape(hb, factor, wb, factor).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den > 0, num / den, 0).astype(np.float32)
    return mean, den > 0


def upsample_nearest(a: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Repeat each pixel ``factor`` x ``factor`` times and crop to ``shape`` (the inverse
    grid of :func:`block_mean`)."""
    if factor > 1:
        a = np.repeat(np.repeat(a, factor, axis=-2), factor, axis=-1)
    return a[..., : shape[0], : shape[1]]


def upsample_smooth(a: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a (h, w) float map by ``factor`` (pixel centres aligned as in
    :func:`block_mean`), cropped to ``shape``."""
    if factor == 1:
        return a[: shape[0], : shape[1]].astype(np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
    up = F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)
    return up[0, 0, : shape[0], : shape[1]].numpy()


def _dilate_last_axis(m: np.ndarray, r: int) -> np.ndarray:
    """``any(m[..., i-r : i+r+1])``: a sparse-table running OR, log2(2r+1) passes."""
    n, length = m.shape[-1], 2 * r + 1
    f = np.pad(m, [(0, 0)] * (m.ndim - 1) + [(r, r)])
    span = 1
    while span * 2 <= length:
        f = f[..., :-span] | f[..., span:]
        span *= 2
    return f[..., :n] | f[..., length - span: length - span + n]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation by a (2r+1) x (2r+1) square: True within ``radius`` pixels
    (Chebyshev distance) of a True pixel."""
    mask = np.asarray(mask, bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    out = _dilate_last_axis(mask, radius)
    return _dilate_last_axis(out.swapaxes(-1, -2), radius).swapaxes(-1, -2)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean erosion by the same square as :func:`dilate`."""
    return ~dilate(~np.asarray(mask, bool), radius)


def reconstruct(seed: np.ndarray, mask: np.ndarray, steps: int) -> np.ndarray:
    """The pixels of ``mask`` connected (8-neighbours) to ``seed`` within ``steps`` pixels:
    morphological reconstruction by dilation, bounded so that a window's result depends only
    on pixels at most ``steps`` + 1 away."""
    out = seed & mask
    for _ in range(steps):
        grown = dilate(out, 1) & mask
        if np.array_equal(grown, out):
            break
        out = grown
    return out


# --------------------------------------------------------------------------- spectral rules


def _band(x: np.ndarray, bands: Sequence[str], *names: str) -> np.ndarray | None:
    for name in names:
        if name in bands:
            return x[list(bands).index(name)]
    return None


def rules_missing(bands: Sequence[str]) -> list[str]:
    """Bands the spectral rules need but ``bands`` lacks (NIR may be B8 or B8A)."""
    missing = [b for b in ("B2", "B3", "B4") if b not in bands]
    if "B8" not in bands and "B8A" not in bands:
        missing.append("B8")
    return missing


def rule_thresholds(product_level: str) -> tuple[float, float]:
    """The *bright* (B2) and *hazy* (``B2 - 0.5 B4``) thresholds of the cloud test at
    ``product_level``: Fmask's top-of-atmosphere :data:`BRIGHT_TOA` and :data:`HAZY_TOA`, less the
    path reflectance for L2A (module docstring)."""
    if product_level == "l1c":
        return BRIGHT_TOA, HAZY_TOA
    path_blue, path_red = path_reflectance(("B2", "B4"))
    return BRIGHT_TOA - path_blue, HAZY_TOA - (path_blue - 0.5 * path_red)


def cloud_test(x: np.ndarray, bands: Sequence[str], product_level: str) -> np.ndarray:
    """(h, w) bool: the spectral rules' cloud (module docstring) in reflectance ``x`` (C, h, w)."""
    bright, hazy = rule_thresholds(product_level)
    blue, green, red = (_band(x, bands, b) for b in ("B2", "B3", "B4"))
    nir, swir, cirrus = _band(x, bands, "B8", "B8A"), _band(x, bands, "B11"), _band(x, bands, "B10")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_vis = (blue + green + red) / 3
        whiteness = (abs(blue - mean_vis) + abs(green - mean_vis) + abs(red - mean_vis)) / mean_vis
        cloud = (blue > bright) & (whiteness < 0.7) & (blue - 0.5 * red > hazy)
        if swir is not None:
            not_snow = ((green - swir) / (green + swir) < 0.4) | (swir > SNOW_MAX_SWIR)
            cloud &= not_snow & (nir > 0.9 * swir)
        cloud = bodies_with_core(cloud, 1)  # drop specks: sand, roofs
        if cirrus is not None:
            cloud |= cirrus > 0.03
    return cloud


def bodies_with_core(mask: np.ndarray, radius: int) -> np.ndarray:
    """The bodies of ``mask`` that hold a (2 ``radius`` + 1)-pixel square core, grown back through
    ``mask`` at most :data:`RECONSTRUCT_PX` pixels from it: specks go, large bodies stay whole."""
    return reconstruct(erode(mask, radius), mask, RECONSTRUCT_PX)


def thick_cloud_bodies(x: np.ndarray, bands: Sequence[str], product_level: str,
                       valid: np.ndarray) -> np.ndarray:
    """(h, w) bool: the rules' cloud bodies in reflectance ``x`` (C, h, w) that are as bright as
    thick cloud (:data:`UNION_MIN_BLUE`) and hold a 150 m core (:data:`UNION_CORE_PX`): what
    joins the CNN's cloud class, which passes over such flat, bright bodies."""
    bright = _band(x, bands, "B2") >= UNION_MIN_BLUE
    return bodies_with_core(cloud_test(x, bands, product_level) & valid & bright, UNION_CORE_PX)


def shadow_reference(x: np.ndarray, bands: Sequence[str], valid: np.ndarray,
                     product_level: str) -> tuple[float, float]:
    """Median NIR and SWIR (B11; NaN without it) of the valid pixels that are not cloud:
    the brightness that shadow is measured against."""
    keep = valid & ~cloud_test(x, bands, product_level)
    nir, swir = _band(x, bands, "B8", "B8A"), _band(x, bands, "B11")
    if not keep.any():
        return float("nan"), float("nan")
    return float(np.median(nir[keep])), float(np.median(swir[keep])) if swir is not None else float("nan")


def rules_bands(bands: Sequence[str]) -> list[str]:
    """The bands of ``bands`` that the spectral rules read."""
    nir = "B8" if "B8" in bands else "B8A"
    return [b for b in ("B2", "B3", "B4", nir, "B10", "B11") if b in bands]


def spectral_rules(x: np.ndarray, bands: Sequence[str], product_level: str,
                   reference: tuple[float, float]) -> np.ndarray:
    """Classes (h, w) uint8 from reflectance ``x`` (C, h, w) by the module's spectral rules;
    ``reference``: :func:`shadow_reference` of the scene."""
    cloud = cloud_test(x, bands, product_level)
    green, nir, swir = _band(x, bands, "B3"), _band(x, bands, "B8", "B8A"), _band(x, bands, "B11")
    with np.errstate(invalid="ignore"):
        shadow = (nir < SHADOW_DARKNESS * reference[0]) & (nir > green)
        if swir is not None:
            shadow &= swir < SHADOW_DARKNESS * reference[1]
    classes = np.full(cloud.shape, CLEAR, np.uint8)
    classes[shadow & ~cloud] = SHADOW
    classes[cloud] = CLOUD
    return classes


# --------------------------------------------------------------------------- ukis-csmask


def csmask_core(window: int, margin: int) -> int:
    """The core size (working pixels) near ``window`` for which a core plus ``margin`` on
    each side is a whole number of CNN tiles (256 + n x 192): no tile is spent on slack."""
    stride = CSMASK_TILE - CSMASK_OVERLAP
    n = max(0, round((window + 2 * margin - CSMASK_TILE) / stride))
    while CSMASK_TILE + n * stride - 2 * margin < stride:
        n += 1
    return CSMASK_TILE + n * stride - 2 * margin


def csmask_available() -> bool:
    """Whether ukis-csmask and onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
        import ukis_csmask  # noqa: F401
    except ImportError:
        return False
    return True


def csmask_band_order(bands: Sequence[str]) -> tuple[list[str], list[str]]:
    """(csmask band names, the Sentinel-2 bands that feed them) for the 6-band model when
    SWIR is present, else the 4-band model; raises ValueError if blue/green/red/NIR lack."""
    names, s2 = [], []
    for name, candidates in CSMASK_BANDS.items():
        found = next((b for b in candidates if b in bands), None)
        if found is None and name in ("swir16", "swir22"):
            return names[:4], s2[:4]
        if found is None:
            raise ValueError(f"ukis-csmask needs {name} ({' or '.join(candidates)})")
        names.append(name)
        s2.append(found)
    return names, s2


class CsmaskRunner:
    """One onnxruntime session of a ukis-csmask model, reused across windows."""

    def __init__(self, product_level: str, bands: Sequence[str], threads: int = 0):
        import onnxruntime
        import ukis_csmask

        self.names, self.s2_bands = csmask_band_order(bands)
        folder = Path(ukis_csmask.__file__).parent
        model = folder / f"model_{len(self.names)}b_{product_level}.onnx"
        meta = json.loads(model.with_suffix(".json").read_text())["data"]
        order = meta["dataset_statistics"]["band_names"]
        if order != self.names:
            raise RuntimeError(f"{model.name} expects bands {order}, not {self.names}: unsupported "
                               "ukis-csmask version; install the version pinned in sarclear's 'masks' extra")
        mean, std = meta["dataset_statistics"]["img"]
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model), sess_options=so,
                                                    providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.label = f"ukis-csmask {ukis_csmask.__version__} {product_level} {len(self.names)}-band"

    def __call__(self, x: np.ndarray, bands: Sequence[str], valid: np.ndarray) -> np.ndarray:
        """Class probabilities (3, h, w) (clear, cloud, shadow) for reflectance ``x``
        (C, h, w); invalid pixels are filled from their nearest valid neighbour first."""
        from scipy import ndimage  # a dependency of ukis-csmask

        img = np.stack([x[list(bands).index(b)] for b in self.s2_bands]).astype(np.float32)
        if not valid.all():
            idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
            img = img[:, idx[0], idx[1]]
        img = (img - self.mean) / self.std
        _, h, w = img.shape
        ph, pw = max(0, CSMASK_TILE - h), max(0, CSMASK_TILE - w)
        if ph or pw:  # smaller than one tile: mirror (the CNN then sees much padding)
            img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
        return self._tiled(img)[:, :h, :w]

    def _tiled(self, img: np.ndarray) -> np.ndarray:
        from .tiling import blend_weights, tile_offsets

        _, h, w = img.shape
        weight = blend_weights(CSMASK_TILE, CSMASK_OVERLAP).numpy()
        acc = np.zeros((3, h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        rows, cols = (tile_offsets(n, CSMASK_TILE, CSMASK_OVERLAP) for n in (h, w))
        offsets = [(r, c) for r in rows for c in cols]
        for k in range(0, len(offsets), 4):
            chunk = offsets[k: k + 4]
            tiles = np.stack([img[:, r: r + CSMASK_TILE, c: c + CSMASK_TILE] for r, c in chunk])
            logits = self.session.run(None, {self.input: tiles})[0]  # (n, 3, 256, 256)
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            for (r, c), p in zip(chunk, prob):
                acc[:, r: r + CSMASK_TILE, c: c + CSMASK_TILE] += p * weight
                wsum[r: r + CSMASK_TILE, c: c + CSMASK_TILE] += weight
        return acc / wsum
