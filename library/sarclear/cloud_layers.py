"""Real cloud layers: clouds and shadows lifted from real cloudy scenes, to lay over clear ones.

Synthetic clouds (:mod:`sarclear.clouds`) are one spectral colour, smooth noise, and never quite
opaque. Real clouds are not: their tops vary in colour and texture, their edges are ragged, broken
cumulus and stratocumulus leave cells of ground between them, and their shadows fall on fields.
A method can do well on the first and badly on the second (a network that learned to see through
synthetic clouds does). A layer keeps what a real cloudy scene shows of its clouds, so that it can
be laid over a clear scene whose ground is known exactly::

    cloudy_b = clear_b * shadow * (1 - alpha) + colour_b * alpha

:func:`extract_layer` estimates, from one cloudy scene and its cloud/shadow classes
(:func:`sarclear.masks.detect_array`):

- the **ground** the clouds hide: the normalized-convolution fill of the clear pixels
  (:mod:`sarclear.fill`), a smooth estimate;
- the **cloud colour**: smooth, from the brightest fifth of the cloud pixels (the cores), plus the
  observed texture where the cloud is thick (weight ``alpha ** 2``), so that thick tops keep their
  real texture and thin parts do not carry the hidden ground's own detail;
- the **opacity** ``alpha`` (one for all bands, thin real cloud is about neutral): how far the
  observed blue lies from the ground towards the cloud colour, near flagged cloud only;
- the **shadow**: the observed brightness over the ground's, smoothed, where shadow is flagged.

The ground estimate is smooth, so the thin parts of a layer are approximate; the composite is
exact by construction: whatever the layer holds is what the cloudy scene's pixels are made of, and
the clear scene beneath is the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from .clouds import CloudResult
from .errors import InputError
from .fill import FILL_REACH_PX, fill_sources, local_mean, normalized_convolution

CORE_QUANTILE = 0.8    # cloud pixels whose blue is above this quantile are the cores (the colour)
MIN_CONTRAST = 0.05    # cloud colour minus ground, blue (reflectance): floor of the opacity's scale
SOURCE_BUFFER_PX = 6   # the ground is filled from clear pixels this far from the flagged ones
MIN_ALPHA = 0.05       # below this the opacity is the ground's own blue texture: none
BLUE = "B2"


@dataclass(frozen=True)
class CloudLayer:
    """Opacity (H, W), cloud colour (C, H, W, reflectance) and shadow factor (H, W, 1 = none) of
    one real cloudy scene, with its band names and where it came from."""

    alpha: Tensor
    colour: Tensor
    shadow: Tensor
    bands: tuple[str, ...]
    source: str = ""
    sun_azimuth_deg: float | None = None  # the source's sun, clockwise from the grid's up (sarclear.sun); None: unknown

    @property
    def cloud_fraction(self) -> float:
        """Share of the layer with opacity at least 0.5."""
        return float((self.alpha >= 0.5).float().mean())

    def placed(self, height: int, width: int, seed: int) -> CloudLayer:
        """The layer turned and flipped at random (seeded) and cut (mirrored where it is
        smaller) to ``height`` x ``width``. Its sun turns and flips with it; where mirrored
        copies were needed their shadows point several ways, and the sun is unknown (None)."""
        gen = torch.Generator().manual_seed(int(seed))
        turns, flip = (int(v) for v in torch.randint(0, 4, (2,), generator=gen))
        stack = torch.cat([self.alpha[None], self.colour, self.shadow[None]])
        stack = torch.rot90(stack, turns, (1, 2))
        if flip % 2:
            stack = stack.flip(2)
        reps = (-(-height // stack.shape[1]), -(-width // stack.shape[2]))
        rows = torch.cat([stack if i % 2 == 0 else stack.flip(1) for i in range(reps[0])], 1)
        tiled = torch.cat([rows if j % 2 == 0 else rows.flip(2) for j in range(reps[1])], 2)
        r0 = int(torch.randint(0, tiled.shape[1] - height + 1, (1,), generator=gen))
        c0 = int(torch.randint(0, tiled.shape[2] - width + 1, (1,), generator=gen))
        cut = tiled[:, r0:r0 + height, c0:c0 + width]
        sun = None
        if self.sun_azimuth_deg is not None and reps == (1, 1):
            sun = (self.sun_azimuth_deg - 90 * turns) % 360  # rot90 turns counter-clockwise
            sun = (360 - sun) % 360 if flip % 2 else sun     # a left-right mirror
        return CloudLayer(cut[0], cut[1:-1], cut[-1], self.bands, self.source, sun)

    def apply(self, clear: Tensor, bands: Sequence[str]) -> CloudResult:
        """Lay the layer over ``clear`` (B, C, H, W reflectance, the layer's size) with band names
        ``bands`` (each must be in the layer); the result's ``opacity`` and ``thick`` are the
        layer's opacity, its ``shadow`` the darkening (1 - shadow factor)."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise InputError(f"the cloud layer from {self.source or 'its scene'} has no band {', '.join(missing)}")
        if tuple(clear.shape[-2:]) != tuple(self.alpha.shape):
            raise InputError(f"the cloud layer is {tuple(self.alpha.shape)} px, the scene {tuple(clear.shape[-2:])}: "
                             "place it first (CloudLayer.placed)")
        idx = [self.bands.index(b) for b in bands]
        a = self.alpha.to(clear)[None, None]
        k = self.shadow.to(clear)[None, None]
        colour = self.colour[idx].to(clear)[None]
        cloudy = clear * k * (1 - a) + colour * a
        a_out = a.expand(clear.shape[0], 1, -1, -1)
        return CloudResult(cloudy, a_out, a_out, (1 - k).expand_as(a_out))


def extract_layer(reflectance: np.ndarray, bands: Sequence[str], classes: np.ndarray, valid: np.ndarray,
                  source: str = "") -> CloudLayer:
    """The cloud layer (module docstring) of a cloudy scene: ``reflectance`` (C, H, W), its band
    names, ``classes`` (H, W: 0 clear, 1 cloud, 2 shadow, as :func:`sarclear.masks.detect_array`
    gives) and ``valid`` (H, W). Nodata gets no cloud and no shadow."""
    bands = tuple(bands)
    if BLUE not in bands:
        raise InputError(f"a cloud layer needs the blue band {BLUE}; the scene has {', '.join(bands)}")
    if not ((classes == 1) & valid).any():
        raise InputError(f"{source or 'the scene'} has no pixel flagged as cloud: no layer to take from it")
    b = bands.index(BLUE)
    x = torch.from_numpy(np.nan_to_num(reflectance)).double()[None]
    ok = torch.from_numpy(valid & np.isfinite(reflectance).all(0))
    cloud = torch.from_numpy(classes == 1) & ok
    clear = (torch.from_numpy(classes == 0) & ok).double()[None, None]
    ground = normalized_convolution(x, fill_sources(clear, SOURCE_BUFFER_PX), sigma=4.0, reach=FILL_REACH_PX)
    blue = x[0, b]
    cores = (cloud & (blue >= torch.quantile(blue[cloud], CORE_QUANTILE))).double()[None, None]
    tops = normalized_convolution(x, cores, sigma=8.0)
    scale = (tops[:, b] - ground[:, b]).clamp_min(MIN_CONTRAST)
    alpha = ((x[:, b] - ground[:, b]) / scale).clamp(0, 1)[:, None]
    near = local_mean(torch.from_numpy(classes > 0).double()[None, None], 2.0) > 0.01
    alpha = torch.where(alpha >= MIN_ALPHA, alpha, torch.zeros_like(alpha)) * near * ok
    model = (1 - alpha) * ground + alpha * tops
    colour = (tops + alpha * (x - model)).clamp_min(0)  # alpha * colour = observed - (1 - alpha) * ground at alpha 1
    ratio = (x / ground.clamp_min(1e-3)).clamp(0.1, 1.0).mean(1, keepdim=True)
    flagged = local_mean(torch.from_numpy(classes == 2).double()[None, None], 1.5)
    shadow = 1 - flagged * (1 - local_mean(ratio, 2.0)) * (1 - alpha) * ok
    return CloudLayer(alpha[0, 0].float(), colour[0].float(), shadow[0, 0].float(), bands, source)


def scene_layers(scenes: Sequence, min_cloud: float = 0.05) -> list[tuple[object, CloudLayer]]:
    """(scene, layer) for each real cloudy :class:`sarclear.datasets.Scene` in ``scenes`` whose
    layer holds at least ``min_cloud`` thick cloud, from the library's spectral rules (undilated:
    the layer's opacity finds the soft edges itself). The rules, whatever the scene's size: the
    opacity is read near what they flag, and a layer must not change with the detector that
    ``--mask auto`` picks for that size (the CNN flags a whole overcast quadrant)."""
    from .masks import MaskOptions, detect_array
    from .sun import grid_sun

    rules = MaskOptions(method="rules", dilate_px=0)
    out = []
    for s in scenes:
        valid = np.isfinite(s.ms).all(0)
        classes = detect_array(s.ms, s.bands, valid, s.product_level, options=rules).classes
        if not ((classes == 1) & valid).any():
            continue
        layer = extract_layer(s.ms, s.bands, classes, valid, source=s.name)
        sun = grid_sun([s.name], getattr(s, "geotransform", None), getattr(s, "crs_wkt", ""),
                       s.ms.shape[2], s.ms.shape[1])[0]
        layer = replace(layer, sun_azimuth_deg=sun)
        if layer.cloud_fraction >= min_cloud:
            out.append((s, layer))
    return out
