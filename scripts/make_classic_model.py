"""Write resources/models/sarclear-fill-classic.safetensors: normalized-convolution fill of the
masked pixels from the clear ones around them, packaged as a mask-aware ("gapfill") model file
so that decloud, the plugin and the benchmarks run it like any model. (decloud's prior is
normalized convolution from the clear pixels beyond a 2-px buffer along the mask, fading to the
scene's clear mean far from any clear pixel: see sarclear.fill and the model card.)

Every weight of the ``fill-ms`` network is zero and the gate's bias is 40 (sigmoid = 1), so the
network's output is exactly the prior that decloud computes (:func:`sarclear.fill.classical_fill`)
and nothing is learned. Its config's ``keep_detail`` (0.7) then puts back the ground detail the
sensor saw through thin cloud (:mod:`sarclear.thin_cloud`). Its uncertainty comes from the fill's
spread (the standard deviation of the clear pixels it averaged):
``sigma^2 = (gain * spread)^2 + floor^2``; the two numbers are fitted here, by maximum
likelihood, on the quality benchmark's synthetic clouds (true and detected masks) over the
*train* split's places (:func:`sarclear.fill_eval.fit_fill_sigma`), and stored in the model
config (``fill_sigma``). ``benchmarks/uncertainty.py`` checks them on the held-out places. Run from the repository root:

    python scripts/make_classic_model.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from sarclear.checkpoint import save_model
from sarclear.defaults import FILL_BUFFER_PX
from sarclear.fill import fill_variance
from sarclear.fill_eval import coverage90, fit_fill_sigma
from sarclear.networks import ModelConfig, build, preset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # the calibration is the uncertainty benchmark's own code
SEED = 0
CROP = 384
KEEP_DETAIL = 0.7  # share of the observed detail kept under thin cloud (sarclear.thin_cloud)


def calibrate(data: Path, config: ModelConfig) -> dict:
    """Fit (gain, floor) on the train split's places, with the quality benchmark's
    seeded synthetic clouds and both masks (true and detected)."""
    from quality_io import split_scenes
    from uncertainty import synthetic

    scenes = split_scenes(data, "train", CROP)
    pools = synthetic(scenes, SEED, config)
    parts = [pools[key].arrays() for key in ("all kinds, true mask", "all kinds, detected mask")]
    err, spread = (torch.cat(t) for t in zip(*parts))
    gain, floor = fit_fill_sigma(err, spread)
    sigma = fill_variance(spread, (gain, floor)).sqrt()
    return {"gain": gain, "floor": floor, "split": "train", "scenes": len(scenes),
            "band_pixels": int(err.numel()), "coverage90_train": round(coverage90(err, sigma), 4),
            "rmse_train": round(float(err.pow(2).mean().sqrt()), 5), "crop": CROP, "seed": SEED,
            "clouds": "benchmarks/quality_io.KIND_CONFIGS, true and detected masks", "fill_buffer": FILL_BUFFER_PX}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the data folder (its train split calibrates the uncertainty)")
    args = parser.parse_args()
    base = dataclasses.replace(preset("fill-ms"), preset="fill-classic", keep_detail=KEEP_DETAIL)
    fit = calibrate(args.data, base)
    config = dataclasses.replace(base, fill_sigma=(fit["gain"], fit["floor"]))
    generator, _ = build(config)
    with torch.no_grad():
        for p in generator.parameters():
            p.zero_()
        generator.gate.bias.fill_(40.0)
    out = save_model(ROOT / "resources" / "models" / "sarclear-fill-classic.safetensors", generator, config,
                     info={"description": "normalized-convolution fill of the masked pixels (no learned part); "
                                          "uncertainty from the fill's spread",
                           "made_by": "scripts/make_classic_model.py", "sigma_calibration": fit,
                           "fixed": True})  # nothing to fit to a scene (sarclear.adapt.fit_problem)
    print(out, fit)


if __name__ == "__main__":
    main()
