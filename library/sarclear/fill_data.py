"""Training examples for the gap-fill generator: crops of clear scenes, synthetic clouds of
three kinds drawn over them, and the cloud mask a detector would give.

A batch item is built from a clear crop ``truth`` (C, h, w) reflectance::

    kind    thick cloud | haze only | thick cloud with shadow   (drawn per item)
            | a real cloud layer (share ``layer_fraction``, where layers are given)
    cloudy  = sarclear.clouds (or the layer) over truth          (exact opacity known)
    hidden  = dilate(opacity > t or shadow > t_s, k px)          t, t_s, k random: a mask
                                                                  with a detector's errors
    clear   = 1 - hidden, and 0 where the scene has no data
    prior   = normalized_convolution(cloudy, clear)
    observed = cloudy, with nodata replaced by the prior

With ``level_jitter``, each item's clear crop first gets its own radiometric level
(:func:`jitter_level`): the network then cannot learn one product level (every S1+S2 training
pair is L2A surface reflectance) and must take the level from the scene's clear pixels, as users
bring L1C and L2A alike.

Everything is seeded by a ``torch.Generator``, so a step's batch is a function of the run's
seed and the step number (exact resume).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .cloud_layers import CloudLayer
from .clouds import CloudConfig, CloudField, scattering_shape
from .fill import FILL_REACH_PX, fill_sources, normalized_convolution

#: Sources (:mod:`sarclear.datasets`) whose real cloudy train-split scenes training may take cloud
#: layers from (:mod:`sarclear.cloud_layers`). The quality benchmark lays other scenes' clouds.
TRAINING_LAYER_SOURCES = ("benv2",)

#: Cloud kinds and their drawing probability.
KINDS = ("thick", "haze", "shadow")
KIND_WEIGHTS = (0.4, 0.25, 0.35)

#: Grey shadows (``shadow_diffuse`` 0: every band darkens alike), as the bundled models were
#: trained; a fine-tune under shadows that keep the bluish diffuse light (the benchmark's) did not
#: do better on the real cloudy scene (docs/QUALITY.md), so the training draws stay as they were.
_KIND_CONFIGS = {
    "thick": dict(coverage=(0.1, 0.7), haze=(0.0, 0.15), shadow=(0.0, 0.0), shadow_diffuse=(0.0, 0.0)),
    "haze": dict(coverage=(0.0, 0.0), haze=(0.15, 0.7), shadow=(0.0, 0.0), shadow_diffuse=(0.0, 0.0)),
    "shadow": dict(coverage=(0.1, 0.5), haze=(0.0, 0.1), shadow=(0.3, 0.8), shadow_diffuse=(0.0, 0.0)),
}


@dataclass
class SceneArrays:
    """One clear scene in memory: ms (C, H, W) reflectance, NaN = no data; sar (S, H, W) dB
    on the same grid, or None."""

    name: str
    ms: Tensor
    sar: Tensor | None = None
    split: str = "train"


@dataclass
class FillBatch:
    """Network inputs and training targets, all (B, *, h, w) float32."""

    observed: Tensor
    clear: Tensor      # 1 clear, 0 hidden or no data
    prior: Tensor
    sar: Tensor        # network range; zeros where the item has no SAR
    truth: Tensor      # clear reflectance (0 where no data)
    valid: Tensor      # 1 where truth is known
    hidden: Tensor     # 1 where the mask hides the pixel (the loss region)
    thick: Tensor      # thick-cloud opacity (the gate's target)
    kinds: list[str]

    def to(self, device: torch.device) -> FillBatch:
        """The same batch on ``device``."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device)
                                            for f in dataclasses.fields(self) if f.name != "kinds"})


def cloud_config(kind: str, cell_px: float) -> CloudConfig:
    return CloudConfig(cell_px=cell_px, **_KIND_CONFIGS[kind])


def _pick(weights: Sequence[float], g: torch.Generator) -> int:
    return int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))


