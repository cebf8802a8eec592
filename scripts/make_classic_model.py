"""Write resources/models/sarclear-fill-classic.safetensors: normalized-convolution fill of the
masked pixels from the clear ones around them, packaged as a mask-aware ("gapfill") model file
so that decloud, the plugin and the benchmarks run it like any model. (decloud's prior is
normalized convolution from the clear pixels beyond a 2-px buffer along the mask, fading to the
scene's clear mean far from any clear pixel: see sarclear.fill and the model card.)

Every weight of the ``fill-ms`` network is zero and the gate's bias is 40 (sigmoid = 1), so the
output is exactly the prior that decloud computes (:func:`sarclear.fill.normalized_convolution`)
and nothing is learned. Its uncertainty is one constant: the log-variance bias is set to the
normalized-convolution fill's RMSE under thick synthetic cloud on the held-out quality benchmark
(docs/QUALITY.md, about 0.05 reflectance). Run from the repository root:

    python scripts/make_classic_model.py
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from sarclear.checkpoint import save_model
from sarclear.networks import build, preset

ROOT = Path(__file__).resolve().parent.parent
SIGMA = 0.05  # reflectance


def main() -> None:
    config = dataclasses.replace(preset("fill-ms"), preset="fill-classic")
    generator, _ = build(config)
    with torch.no_grad():
        for p in generator.parameters():
            p.zero_()
        generator.gate.bias.fill_(40.0)
        generator.log_var.bias.fill_(2 * math.log(SIGMA))
    out = save_model(ROOT / "resources" / "models" / "sarclear-fill-classic.safetensors", generator, config,
                     info={"description": "normalized-convolution fill of the masked pixels (no learned part)",
                           "made_by": "scripts/make_classic_model.py", "sigma": SIGMA,
                           "fixed": True})  # nothing to fit to a scene (sarclear.adapt.fit_problem)
    print(out)


if __name__ == "__main__":
    main()
