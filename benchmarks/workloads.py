"""The measured work, model only: a generator inference batch and one cGAN training step,
in the configurations ("variants") the benchmarks compare, and their FLOP counts.

The training step is the trainer's iteration (:func:`sarclear.training.train`) without its
data pipeline: G forward; D on (condition, real) and (condition, G(x).detach()), its loss
halved, D's Adam step; D (frozen) on (condition, G(x)) for the adversarial loss, plus
100 x the masked L1, G's Adam step; the EMA update (the library's :class:`EMA`); and both
losses read back (``.item()``), as the trainer does every step. The data are one batch of
random tensors resident on the device, so nothing but the model is measured.

The *reference* variant runs it the reference pix2pix way: fp32, batch 1, eager, default
memory format and PyTorch's default Adam.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from sarclear.checkpoint import Model
from sarclear.devices import autocast
from sarclear.networks import ModelConfig, build, preset
from sarclear.training import EMA

#: The issue's nominal counts for the paper preset (256 x 256, 12 in / 10 out), GFLOP.
NOMINAL_GFLOP = {"paper": {"inference": 16.0, "training": 108.6}}


@dataclass(frozen=True)
class Variant:
    """How the network is run."""

    name: str
    batch: int = 1
    precision: str = "fp32"       # fp32 or bf16 (autocast)
    channels_last: bool = False
    compile: bool = False          # torch.compile G and D
    compile_mode: str = "default"  # torch.compile mode (reduce-overhead: CUDA graphs)
    fused_adam: bool = False
    engine: bool = False           # inference through the library's TileEngine (what decloud runs)

    def unavailable(self, device: torch.device) -> str | None:
        """Why this variant is skipped on ``device`` (None: it runs)."""
        if device.type != "cuda" and self.precision == "bf16":
            return "bf16 autocast: measured on CUDA only (the library runs fp32 on the CPU)"
        if device.type != "cuda" and self.compile:
            return "torch.compile: measured on CUDA only (on the CPU it needs a C++ toolchain and minutes)"
        if device.type != "cuda" and self.compile_mode != "default":
            return "CUDA graphs: CUDA only"
        return None

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def reference(batch: int = 1) -> Variant:
    return Variant("reference (fp32, batch 1, eager)" if batch == 1 else f"fp32 eager, batch {batch}", batch)


def inference_variants(device: torch.device, batch: int, compile_mode: str = "default") -> list[Variant]:
    """The reference way, then one optimisation at a time, then what decloud runs."""
    if device.type == "cuda":
        return [
            reference(),
            Variant(f"fp32, batch {batch}", batch),
            Variant(f"bf16, batch {batch}", batch, "bf16"),
            Variant(f"bf16 + channels_last, batch {batch}", batch, "bf16", True),
            Variant(f"bf16 + channels_last + compile, batch {batch}", batch, "bf16", True, True, compile_mode),
            Variant("library TileEngine (decloud: bf16, batch 32)", 32, "bf16", engine=True),
        ]
    return [
        reference(),
        Variant(f"fp32, batch {batch}", batch),
        Variant(f"fp32 + channels_last, batch {batch}", batch, channels_last=True),
        Variant("library TileEngine (decloud: fp32, batch 4)", 4, engine=True),
        Variant(f"bf16 + channels_last + compile, batch {batch}", batch, "bf16", True, True, compile_mode),
    ]


def training_variants(device: torch.device, batch: int, compile_mode: str = "default") -> list[Variant]:
    if device.type == "cuda":
        return [
            reference(),
            Variant(f"fp32, batch {batch}", batch),
            Variant(f"bf16, batch {batch}", batch, "bf16"),
            Variant(f"bf16 + channels_last, batch {batch}", batch, "bf16", True),
            Variant(f"bf16 + channels_last + fused Adam, batch {batch} (trainer default)", batch, "bf16", True,
                    fused_adam=True),
            Variant(f"bf16 + channels_last + fused Adam + compile, batch {batch} (trainer --compile)", batch,
                    "bf16", True, True, compile_mode, fused_adam=True),
        ]
    return [
        reference(),
        Variant(f"fp32, batch {batch}", batch),
        Variant(f"fp32 + channels_last + fused Adam, batch {batch}", batch, channels_last=True, fused_adam=True),
        Variant(f"bf16 + channels_last + fused Adam + compile, batch {batch}", batch, "bf16", True, True,
                compile_mode, fused_adam=True),
    ]


def _inputs(config: ModelConfig, batch: int, device: torch.device, channels_last: bool,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clear target, cloudy MS, SAR) in the network range, (B, C, tile, tile)."""
    g = torch.Generator().manual_seed(seed)
    t = config.tile_size
    y = torch.rand(batch, config.out_channels, t, t, generator=g) * 2 - 1
    x = torch.rand(batch, config.out_channels, t, t, generator=g) * 2 - 1
    s = torch.rand(batch, len(config.sar_channels), t, t, generator=g) * 2 - 1
    out = [v.to(device) for v in (y, x, s)]
    if channels_last:
        out = [v.contiguous(memory_format=torch.channels_last) for v in out]
    return out[0], out[1], out[2]


