"""SAR-Opt-cGAN networks: a pix2pix U-Net generator and a 70 x 70 PatchGAN discriminator,
and the model presets; the only place presets are defined.

Generator (paper preset, 256 x 256 tiles, 10 MS + 2 SAR bands in, 10 MS bands out)::

    level  encoder                          decoder (skip: concat with encoder level)
    1      C(64)       [B, 12, 256] -> 128   DC(10) T        [B, 2*64, 128] -> [B, 10, 256]
    2      LR C(128) B       128 -> 64       R DC(64) B            2*128, 64 -> 64, 128
    3      LR C(256) B        64 -> 32       R DC(128) B           2*256, 32 -> 128, 64
    4      LR C(512) B        32 -> 16       R DC(256) B           2*512, 16 -> 256, 32
    5      LR C(1024) B       16 -> 8        R DC(512) B D        2*1024, 8 -> 512, 16
    6      LR C(1024) B        8 -> 4        R DC(1024) B D       2*1024, 4 -> 1024, 8
    7      LR C(1024) B        4 -> 2        R DC(1024) B D       2*1024, 2 -> 1024, 4
    8      LR C(1024)          2 -> 1        R DC(1024) B D          1024, 1 -> 1024, 2

C = 4x4 convolution stride 2, DC = 4x4 transposed convolution stride 2, LR = LeakyReLU 0.2,
R = ReLU, B = batch norm, D = dropout (0.4, the three innermost decoder levels), T = tanh.
This is pix2pix ``unet_256`` with encoder levels 5 to 7 widened from 512 to 1024 filters,
so the bottleneck has the paper's 1024 features. With the discriminator the paper preset has
170.5 million weights, the paper's "close to 170 million".

The MS-only twin (Opt-cGAN) is the same network built with no SAR channels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

import torch
from torch import Tensor, nn

from .bands import DEFAULT_SAR_CHANNELS, S2_PAPER10
from .ground_prior import check_table
from .scaling import S1_DB_RANGE, SarScaling

#: Version of the model-file format; files from a newer version are refused.
FORMAT_VERSION: Final = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and to feed it: stored in every model file."""

    preset: str = "paper"
    kind: str = "unet"              # "unet": the paper's pix2pix generator; "gapfill": gapnet.GapFillGenerator
    bands: tuple[str, ...] = S2_PAPER10
    sar_channels: tuple[str, ...] = DEFAULT_SAR_CHANNELS
    encoder_filters: tuple[int, ...] = (64, 128, 256, 512, 1024, 1024, 1024, 1024)
    discriminator_filters: tuple[int, ...] = (64, 128, 256, 512)
    dropout: float = 0.4
    dropout_levels: int = 3
    tile_size: int = 256
    sar_db_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    blind: bool = False             # gapfill only: never look at hidden pixels (pure SAR-guided inpainting)
    fill_sigma: tuple[float, ...] = ()  # gapfill only: (gain, floor[, haze_gain]) -> uncertainty of the fill
                                        # from its spread and the scene's haze (sarclear.fill.fill_variance),
                                        # not the network's log_var
    keep_detail: float = 0.0        # gapfill only: add this share of the observed detail under thin cloud
                                    # (sarclear.thin_cloud.keep_detail); 0: off
    sar_guide: float = 0.0          # gapfill only: the prior is the SAR-guided fill, classes every this many dB
                                    # (sarclear.sar_guide); 0: normalized convolution of every clear pixel
    ground_prior: dict[str, tuple[float, ...]] = field(default_factory=dict)  # gapfill only: clear ground's
                                    # mean and spread by SAR class, the fill of a scene without a clear
                                    # pixel (sarclear.ground_prior); empty: the mean of all its pixels
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # tuples and only this model's SAR ranges, so configs compare and serialise cleanly
        for name in ("bands", "sar_channels", "encoder_filters", "discriminator_filters"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        ranges = {c: tuple(self.sar_db_range.get(c, S1_DB_RANGE.get(c, (0.0, 0.0)))) for c in self.sar_channels}
        object.__setattr__(self, "sar_db_range", ranges)
        object.__setattr__(self, "fill_sigma", tuple(float(v) for v in self.fill_sigma))
        prior = check_table(self.ground_prior, len(self.bands), len(self.sar_channels))
        object.__setattr__(self, "ground_prior", prior)
        if self.fill_sigma and (len(self.fill_sigma) not in (2, 3) or min(self.fill_sigma) < 0):
            raise ValueError(f"fill_sigma must be (gain, floor) or (gain, floor, haze_gain), all >= 0, "
                             f"not {self.fill_sigma}")
        if not 0.0 <= self.keep_detail <= 1.0:
            raise ValueError(f"keep_detail must be between 0 and 1, not {self.keep_detail}")
        if self.sar_guide and (self.sar_guide < 1.0 or not self.sar_channels):
            raise ValueError(f"sar_guide ({self.sar_guide} dB) must be 0 (off) or at least 1 dB, "
                             "and needs SAR channels")
        if self.kind not in KINDS:
            raise ValueError(f"unknown generator kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.tile_size % self.size_multiple:
            raise ValueError(f"tile_size {self.tile_size} must be a multiple of {self.size_multiple} "
                             f"(2 ** {len(self.encoder_filters)} encoder levels)")

    @property
    def in_channels(self) -> int:
        return len(self.bands) + len(self.sar_channels)

    @property
    def out_channels(self) -> int:
        return len(self.bands)

    @property
    def uses_sar(self) -> bool:
        return bool(self.sar_channels)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** len(self.encoder_filters)

    def sar_scaling(self) -> SarScaling:
        return SarScaling(self.sar_channels, dict(self.sar_db_range))

    @property
    def sar_ranges(self) -> list[tuple[float, float]]:
        """The (low, high) dB range of each SAR channel, in channel order."""
        return [self.sar_db_range[c] for c in self.sar_channels]

    def ms_only(self) -> ModelConfig:
        """The MS-only twin (Opt-cGAN): same network, no SAR input."""
        preset = self.preset if self.preset.endswith("-ms") else f"{self.preset}-ms"
        return dataclasses.replace(self, preset=preset, sar_channels=(), sar_db_range={})

    @property
    def has_discriminator(self) -> bool:
        """Whether this kind trains against a PatchGAN discriminator (the cGAN kinds)."""
        return self.kind == "unet"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sar_db_range"] = {k: list(v) for k, v in self.sar_db_range.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        d["sar_db_range"] = {k: tuple(v) for k, v in d.get("sar_db_range", {}).items()}
        return cls(**d)


#: Generator kinds: "unet" regenerates every pixel (the paper); "gapfill" corrects a classical
#: fill of the hidden pixels only (see gapnet.py).
KINDS: Final = ("unet", "gapfill")

#: Base presets, one row each; every one also gets its MS-only twin "<name>-ms".
_BASE_PRESETS: Final = {
    "paper": ModelConfig(preset="paper"),
    "lite": ModelConfig(preset="lite", encoder_filters=(32, 64, 128, 128, 128, 128, 128),
                        discriminator_filters=(32, 64, 128, 256), tile_size=256),
    # the default design: mask-aware gap filling, encoder widths at full, 1/2, 1/4 resolution
    # plus a dilated 1/8 context block; ~0.67 M weights, no discriminator
    "fill": ModelConfig(preset="fill", kind="gapfill", encoder_filters=(24, 48, 96), discriminator_filters=(),
                        dropout=0.0, dropout_levels=0, tile_size=256),
    # the same network, blind to the hidden pixels: it fills them from the clear pixels around
    # and from SAR only, so real clouds, whatever they look like, cannot leak into the result
    "inpaint": ModelConfig(preset="inpaint", kind="gapfill", encoder_filters=(24, 48, 96),
                           discriminator_filters=(), dropout=0.0, dropout_levels=0, tile_size=256, blind=True),
}

#: Model presets by name: each base preset and its MS-only twin ("<name>-ms").
PRESETS: Final = {**_BASE_PRESETS, **{f"{k}-ms": v.ms_only() for k, v in _BASE_PRESETS.items()}}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset ``name`` (``paper``, ``lite``, ``fill`` and their ``-ms`` twins), with overrides
    (e.g. ``bands=...``, ``sar_channels=...``)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return dataclasses.replace(base, **overrides) if overrides else base


# --------------------------------------------------------------------------- generator


class _Down(nn.Module):
    """Encoder level: [LeakyReLU] -> 4x4 conv stride 2 -> [batch norm]; halves H and W."""

    def __init__(self, cin: int, cout: int, *, act: bool, norm: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.LeakyReLU(0.2)] if act else []
        layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class _Up(nn.Module):
    """Decoder level: ReLU -> 4x4 transposed conv stride 2 -> batch norm [-> dropout];
    doubles H and W. The outermost level ends in tanh instead of batch norm."""

    def __init__(self, cin: int, cout: int, *, dropout: float, outermost: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=outermost)]
        if outermost:
            layers.append(nn.Tanh())
        else:
            layers.append(nn.BatchNorm2d(cout))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetGenerator(nn.Module):
    """U-Net with skip connections (see the layer table in the module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        f = config.encoder_filters
        n = len(f)
        self.config = config
        self.down = nn.ModuleList(
            _Down(config.in_channels if i == 0 else f[i - 1], f[i], act=i > 0, norm=0 < i < n - 1)
            for i in range(n))
        # up[i] produces the input of level i (f[i-1] channels); inner levels see concatenated skips
        self.up = nn.ModuleList(
            _Up(f[i] if i == n - 1 else 2 * f[i],
                config.out_channels if i == 0 else f[i - 1],
                dropout=config.dropout if i >= n - config.dropout_levels else 0.0,
                outermost=i == 0)
            for i in range(n))

    def forward(self, cloudy: Tensor, sar: Tensor | None = None) -> Tensor:
        """cloudy (B, n_ms, H, W) and sar (B, n_sar, H, W), network range -> (B, n_ms, H, W)."""
        x = cloudy if sar is None or sar.shape[1] == 0 else torch.cat([cloudy, sar], dim=1)
        skips = []
        for down in self.down:  # (B, C, H, W) -> (B, f[i], H / 2^(i+1), W / 2^(i+1))
            x = down(x)
            skips.append(x)
        x = self.up[-1](skips[-1])  # bottleneck (B, f[-1], H/2^n) -> (B, f[-2], H/2^(n-1))
        for i in range(len(self.up) - 2, -1, -1):
            x = self.up[i](torch.cat([x, skips[i]], dim=1))  # concat skip, then upsample
        return x  # (B, n_ms, H, W), tanh range


# --------------------------------------------------------------------------- discriminator


class PatchDiscriminator(nn.Module):
    """70 x 70 PatchGAN: classifies overlapping patches of (condition, MS image) as real or
    fake; returns logits, one per patch.

    [B, in+out, 256] -> C(64) LR -> 128 -> C(128) B LR -> 64 -> C(256) B LR -> 32
    -> C(512, stride 1) B LR -> 31 -> C(1, stride 1) -> [B, 1, 30, 30]
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        f = config.discriminator_filters
        cin = config.in_channels + config.out_channels
        layers: list[nn.Module] = [nn.Conv2d(cin, f[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, len(f)):
            stride = 2 if i < len(f) - 1 else 1
            layers += [nn.Conv2d(f[i - 1], f[i], 4, stride, 1, bias=False), nn.BatchNorm2d(f[i]),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(f[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, condition: Tensor, image: Tensor) -> Tensor:
        return self.net(torch.cat([condition, image], dim=1))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(config: ModelConfig, *, discriminator: bool = False) -> tuple[nn.Module, PatchDiscriminator | None]:
    """The generator (and optionally discriminator) for ``config``, freshly initialised: the
    U-Net as in pix2pix (weights N(0, 0.02), batch-norm scales N(1, 0.02)); the gap-fill
    generator with its own initialisation (untrained, it returns the classical fill)."""
    if config.kind == "gapfill":
        from .gapnet import GapFillGenerator

        if discriminator:
            raise ValueError(f"the {config.preset} preset ({config.kind}) trains without a discriminator")
        return GapFillGenerator(config), None
    g = UNetGenerator(config)
    d = PatchDiscriminator(config) if discriminator else None
    for net in (g, d):
        if net is not None:
            net.apply(_init_weights)
    return g, d


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
