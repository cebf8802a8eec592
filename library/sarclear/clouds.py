"""Synthetic clouds, haze and cloud shadows from Perlin (fractal gradient) noise, in torch.

Following the paper ("adding Perlin noise to all Sentinel-2 channels in an adaptive
manner"), a cloudy image is composed from a clear one, per band ``b``::

    shadowed_b = clear_b * (1 - s * shadow * (1 - d_b))       # cloud shadow on the ground
    cloudy_b   = shadowed_b * (1 - a_b) + cloud_b * a_b       # cloud and haze on top
    a_b        = 1 - (1 - thick) * (1 - haze) ** k_b

* ``thick``: opacity of thick cloud, multi-octave Perlin noise above a threshold chosen so
  the sampled fraction of the scene is covered, with soft edges;
* ``haze``: a thin veil from low-frequency noise, by default thicker at short wavelengths as
  aerosol haze is (``k_b = (490 nm / wavelength_b) ** p``, ``p = haze_power`` = 1); with
  ``haze_power`` 0 it is neutral, as a thin water cloud is (its droplets are far larger than
  the wavelength). Real thin cloud is close to neutral: on the real cloudy SSL4EO-S12 scene,
  where the blue excess over the fill is 0.03-0.2, the observed SWIR excess over the clear
  date 10 days earlier is 0.6-0.9 times the blue one (median), against 0.3 for ``p`` = 1;
* ``cloud_b``: cloud-top reflectance, the sampled brightness times a spectral shape (flat in
  VNIR, darker in SWIR), and *adaptive*: never darker than the scene's own 98th percentile in
  that band, so clouds are always brighter than the ground they cover;
* ``shadow``: the thick-cloud opacity displaced by a random offset, darkening the ground by
  the sampled strength ``s`` where only direct sunlight lit it. A shadow keeps the diffuse
  light: skylight, which is blue, and at the top of the atmosphere the path radiance, which
  is bluer still. So the share ``d_b = d * (490 nm / wavelength_b) ** 2`` of each band's light
  stays, with ``d`` sampled per image (``shadow_diffuse``): real shadows darken NIR and SWIR
  far more than blue, and on top-of-atmosphere (L1C) scenes they barely show in blue at all
  (measured on the real cloudy SSL4EO-S12 scene against its clear date 10 days earlier:
  observed over clear 0.99 in blue, 0.92 red, 0.83 NIR, 0.79 SWIR, where the mask's
  shadows and buffer look clear in blue).

The noise is a function of pixel coordinates, so a large raster can be corrupted window by
window with the same result as all at once. Everything runs on any torch device and is
reproducible from a seed (random draws are made on the CPU and moved to the device, so CPU
and GPU give the same clouds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .bands import S2_WAVELENGTH_NM
from .errors import InputError

#: Cloud-top reflectance relative to the visible/NIR level, by band.
_CLOUD_SHAPE = {"B10": 0.3, "B11": 0.75, "B12": 0.5}


def scattering_shape(bands: Sequence[str], power: float, device: str | torch.device | None = None) -> Tensor:
    """``(490 nm / wavelength) ** power`` per band, (C,) float32: how scattered light (haze,
    skylight, path radiance) falls off from blue towards the SWIR. Haze opacity goes as the
    first power, the diffuse light a shadow keeps and the level offset of training crops
    (:func:`sarclear.fill_data.jitter_level`) as the second."""
    wavelength = torch.tensor([S2_WAVELENGTH_NM[name] for name in bands], device=device)
    return (490.0 / wavelength) ** power


@dataclass(frozen=True)
class CloudConfig:
    """Ranges from which each image's cloud parameters are drawn (uniformly)."""

    coverage: tuple[float, float] = (0.05, 0.8)   # fraction of the scene with thick opacity >= 0.5
    haze: tuple[float, float] = (0.0, 0.5)        # opacity of the haze veil at 490 nm
    brightness: tuple[float, float] = (0.35, 0.9)  # cloud-top reflectance, visible/NIR
    shadow: tuple[float, float] = (0.0, 0.6)      # darkening of the ground in cloud shadow
    shadow_offset: tuple[float, float] = (5.0, 20.0)  # shadow displacement, pixels
    shadow_diffuse: tuple[float, float] = (0.2, 0.95)  # share of the light at 490 nm a shadow keeps
    haze_power: float = 1.0                       # haze opacity's spectral power: 1 aerosol, 0 neutral
    octaves: int = 6
    cell_px: float = 100.0                        # noise cell size of the coarsest octave, pixels
    persistence: float = 0.5
    softness: float = 0.6                         # noise std over which cloud edges fade in

    def __post_init__(self) -> None:
        for name in ("coverage", "haze", "brightness", "shadow", "shadow_diffuse"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise InputError(f"cloud {name} range is {lo}..{hi}; it must lie within 0..1, minimum first")
        if not 0 <= self.haze_power <= 4:
            raise InputError(f"the haze's spectral power is {self.haze_power}; use 0 (neutral, thin cloud) "
                             "to 4 (1: aerosol haze)")
        if not (self.cell_px >= 1 and math.isfinite(self.cell_px)):
            raise InputError(f"the cloud size is {self.cell_px} pixels; it must be 1 pixel or more")
        if not 1 <= self.octaves <= 16:
            raise InputError(f"{self.octaves} noise octaves; use 1 to 16")

    def fixed(self, **values: float) -> CloudConfig:
        """A config with some parameters fixed to one value (``coverage=0.5`` etc.; a range
        becomes that value twice, a single number stays one)."""
        fixed = {k: (float(v), float(v)) if isinstance(getattr(self, k), tuple) else float(v)
                 for k, v in values.items()}
        return CloudConfig(**{**self.__dict__, **fixed})


@dataclass
class CloudResult:
    """A cloudy image and what was done to it; tensors (B, C|1, H, W)."""

    cloudy: Tensor
    opacity: Tensor  # combined cloud + haze opacity at 490 nm, [0, 1]
    thick: Tensor    # thick-cloud opacity, [0, 1]
    shadow: Tensor   # shadow darkening of the direct light (the most any band darkens), [0, 1]

    @property
    def mask(self) -> Tensor:
        """Pixels under thick cloud: opacity at least 0.5 (what ``coverage`` counts)."""
        return self.thick >= 0.5


def _fade(t: Tensor) -> Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def _corner(grads: Tensor, bi: Tensor, iy: Tensor, ix: Tensor, fy: Tensor, fx: Tensor, dy: int, dx: int) -> Tensor:
    g = grads[bi, iy + dy, ix + dx]  # (B, h, w, 2)
    return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)


