"""Write resources/models/sarclear-fill-scene.safetensors: the model made for scene-adaptive
fitting (``decloud --adapt``; in QGIS, "Fit the model to this scene first").

It is the mask-aware network in its *blind* form (preset ``inpaint``: the hidden pixels'
values are never read, so real clouds, however unlike synthetic ones, cannot steer it), with
SAR, untrained: its body starts from PyTorch's seeded random initialisation and its output
heads from zero, so before fitting it returns exactly decloud's classical prior (the fill of
``sarclear-fill-classic``). ``--adapt`` then fits it to the scene: it learns a correction of
that fill from the scene's own clear pixels, with synthetic holes drawn over them, and from the
scene's SAR (deep internal learning, Remote Sensing 2022, 14(6), 1342). Its uncertainty starts
as the classical fill's constant 0.05. Run from the repository root:

    python scripts/make_scene_model.py
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from sarclear.checkpoint import save_model
from sarclear.networks import build, preset

ROOT = Path(__file__).resolve().parent.parent
SIGMA = 0.05  # reflectance, as sarclear-fill-classic
SEED = 0


def main() -> None:
    torch.manual_seed(SEED)
    config = dataclasses.replace(preset("inpaint"), preset="fill-scene")
    generator, _ = build(config)
    with torch.no_grad():
        generator.log_var.weight.zero_()
        generator.log_var.bias.fill_(2 * math.log(SIGMA))
    out = save_model(ROOT / "resources" / "models" / "sarclear-fill-scene.safetensors", generator, config,
                     info={"description": "blind mask-aware network with SAR, untrained: the classical fill until "
                                          "fitted to a scene with --adapt",
                           "made_by": "scripts/make_scene_model.py", "seed": SEED, "sigma": SIGMA})
    print(out)


if __name__ == "__main__":
    main()
