"""One pix2pix update of the SAR-Opt-cGAN (paper eqs. 1-3): the discriminator step, then the
generator step, on one batch already on the device and in network range."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .devices import autocast


@dataclass
class GanLosses:
    """The step's losses, still on the device (reading them waits for it)."""

    loss_g: Tensor
    loss_d: Tensor
    l1: Tensor


def discriminator_step(D_train: nn.Module, opt_d: torch.optim.Optimizer, cond: Tensor, y: Tensor, fake: Tensor,
                       *, device: torch.device, precision: str) -> Tensor:
    """Real pairs -> 1, generated -> 0, halved as in pix2pix: L_D = 1/2 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]."""
    bce = nn.functional.binary_cross_entropy_with_logits
    opt_d.zero_grad(set_to_none=True)
    with autocast(device, precision):
        logits_real = D_train(cond, y)
        logits_fake = D_train(cond, fake.detach())
        loss_d = 0.5 * (bce(logits_real.float(), torch.ones_like(logits_real, dtype=torch.float32))
                        + bce(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32)))
    loss_d.backward()
    opt_d.step()
    return loss_d


def generator_step(D: nn.Module, opt_g: torch.optim.Optimizer, cond: Tensor, y: Tensor, fake: Tensor, valid: Tensor,
                   *, l1_weight: float, device: torch.device, precision: str) -> tuple[Tensor, Tensor]:
    """Fool D and stay close to the truth in L1 (valid pixels only): L_G = BCE(D(x, G(x)), 1) +
    lambda |G(x) - y|_1. ``D`` is the unwrapped discriminator: no gradient sync for a step D
    does not take. Returns (L_G, L1)."""
    bce = nn.functional.binary_cross_entropy_with_logits
    opt_g.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    with autocast(device, precision):
        logits = D(cond, fake)
        loss_gan = bce(logits.float(), torch.ones_like(logits, dtype=torch.float32))
    loss_l1 = ((fake.float() - y).abs() * valid).sum() / (valid.sum() * y.shape[1]).clamp(min=1)
    loss_g = loss_gan + l1_weight * loss_l1
    loss_g.backward()
    D.requires_grad_(True)
    opt_g.step()
    return loss_g, loss_l1


def gan_update(G_train: nn.Module, D_train: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, x_ms: Tensor, x_sar: Tensor, y: Tensor, valid: Tensor, *,
               l1_weight: float, device: torch.device, precision: str) -> GanLosses:
    """G(x), then one D step and one G step; x = (cloudy, SAR), y = the clear image."""
    cond = torch.cat([x_ms, x_sar], dim=1)
    with autocast(device, precision):
        fake = G_train(x_ms, x_sar)
    loss_d = discriminator_step(D_train, opt_d, cond, y, fake, device=device, precision=precision)
    loss_g, l1 = generator_step(D, opt_g, cond, y, fake, valid, l1_weight=l1_weight, device=device,
                                precision=precision)
    return GanLosses(loss_g, loss_d, l1)