class InferenceStep:
    """One batch through the generator (eval mode, inference mode): callable."""

    def __init__(self, config: ModelConfig, variant: Variant, device: torch.device, generator: nn.Module | None = None):
        torch.manual_seed(0)
        self.device, self.variant = device, variant
        G = generator if generator is not None else build(config)[0]
        G = G.to(device).eval()
        if variant.channels_last:
            G = G.to(memory_format=torch.channels_last)
        _, self.x_ms, self.x_sar = _inputs(config, variant.batch, device, variant.channels_last)
        if variant.engine:
            from sarclear.inference import TileEngine

            self.engine = TileEngine(Model(G, config), device, variant.batch, variant.precision)
            self.fn = None
        else:
            self.engine = None
            self.fn = torch.compile(G, mode=variant.compile_mode) if variant.compile else G

    def __call__(self) -> torch.Tensor:
        if self.engine is not None:
            return self.engine(self.x_ms, self.x_sar)
        with torch.inference_mode(), autocast(self.device, self.variant.precision):
            return self.fn(self.x_ms, self.x_sar)


class TrainStep:
    """One training iteration of the cGAN (see the module docstring): callable, returns
    (loss_g, loss_d) as floats."""

    def __init__(self, config: ModelConfig, variant: Variant, device: torch.device, *, ema_decay: float = 0.99,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), l1_weight: float = 100.0):
        torch.manual_seed(0)
        self.device, self.variant, self.l1_weight = device, variant, l1_weight
        G, D = build(config, discriminator=True)
        G.to(device).train()
        D.to(device).train()
        if variant.channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        fused = {"fused": True} if variant.fused_adam else {}
        self.opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, **fused)
        self.ema = EMA(G, ema_decay) if ema_decay else None
        if self.ema is not None:
            self.ema.model.to(device)
        self.G, self.D = G, D
        self.G_train = torch.compile(G, mode=variant.compile_mode) if variant.compile else G
        self.D_train = torch.compile(D, mode=variant.compile_mode) if variant.compile else D
        self.y, self.x_ms, self.x_sar = _inputs(config, variant.batch, device, variant.channels_last)
        self.valid = torch.ones(variant.batch, 1, config.tile_size, config.tile_size, device=device)
        self.cond = torch.cat([self.x_ms, self.x_sar], dim=1)
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self) -> tuple[float, float]:
        precision, y, cond = self.variant.precision, self.y, self.cond
        with autocast(self.device, precision):
            fake = self.G_train(self.x_ms, self.x_sar)
        self.opt_d.zero_grad(set_to_none=True)
        with autocast(self.device, precision):
            logits_real = self.D_train(cond, y)
            logits_fake = self.D_train(cond, fake.detach())
            loss_d = 0.5 * (self.bce(logits_real.float(), torch.ones_like(logits_real, dtype=torch.float32))
                            + self.bce(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32)))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        with autocast(self.device, precision):
            logits = self.D(cond, fake)
            loss_gan = self.bce(logits.float(), torch.ones_like(logits, dtype=torch.float32))
        valid = self.valid
        loss_l1 = ((fake.float() - y).abs() * valid).sum() / (valid.sum() * y.shape[1]).clamp(min=1)
        loss_g = loss_gan + self.l1_weight * loss_l1
        loss_g.backward()
        self.D.requires_grad_(True)
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(self.G)
        return loss_g.item(), loss_d.item()