class _Perlin:
    """Fractal Perlin noise for a batch, defined over an ``height x width`` pixel grid."""

    def __init__(self, batch: int, height: int, width: int, config: CloudConfig,
                 generator: torch.Generator, device: torch.device):
        self.height, self.width, self.device = height, width, device
        self.layers: list[tuple[float, Tensor]] = []  # (cell size px, gradients (B, gy, gx, 2))
        amp_total = 0.0
        for o in range(config.octaves):
            cell_px = config.cell_px / 2**o
            if cell_px < 2:
                break
            gy, gx = math.ceil(height / cell_px) + 2, math.ceil(width / cell_px) + 2
            angle = torch.rand(batch, gy, gx, generator=generator) * (2 * math.pi)
            grads = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1).to(device)
            amp = config.persistence**o
            amp_total += amp * amp
            self.layers.append((cell_px, grads * amp))
        self.norm = 1.0 / math.sqrt(amp_total * 0.25)  # ~unit standard deviation

    def __call__(self, rows: Tensor, cols: Tensor, shift: Tensor | None = None) -> Tensor:
        """Noise at pixel centres ``rows`` (h,) x ``cols`` (w,) -> (B, h, w); ``shift`` (B, 2)
        moves the sampling point per image (rows, cols), in pixels."""
        out = None
        r = rows.to(self.device, torch.float32)[None, :, None] + 0.5
        c = cols.to(self.device, torch.float32)[None, None, :] + 0.5
        if shift is not None:
            r = r - shift[:, 0, None, None]
            c = c - shift[:, 1, None, None]
        h, w = rows.numel(), cols.numel()
        for cell_px, grads in self.layers:
            b, gy, gx, _ = grads.shape
            y = (r / cell_px + 1.0).expand(b, h, w)  # +1: a margin cell for shifted samples
            x = (c / cell_px + 1.0).expand(b, h, w)
            y0 = y.floor().clamp(0, gy - 2)
            x0 = x.floor().clamp(0, gx - 2)
            fy, fx = (y - y0).clamp(0, 1), (x - x0).clamp(0, 1)
            iy, ix = y0.long(), x0.long()
            bi = torch.arange(b, device=self.device)[:, None, None]
            # dot products of the four corner gradients with the offsets to the sample point
            d00, d01, d10, d11 = (_corner(grads, bi, iy, ix, fy, fx, dy, dx)
                                  for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)))
            u, v = _fade(fy), _fade(fx)
            top = d00 + v * (d01 - d00)
            bottom = d10 + v * (d11 - d10)
            layer = top + u * (bottom - top)
            out = layer if out is None else out + layer
        return out * self.norm


