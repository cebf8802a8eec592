"""Reconstruction quality on reflectance: RMSE and spectral angle (SAM), as in the paper, plus
MAE, PSNR and SSIM for comparison with the published SEN12MS-CR tables.

Inputs are reflectance tensors ``(C, H, W)`` (or batches ``(B, C, H, W)``) and an optional
boolean validity mask ``(H, W)`` / ``(B, H, W)``; only valid pixels count. Maps are per
pixel; scalar metrics are means over valid pixels. :class:`MetricAccumulator` collects the
same numbers block by block, so a raster of any size is scored without loading it.

Definitions (``x`` prediction, ``y`` reference, ``C`` bands):

* RMSE = sqrt(mean over pixels and bands of (x - y)^2); per band, the mean runs over pixels;
  the RMSE *map* is sqrt(mean over bands of (x - y)^2) per pixel.
* SAM = angle between the spectra x and y at a pixel, in degrees:
  atan2(|x| |y| sin, x . y), computed stably in float64; 0 for identical spectra, 90 for
  orthogonal ones.
* PSNR = 10 log10(1 / MSE) (reflectance range 1); MAE = mean |x - y|.
* SSIM: Gaussian window 11 x 11, sigma 1.5, C1 = (0.01)^2, C2 = (0.03)^2 for data range 1,
  averaged over bands and valid pixels.
* Correlation: Pearson's r between x and y per band over the valid pixels of one image
  (structure kept, whatever the gain and offset); NaN for a band constant in x or y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


def _batch(x: Tensor) -> Tensor:
    return x[None] if x.dim() == 3 else x


def _mask(valid: Tensor | None, x: Tensor) -> Tensor:
    """(B, H, W) boolean mask: given validity and finite values in both inputs."""
    ok = torch.isfinite(x).all(dim=1)
    if valid is not None:
        ok &= _batch(valid[None] if valid.dim() == 2 else valid).reshape(ok.shape).bool()
    return ok


def rmse_map(pred: Tensor, ref: Tensor) -> Tensor:
    """Per-pixel RMSE over bands: (C, H, W) -> (H, W) (or batched)."""
    return ((pred.double() - ref.double()) ** 2).mean(dim=-3).sqrt().to(pred.dtype)


def sam_map(pred: Tensor, ref: Tensor) -> Tensor:
    """Per-pixel spectral angle in degrees: (C, H, W) -> (H, W) (or batched)."""
    x, y = pred.double(), ref.double()
    dot = (x * y).sum(dim=-3)
    nx, ny = x.norm(dim=-3), y.norm(dim=-3)
    cross = (nx * nx * ny * ny - dot * dot).clamp(min=0).sqrt()
    angle = torch.rad2deg(torch.atan2(cross, dot))
    return angle.to(pred.dtype)


def _gaussian_1d(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32, device=device) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(pred: Tensor, ref: Tensor) -> Tensor:
    """Per-pixel SSIM averaged over bands, (B, C, H, W) -> (B, H, W); borders use
    reflection padding so the map has the input's size. The 11 x 11 Gaussian window is
    applied as two 1-D passes, in float32."""
    x, y = _batch(pred).float(), _batch(ref).float()
    b, c, h, w = x.shape
    g = _gaussian_1d(device=x.device)
    pad = g.numel() // 2
    mode = "reflect" if min(h, w) > pad else "replicate"

    def blur(t: Tensor) -> Tensor:
        t = F.pad(t.reshape(b * c, 1, h, w), (pad, pad, pad, pad), mode=mode)
        t = F.conv2d(F.conv2d(t, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
        return t.reshape(b, c, h, w)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=1).to(pred.dtype)


def correlation(pred: Tensor, ref: Tensor, valid: Tensor | None = None) -> Tensor:
    """Pearson correlation per band of one image, (C, H, W) -> (C,), float64, over the
    pixels valid in ``valid`` (H, W) and finite in both; NaN where a band has no variance
    (or fewer than two pixels)."""
    x, y = pred.double(), ref.double()
    ok = _mask(valid, x[None])[0] & _mask(None, y[None])[0]
    xs, ys = x[:, ok], y[:, ok]  # (C, N)
    if xs.shape[1] < 2:
        return torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    xs = xs - xs.mean(dim=1, keepdim=True)
    ys = ys - ys.mean(dim=1, keepdim=True)
    den = (xs * xs).sum(dim=1).sqrt() * (ys * ys).sum(dim=1).sqrt()
    r = (xs * ys).sum(dim=1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan")))


@dataclass
class MetricAccumulator:
    """Sums of the metrics over blocks; :meth:`result` gives the means."""

    bands: tuple[str, ...]
    _sq: Tensor | None = None
    _abs: Tensor | None = None
    _sam: float = 0.0
    _ssim: float = 0.0
    _n: int = 0
    _n_ssim: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def update(self, pred: Tensor, ref: Tensor, valid: Tensor | None = None,
               ssim: Tensor | None = None) -> None:
        """Add a block: pred, ref (C, H, W) or (B, C, H, W) reflectance; ``ssim``: a
        precomputed SSIM map of the block (else computed here, borders mirrored)."""
        x, y = _batch(pred).double(), _batch(ref).double()
        ok = _mask(valid, x) & _mask(None, y)
        n = int(ok.sum())
        if n == 0:
            return
        m = ok[:, None].expand_as(x)
        err = torch.where(m, x - y, torch.zeros_like(x))
        sq = (err * err).sum(dim=(0, 2, 3))
        ab = err.abs().sum(dim=(0, 2, 3))
        self._sq = sq if self._sq is None else self._sq + sq
        self._abs = ab if self._abs is None else self._abs + ab
        xs, ys = torch.where(m, x, 0), torch.where(m, y, 0)
        self._sam += float(sam_map(xs, ys)[ok].sum())
        s = ssim_map(xs, ys) if ssim is None else _batch(ssim[None] if ssim.dim() == 2 else ssim).double()
        self._ssim += float(s.reshape(ok.shape)[ok].sum())
        self._n += n
        self._n_ssim += n

    @property
    def pixels(self) -> int:
        return self._n

    def result(self) -> dict[str, object]:
        """Means over all valid pixels: rmse, rmse_per_band, mae, psnr, sam_deg, ssim."""
        if self._n == 0:
            nan = float("nan")
            return {"pixels": 0, "rmse": nan, "mae": nan, "psnr": nan, "sam_deg": nan, "ssim": nan,
                    "rmse_per_band": {b: nan for b in self.bands}}
        mse_band = self._sq / self._n
        mse = float(mse_band.mean())
        return {
            "pixels": self._n,
            "rmse": math.sqrt(mse),
            "rmse_per_band": {b: math.sqrt(float(v)) for b, v in zip(self.bands, mse_band)},
            "mae": float(self._abs.sum()) / (self._n * len(self.bands)),
            "psnr": 10 * math.log10(1.0 / mse) if mse > 0 else float("inf"),
            "sam_deg": self._sam / self._n,
            "ssim": self._ssim / self._n_ssim,
        }


def compare(pred: Tensor, ref: Tensor, bands: tuple[str, ...], valid: Tensor | None = None) -> dict[str, object]:
    """All metrics of ``pred`` against ``ref`` in one call."""
    acc = MetricAccumulator(tuple(bands))
    acc.update(pred, ref, valid)
    return acc.result()
