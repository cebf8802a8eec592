"""The training configuration: every option of a run, checked, stored in its checkpoints, and
how a resumed run takes its settings (the run's own, except those the user gives again)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bands import DEFAULT_BAND_SET, DEFAULT_SAR_CHANNELS, band_set
from .errors import InputError
from .networks import ModelConfig, preset

log = logging.getLogger(__name__)


#: the numeric training options and the values each may take (checked on every config)
_BOUNDS: dict[str, tuple[float, float]] = {
    "epochs": (1, 10**6), "batch_size": (1, 4096), "lr": (1e-12, 1.0), "beta1": (0.0, 0.999999),
    "beta2": (0.0, 0.999999), "l1_weight": (0.0, 1e6), "ema_decay": (0.0, 1.0), "crop": (1, 8192),
    "samples_per_epoch": (0, 10**9), "test_fraction": (0.0, 0.99), "checkpoint_every": (0, 10**9),
    "eval_every": (0, 10**9), "eval_max_pairs": (0, 10**6), "eval_max_size": (16, 10**5), "workers": (0, 256),
    "keep_checkpoints": (1, 10**6), "real_layer_fraction": (0.0, 1.0),
    "level_jitter": (0.0, 1.0)}
#: settings that fix the network's architecture: a resumed run cannot change them
_ARCHITECTURE = ("preset", "ms_only", "bands", "sar_channels")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in every checkpoint and model file."""

    data: str = ""                  # manifest .csv or SEN12MS-CR / SEN1-2-style folder
    out: str = "runs/sarclear"      # run folder: checkpoints, history, curves, model
    preset: str = "paper"           # paper, lite, fill (add ms_only for the MS-only twin)
    ms_only: bool = False           # the MS-only twin (Opt-cGAN): no SAR input
    bands: str = DEFAULT_BAND_SET
    sar_channels: tuple[str, ...] = DEFAULT_SAR_CHANNELS
    epochs: int = 5
    batch_size: int = 1             # per process; pix2pix used 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    l1_weight: float = 100.0
    ema_decay: float = 0.99
    crop: int = 256                 # training crop size (a multiple of the preset's size multiple)
    samples_per_epoch: int = 0      # 0: one crop per training pair
    test_fraction: float = 0.1      # pairs without a split column held out for testing
    augment: bool = True            # random flips and 90-degree rotations (same for SAR and MS)
    real_clouds: bool = True        # use a pair's real cloudy image where it has one
    clouds: dict[str, Any] = field(default_factory=dict)  # CloudConfig overrides
    checkpoint_every: int = 500     # steps; checkpoints are also written at every epoch end
    eval_every: int = 0             # steps between extra evaluations (0: epoch ends only)
    eval_max_pairs: int = 64        # pairs scored per split and evaluation
    eval_max_size: int = 1024       # larger pairs are scored on a centre crop
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"         # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on CUDA
    compile: bool = False           # torch.compile the generator and discriminator
    workers: int = 0                # DataLoader worker processes (when the data is not on the device)
    data_on_device: bool | None = None  # keep the cached pairs on the GPU and crop there (None: on CUDA)
    cache: bool | None = None       # keep pairs in memory (None: when <= 2000 pairs)
    keep_checkpoints: int = 2
    tensorboard: bool = False
    max_minutes: float = 0.0        # stop (checkpoint and export) after this much wall time; 0: no limit
    # gap-fill presets (fill, fill-ms) only
    init: str = ""                  # start from this gap-fill model's weights (e.g. the twin for the SAR model)
    sar_fraction: float = 0.5       # share of batch items drawn from scenes with SAR (SAR models)
    nll_weight: float = 0.2         # Gaussian NLL of the variance head
    gate_weight: float = 0.1        # BCE of the gate against the thick-cloud opacity
    real_layer_fraction: float = 0.0  # share of items under real cloud layers from the data's cloudy
                                      # train-split scenes (sarclear.cloud_layers) instead of synthetic
    level_jitter: float = 0.0       # random radiometric level per item (sarclear.fill_data.jitter_level):
                                    # 1 = gain exp(+-0.2), blue offset -0.03..+0.06; 0: off

    def __post_init__(self) -> None:
        self.sar_channels = tuple(self.sar_channels)
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                raise InputError(f"training option {name} is {value!r}; it must be a number from {low} to {high}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Load from YAML or JSON; ``overrides`` (not None) win."""
        return cls.from_dict({**read_options(path), **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**raw)

    def model_config(self) -> ModelConfig:
        base = preset(self.preset + ("-ms" if self.ms_only and not self.preset.endswith("-ms") else ""))
        cfg = dataclasses.replace(base, bands=band_set(self.bands),
                                  sar_channels=() if base.preset.endswith("-ms") else self.sar_channels)
        if self.crop % cfg.size_multiple:
            raise InputError(f"crop {self.crop} must be a multiple of {cfg.size_multiple} for the "
                             f"{cfg.preset} preset")
        return cfg


def read_options(path: str | os.PathLike) -> dict[str, Any]:
    """The options a YAML or JSON training-config file sets (safe loaders only)."""
    try:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read this training config ({exc})") from None
    except Exception as exc:  # yaml.YAMLError: not importable before yaml is
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a training config must be a mapping of option names to values")
    return raw


def resumed_config(stored: TrainConfig, config: TrainConfig, overrides: Collection[str]) -> TrainConfig:
    """The configuration a resumed run continues with: every setting from the run
    (``stored``) except the fields named in ``overrides``, taken from ``config``; the run
    folder is always ``config.out``. A change to the architecture is refused; the other
    changes are logged (a warning, so the user sees which settings were overridden)."""
    changed = {k: (getattr(stored, k), getattr(config, k)) for k in sorted(overrides)
               if k != "out" and getattr(stored, k) != getattr(config, k)}
    fixed = [k for k in changed if k in _ARCHITECTURE]
    if fixed:
        raise InputError(f"{config.out} was trained with {', '.join(f'{k} {changed[k][0]!r}' for k in fixed)}; a "
                         f"resumed run cannot change the network ({', '.join(f'{k} {changed[k][1]!r}' for k in fixed)}"
                         "). Drop those options to continue it, or train in a new folder")
    if changed:
        log.warning("resuming %s with these settings overridden: %s", config.out,
                    "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()))
    return dataclasses.replace(stored, out=config.out, **{k: new for k, (_, new) in changed.items()})