def _uniform(generator: torch.Generator, batch: int, bounds: tuple[float, float]) -> Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64).float()


class CloudField:
    """Clouds, haze and shadows for a batch of ``height x width`` images, evaluable on any
    window: :meth:`apply` corrupts a clear block at a given offset."""

    def __init__(self, batch: int, height: int, width: int, config: CloudConfig | None = None,
                 *, seed: int | torch.Generator = 0, device: str | torch.device = "cpu"):
        config = config or CloudConfig()
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        self.device = torch.device(device)
        self.height, self.width, self.batch = height, width, batch
        self.coverage = _uniform(gen, batch, config.coverage).to(self.device)
        self.haze_level = _uniform(gen, batch, config.haze).to(self.device)
        self.brightness = _uniform(gen, batch, config.brightness).to(self.device)
        self.shadow_strength = _uniform(gen, batch, config.shadow).to(self.device)
        offset = _uniform(gen, batch, config.shadow_offset)
        angle = torch.rand(batch, generator=gen) * (2 * math.pi)
        self.shadow_shift = torch.stack([offset * torch.sin(angle), offset * torch.cos(angle)], 1).to(self.device)
        self.softness = config.softness
        self.haze_power = config.haze_power
        self._cloud = _Perlin(batch, height, width, config, gen, self.device)
        haze_config = CloudConfig(octaves=3, cell_px=1.6 * config.cell_px, persistence=0.5)
        self._haze = _Perlin(batch, height, width, haze_config, gen, self.device)
        self.threshold = self._thresholds()
        # drawn last and only when asked for, so clouds with ``shadow_diffuse`` (0, 0) (grey shadows,
        # as the bundled models were trained) and whatever the caller draws next are as before
        self.shadow_diffuse = (_uniform(gen, batch, config.shadow_diffuse) if config.shadow_diffuse[1] > 0
                               else torch.zeros(batch)).to(self.device)

    def _thresholds(self) -> Tensor:
        """Per-image noise level above which the sampled fraction of the scene is cloud
        (thick opacity >= 0.5), estimated on a grid of at most 256 x 256 points."""
        rows = torch.linspace(0, self.height - 1, min(self.height, 256)).round()
        cols = torch.linspace(0, self.width - 1, min(self.width, 256)).round()
        noise = self._cloud(rows, cols).flatten(1)
        q = (1.0 - self.coverage).clamp(0.0, 1.0)
        sorted_noise = noise.sort(dim=1).values
        idx = (q * (sorted_noise.shape[1] - 1)).round().long()
        return sorted_noise.gather(1, idx[:, None])[:, 0]

    @property
    def sun_azimuth_deg(self) -> list[float]:
        """Per image, the sun that casts these shadows: degrees clockwise from the grid's up,
        opposite the shadow's displacement from its cloud (:mod:`sarclear.sun`)."""
        rows, cols = self.shadow_shift[:, 0].tolist(), self.shadow_shift[:, 1].tolist()
        return [math.degrees(math.atan2(-c, r)) % 360 for r, c in zip(rows, cols)]

    def opacities(self, row_off: int, col_off: int, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
        """(thick, haze, shadow), each (B, 1, h, w) in [0, 1], for a window of the image."""
        rows = torch.arange(row_off, row_off + height)
        cols = torch.arange(col_off, col_off + width)
        b = lambda t: t[:, None, None]  # noqa: E731 - per-image scalar -> broadcastable

        def thick_at(shift: Tensor | None) -> Tensor:
            n = self._cloud(rows, cols, shift)
            t = ((n - b(self.threshold)) / self.softness + 0.5).clamp(0, 1)  # 0.5 at the threshold
            t = torch.where(b(self.coverage) > 0, t, torch.zeros_like(t))
            return t * t * (3 - 2 * t)  # smoothstep edges

        thick = thick_at(None)
        haze = ((self._haze(rows, cols) * 0.5 + 0.5).clamp(0, 1) * b(self.haze_level))
        shadow = thick_at(self.shadow_shift) * (1 - thick)  # no shadow under the cloud itself
        return thick[:, None], haze[:, None], shadow[:, None]

    def apply(self, clear: Tensor, bands: Sequence[str], row_off: int = 0, col_off: int = 0,
              scene_p98: Tensor | None = None) -> CloudResult:
        """Corrupt ``clear`` (B, C, h, w) reflectance, the block at (``row_off``, ``col_off``)
        of the image. ``scene_p98`` (B, C): the scene's 98th percentile per band (computed
        from ``clear`` if not given) so cloud brightness adapts to the scene."""
        clear = clear.to(self.device, torch.float32)
        _, _, h, w = clear.shape
        thick, haze, shadow = self.opacities(row_off, col_off, h, w)
        k = scattering_shape(bands, self.haze_power, self.device)[None, :, None, None]
        alpha = 1 - (1 - thick) * (1 - haze) ** k  # (B, C, h, w)
        if scene_p98 is None:
            scene_p98 = torch.quantile(clear.flatten(2).nan_to_num(0.0), 0.98, dim=2)
        shape = torch.tensor([_CLOUD_SHAPE.get(name, 1.0) for name in bands], device=self.device)
        level = torch.maximum(self.brightness[:, None] * shape[None], scene_p98.to(self.device))
        cloud = level[:, :, None, None] * (0.9 + 0.1 * thick)  # thicker cores are a bit brighter
        kept = (self.shadow_diffuse[:, None] * scattering_shape(bands, 2, self.device)[None]).clamp(0, 1)  # (B, C)
        darkening = self.shadow_strength[:, None, None, None] * (1 - kept[:, :, None, None])
        shadowed = clear * (1 - darkening * shadow)
        cloudy = shadowed * (1 - alpha) + cloud * alpha
        opacity = 1 - (1 - thick) * (1 - haze)
        return CloudResult(cloudy, opacity, thick, shadow * self.shadow_strength[:, None, None, None])


def add_clouds(clear: Tensor, bands: Sequence[str], config: CloudConfig | None = None, *,
               seed: int | torch.Generator = 0) -> CloudResult:
    """Corrupt a batch of clear images (B, C, H, W reflectance in [0, 1]) with clouds, haze
    and shadows; reproducible for a given seed, on ``clear``'s device."""
    b, _, h, w = clear.shape
    field = CloudField(b, h, w, config, seed=seed, device=clear.device)
    return field.apply(clear, bands)
