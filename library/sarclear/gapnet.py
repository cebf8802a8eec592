"""The gap-fill generator: changes only what the cloud mask hides, as a correction of a
classical fill, with a per-pixel variance.

For each hidden pixel it blends two estimates with a learned gate ``g`` in [0, 1]::

    dehazed  = observed * scale + offset         # smooth (1/4-resolution) per-band correction:
                                                 # thin cloud, haze, shadow keep their structure
    filled   = prior + residual                  # thick cloud: normalized-convolution fill plus a
                                                 # residual from SAR and context
    estimate = g * filled + (1 - g) * dehazed
    log_var  = per-band log variance (reflectance^2) of the estimate

The residual head, the scale/offset head and the gate are initialised so that an untrained
network returns the prior where ``g`` is about 1 (the gate starts closed towards the fill),
so training starts from normalized-convolution fill, not from noise. The caller keeps the
observed pixels where the mask says clear; this network is only asked about the others.

A *blind* config (preset ``inpaint``) never sees the hidden pixels' values: they are replaced
by the prior before the first layer, and the gate is fixed on ``filled``. It is pure SAR- and
context-guided inpainting, so real clouds, however unlike the synthetic ones, cannot steer it.

Layers (``encoder_filters`` = (f0, f1, f2), default (24, 48, 96))::

    input   observed, prior, observed - prior, clear, SAR      (3C + 1 + S channels)
    enc0    2 x conv3x3(f0)                        full resolution
    enc1    avgpool 2, 2 x conv3x3(f1)             1/2
    enc2    avgpool 2, 2 x conv3x3(f2)             1/4  -> scale/offset head (upsampled bilinear)
    ctx     avgpool 2, conv3x3 dilation 1, 2, 4 (f2) 1/8  context
    dec2    bilinear x2, concat enc2, conv3x3(f2)  1/4
    dec1    bilinear x2, concat enc1, conv3x3(f1)  1/2
    dec0    bilinear x2, concat enc0, conv3x3(f0)  full -> residual, log_var, gate heads (1x1)

No transposed convolutions (so no checkerboard) and no batch statistics (so a batch of one
tile and a training batch behave the same). Inputs of any size are padded internally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .networks import ModelConfig

#: log variance bounds (reflectance^2): sigma from 0.0009 to 0.37
LOG_VAR_RANGE = (-14.0, -2.0)
ESTIMATE_MAX = 1.2  # reflectance: above bright snow and cloud tops
_GATE_BIAS = 4.0  # sigmoid(4) = 0.98: start near the fill


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.SiLU())


def _scaled(x: Tensor) -> Tensor:
    """Reflectance to a network-friendly range (0 -> -1, 0.5 -> 1), bounded for bright clouds."""
    return (4.0 * x - 1.0).clamp(-3.0, 5.0)


class GapFillGenerator(nn.Module):
    """Mask-aware gap filling (see the module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, s = config.out_channels, len(config.sar_channels)
        f0, f1, f2 = config.encoder_filters
        self.enc0 = nn.Sequential(_block(3 * c + 1 + s, f0), _block(f0, f0))
        self.enc1 = nn.Sequential(_block(f0, f1), _block(f1, f1))
        self.enc2 = nn.Sequential(_block(f1, f2), _block(f2, f2))
        self.ctx = nn.Sequential(_block(f2, f2, 1), _block(f2, f2, 2), _block(f2, f2, 4))
        self.dec2 = _block(2 * f2, f2)
        self.dec1 = _block(f2 + f1, f1)
        self.dec0 = _block(f1 + f0, f0)
        self.affine = nn.Conv2d(f2, 2 * c, 1)   # (log scale, offset) per band, 1/4 resolution
        self.residual = nn.Conv2d(f0, c, 3, padding=1)
        self.log_var = nn.Conv2d(f0, c, 1)
        self.gate = nn.Conv2d(f0, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for head in (self.affine, self.residual):
            nn.init.zeros_(head.weight)
        nn.init.normal_(self.log_var.weight, 0.0, 1e-3)
        nn.init.constant_(self.log_var.bias, -6.0)  # sigma 0.05
        nn.init.normal_(self.gate.weight, 0.0, 1e-3)
        nn.init.constant_(self.gate.bias, _GATE_BIAS)

    def forward(self, observed: Tensor, clear: Tensor, prior: Tensor, sar: Tensor,
                return_gate: bool = False) -> tuple[Tensor, ...]:
        """observed, prior (N, C, H, W) reflectance; clear (N, 1, H, W) 1 = clear; sar
        (N, S, H, W) network range. Returns (estimate, log_var), both (N, C, H, W), and the
        gate (N, 1, H, W) too with ``return_gate``."""
        h, w = observed.shape[-2:]
        if self.config.blind:  # the hidden pixels' values are never seen: only the fill is
            observed = torch.where(clear > 0, observed, prior)
        m = 8
        ph, pw = (-h) % m, (-w) % m
        x = torch.cat([_scaled(observed), _scaled(prior), 4.0 * (observed - prior), clear.to(observed.dtype),
                       sar.to(observed.dtype)], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        e0 = self.enc0(x)
        e1 = self.enc1(F.avg_pool2d(e0, 2))
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        b = self.ctx(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([_up(b, e2), e2], 1))
        d1 = self.dec1(torch.cat([_up(d2, e1), e1], 1))
        d0 = self.dec0(torch.cat([_up(d1, e0), e0], 1))
        c = observed.shape[1]
        affine = _up(self.affine(d2), d0)[..., :h, :w]
        scale = torch.exp(affine[:, :c].clamp(-1.0, 1.5))
        dehazed = observed * scale + 0.25 * affine[:, c:]
        filled = prior + 0.25 * self.residual(d0)[..., :h, :w]
        gate = torch.sigmoid(self.gate(d0)[..., :h, :w])
        if self.config.blind:  # nothing observed to de-haze: always the fill and its residual
            gate = torch.ones_like(gate)
        estimate = gate * filled + (1 - gate) * dehazed
        if not self.training:  # bounded to physical reflectance at inference (training keeps the gradients)
            estimate = estimate.clamp(0.0, ESTIMATE_MAX)
        log_var = self.log_var(d0)[..., :h, :w].clamp(*LOG_VAR_RANGE)
        return (estimate, log_var, gate) if return_gate else (estimate, log_var)


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