# --------------------------------------------------------------------------- FLOPs


def count_flops(config: ModelConfig, *, freeze_d_in_g_step: bool = True) -> dict[str, float]:
    """FLOPs (multiply-adds count 2) of one inference patch and one training sample, counted
    by :class:`torch.utils.flop_counter.FlopCounterMode` on the meta device (no compute).

    ``freeze_d_in_g_step``: as the trainer (and pix2pix) do, D's weight gradients are not
    computed in the generator's step; with False, they are (the issue's nominal count)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        G, D = build(config, discriminator=True)
    t = config.tile_size
    y = torch.zeros(1, config.out_channels, t, t, device="meta")
    x = torch.zeros(1, config.out_channels, t, t, device="meta")
    s = torch.zeros(1, len(config.sar_channels), t, t, device="meta")
    G.eval()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        G(x, s)
    inference = fc.get_total_flops()
    G.train()
    bce = nn.BCEWithLogitsLoss()
    with FlopCounterMode(display=False) as fc:
        fake = G(x, s)
        cond = torch.cat([x, s], dim=1)
        lr_, lf = D(cond, y), D(cond, fake.detach())
        (0.5 * (bce(lr_, torch.ones_like(lr_)) + bce(lf, torch.zeros_like(lf)))).backward()
        if freeze_d_in_g_step:
            D.requires_grad_(False)
        logits = D(cond, fake)
        (bce(logits, torch.ones_like(logits)) + 100 * (fake - y).abs().mean()).backward()
    return {"inference": float(inference), "training": float(fc.get_total_flops())}


def flops_report(preset_name: str) -> dict[str, Any]:
    """Counted GFLOP per patch / sample for a preset, beside the issue's nominal values."""
    cfg = preset(preset_name)
    counted = count_flops(cfg)
    unfrozen = count_flops(cfg, freeze_d_in_g_step=False)
    nominal = NOMINAL_GFLOP.get(preset_name, {})
    return {"preset": preset_name,
            "inference_gflop": counted["inference"] / 1e9,
            "training_gflop": counted["training"] / 1e9,
            "training_gflop_d_unfrozen": unfrozen["training"] / 1e9,
            "nominal_inference_gflop": nominal.get("inference"),
            "nominal_training_gflop": nominal.get("training")}


def with_batch(variant: Variant, batch: int) -> Variant:
    return replace(variant, batch=batch)


# --------------------------------------------------------------------------- identity model


class IdentityGenerator(nn.Module):
    """Returns its optical input: decloud with it runs the whole I/O path (read, warp, tile,
    blend, convert, write) with no network cost."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, cloudy: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        return cloudy + 0 * self.dummy


def bench_model(spec: str, identity: bool = False, seed: int = 0) -> Model:
    """A :class:`Model` for decloud: ``identity``; a preset name (``lite``, ``paper``),
    randomly initialised (same compute as trained weights); or a model file."""
    if identity:
        return Model(IdentityGenerator(), preset("lite"), path="identity")
    if spec in ("lite", "paper"):
        torch.manual_seed(seed)
        cfg = preset(spec)
        return Model(build(cfg)[0].eval(), cfg, path=f"{spec} (random weights)")
    from sarclear.checkpoint import load_model

    return load_model(spec)