def crop_scene(scene: SceneArrays, size: int, g: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """A random crop (top-left uniform), mirror-padded where the scene is smaller."""
    _, h, w = scene.ms.shape
    top = int(torch.randint(0, max(1, h - size + 1), (1,), generator=g))
    left = int(torch.randint(0, max(1, w - size + 1), (1,), generator=g))

    def cut(t: Tensor) -> Tensor:
        t = t[:, top:top + size, left:left + size]
        ph, pw = size - t.shape[1], size - t.shape[2]
        if ph or pw:
            t = F.pad(t[None], (0, pw, 0, ph), mode="reflect" if min(t.shape[1:]) > max(ph, pw) else
                      "replicate")[0]
        return t

    return cut(scene.ms), cut(scene.sar) if scene.sar is not None else None


def detector_mask(opacity: Tensor, shadow: Tensor, g: torch.Generator) -> Tensor:
    """Hidden (B, 1, h, w) float from the exact opacity and shadow, with a random threshold
    and dilation per item so the network tolerates a real detector's errors."""
    out = []
    for i in range(opacity.shape[0]):
        t = 0.03 + 0.12 * float(torch.rand(1, generator=g))
        ts = 0.05 + 0.15 * float(torch.rand(1, generator=g))
        k = int(torch.randint(0, 4, (1,), generator=g))
        m = ((opacity[i:i + 1] > t) | (shadow[i:i + 1] > ts)).float()
        if k:
            m = F.max_pool2d(m, 2 * k + 1, stride=1, padding=k)
        out.append(m)
    return torch.cat(out)


#: Level jitter at ``level_jitter`` 1: a gain of exp(+-0.2) for all bands, and an offset of up to
#: -0.03 .. +0.06 reflectance at 490 nm, falling as (490 nm / wavelength)^2 (haze and path
#: radiance, about what separates L1C from L2A over land).
LEVEL_GAIN, LEVEL_OFFSET = 0.2, (-0.03, 0.06)


def jitter_level(truth: Tensor, bands: Sequence[str], strength: float, g: torch.Generator) -> Tensor:
    """``truth`` (B, C, h, w) with a random gain and a wavelength-shaped offset per item
    (:data:`LEVEL_GAIN`, :data:`LEVEL_OFFSET`, scaled by ``strength``), never below 0."""
    b = truth.shape[0]
    u = torch.rand(b, 2, generator=g).to(truth)
    gain = torch.exp(strength * LEVEL_GAIN * (2 * u[:, 0] - 1))
    low, high = LEVEL_OFFSET
    offset = strength * (low + (high - low) * u[:, 1])
    shape = scattering_shape(bands, 2).to(truth)
    return (truth * gain[:, None, None, None] + offset[:, None, None, None] * shape[None, :, None, None]).clamp_min(0)


def make_batch(truth: Tensor, sar_db: Tensor, has_sar: Tensor, bands: Sequence[str], sar_scaling,
               g: torch.Generator, kinds: Sequence[str] | None = None, fill_buffer: int = 0,
               layers: Sequence[CloudLayer] = (), layer_fraction: float = 0.0,
               level_jitter: float = 0.0) -> FillBatch:
    """Clouds, mask, prior and inputs for clear crops ``truth`` (B, C, h, w) (NaN = no data);
    ``sar_db`` (B, S, h, w), ``has_sar`` (B,) bool. ``kinds`` fixes each item's cloud kind;
    ``fill_buffer``: the prior's source buffer (:func:`sarclear.fill.fill_sources`). With
    ``layers``, a share ``layer_fraction`` of the items gets one of them (kind "real"), turned
    and cut at random, instead of synthetic clouds (no random draw is spent on it otherwise,
    so a run without layers draws the batches it always did). ``level_jitter`` (0..1):
    :func:`jitter_level` on the clear crops first (none at 0, and no random draw spent)."""
    b, _, h, w = truth.shape
    valid = torch.isfinite(truth).all(1, keepdim=True).float()
    truth = torch.nan_to_num(truth)
    if level_jitter > 0:
        truth = jitter_level(truth, bands, level_jitter, g) * valid
    cloudy, opacity, thick, shadow, chosen = [], [], [], [], []
    for i in range(b):
        if layers and layer_fraction > 0 and float(torch.rand(1, generator=g)) < layer_fraction:
            kind = "real"
            layer = layers[int(torch.randint(0, len(layers), (1,), generator=g))]
            r = layer.placed(h, w, int(torch.randint(0, 2**31 - 1, (1,), generator=g))).apply(truth[i:i + 1], bands)
        else:
            kind = kinds[i] if kinds is not None else KINDS[_pick(KIND_WEIGHTS, g)]
            cell = math.exp(math.log(30.0) + (math.log(120.0) - math.log(30.0)) * float(torch.rand(1, generator=g)))
            field = CloudField(1, h, w, cloud_config(kind, cell), seed=g, device=truth.device)
            r = field.apply(truth[i:i + 1], bands)
        cloudy.append(r.cloudy)
        opacity.append(r.opacity)
        thick.append(r.thick)
        shadow.append(r.shadow)
        chosen.append(kind)
    cloudy_t, opacity_t, thick_t, shadow_t = (torch.cat(t) for t in (cloudy, opacity, thick, shadow))
    hidden = detector_mask(opacity_t, shadow_t, g)
    clear = (1 - hidden) * valid
    prior = normalized_convolution(cloudy_t, fill_sources(clear, fill_buffer), reach=FILL_REACH_PX)
    observed = torch.where(valid > 0, cloudy_t, prior)
    if sar_scaling is not None and sar_db.shape[1]:
        sar = sar_scaling.to_network(torch.nan_to_num(sar_db)) * has_sar[:, None, None, None]
    else:
        sar = truth[:, :0]
    return FillBatch(observed, clear, prior, sar, truth, valid, hidden * valid, thick_t, chosen)
