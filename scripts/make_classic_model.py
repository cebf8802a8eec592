"""Write resources/models/sarclear-fill-classic.safetensors: normalized-convolution fill of the
masked pixels from the clear ones around them (with ``--guided``, sarclear-fill-guided.safetensors:
the same fill guided by SAR, :mod:`sarclear.sar_guide`, each hidden pixel filled from the clear
pixels that look like it in SAR; it reads VV and VH), packaged as a mask-aware ("gapfill") model file
so that decloud, the plugin and the benchmarks run it like any model. (decloud's prior is
normalized convolution from the clear pixels beyond its fill buffer along the mask, 90 m past
the cloud's edge (:func:`sarclear.defaults.fill_buffer_px`), fading to the scene's clear mean
far from any clear pixel: see sarclear.fill and the model card.)

Every weight of the ``fill-ms`` network is zero and the gate's bias is 40 (sigmoid = 1), so the
network's output is exactly the prior that decloud computes (:func:`sarclear.fill.classical_fill`)
and nothing is learned. Its config's ``keep_detail`` (1.0) then puts back the ground detail the
sensor saw through thin cloud (:mod:`sarclear.thin_cloud`). Its uncertainty comes from the fill's
spread (the standard deviation of the clear pixels it averaged) and from how hazy the scene's
clear pixels are (:func:`sarclear.fill.haze_excess`):
``sigma^2 = (gain * spread)^2 + floor^2 + (haze_gain * haze)^2``; the three numbers are fitted here, by maximum
likelihood, on the quality benchmark's synthetic clouds (true and detected masks) over the
*train* split's places (:func:`sarclear.fill_eval.fit_fill_sigma`), and stored in the model
config (``fill_sigma``). ``benchmarks/uncertainty.py`` checks them on the held-out places. The
config also carries the ground prior (``ground_prior``, :mod:`sarclear.ground_prior`): clear
ground's mean and spread over the train split's L2A scenes, per SAR class for the guided model,
the fill of a scene that a cloud hides whole. Run from the repository root:

    python scripts/make_classic_model.py --data ../shared/data
    python scripts/make_classic_model.py --data ../shared/data --guided
    python scripts/make_classic_model.py --data ../shared/data [--guided] --prior-only
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from sarclear.checkpoint import load_model, save_model
from sarclear.datasets import load_scenes
from sarclear.defaults import fill_buffer_px
from sarclear.fill import DARK_BLUE, dark_blue, fill_variance
from sarclear.fill_eval import coverage90, fit_fill_sigma
from sarclear.ground_prior import GroundPrior, build_ground_prior
from sarclear.networks import ModelConfig, build, preset
from sarclear.sar_guide import STEP_DB

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # the calibration is the uncertainty benchmark's own code
SEED = 0
CROP = 384
KEEP_DETAIL = 1.0  # share of the observed detail kept under thin cloud (sarclear.thin_cloud); chosen on
                   # the train split's synthetic clouds and real layers (model card: 1.0 against 0.7)


def typical_dark_blue(scenes) -> dict[str, float]:
    """Per product level, the median over ``scenes`` (clear) of their dark-object blue: what
    :data:`sarclear.fill.DARK_BLUE` holds."""
    values: dict[str, list[float]] = {}
    for scene in scenes:
        values.setdefault(scene.product_level, []).append(dark_blue(scene.ms[scene.bands.index("B2")]))
    return {level: round(float(np.median(v)), 4) for level, v in sorted(values.items())}


def calibrate(data: Path, config: ModelConfig) -> dict:
    """Fit (gain, floor, haze_gain) on the train split's places, with the quality benchmark's
    seeded synthetic clouds of every kind (thick, haze, thick + shadow and thin cloud) and both
    masks (true and detected). Thin cloud counts: under it the detected mask hides only the
    thicker part, so the fill draws from veiled pixels and is biased bright, which only the haze
    term can say; without it in the fit, haze_gain came out at 0.7 and the held-out thin cloud's
    90 % interval held 66 % of the errors."""
    from quality_io import EXTRA_KIND_CONFIGS, split_scenes
    from uncertainty import synthetic

    scenes = split_scenes(data, "train", CROP)
    dark = typical_dark_blue(scenes)  # over every train scene: what DARK_BLUE holds, whichever model
    if any(abs(dark[level] - DARK_BLUE[level]) > 0.0015 for level in dark):
        print(f"warning: the train split's typical dark blue is {dark}, sarclear.fill.DARK_BLUE says {DARK_BLUE}")
    pools = synthetic(scenes, SEED, config, extra=True)
    keys = [f"{kind}, {mask} mask" for kind in EXTRA_KIND_CONFIGS for mask in ("true", "detected")]  # thin cloud
    parts = [pools[key].arrays() for key in ("all kinds, true mask", "all kinds, detected mask", *keys)]
    err, spread, haze = (torch.cat(t) for t in zip(*parts))
    gain, floor, haze_gain = fit_fill_sigma(err, spread, haze)
    sigma = fill_variance(spread, (gain, floor, haze_gain), haze).sqrt()
    used = sum(1 for s in scenes if s.sar is not None or not config.sar_guide)  # a guided model: SAR scenes
    return {"gain": gain, "floor": floor, "haze_gain": haze_gain, "split": "train", "scenes": used,
            "band_pixels": int(err.numel()), "coverage90_train": round(coverage90(err, sigma), 4),
            "rmse_train": round(float(err.pow(2).mean().sqrt()), 5), "crop": CROP, "seed": SEED,
            "clouds": "benchmarks/quality_io.KIND_CONFIGS and thin cloud, true and detected masks",
            "fill_buffer": {"true": fill_buffer_px(False), "detected": fill_buffer_px(True)},
            "dark_blue_train": dark}


def ground_prior(data: Path, config: ModelConfig) -> tuple[GroundPrior, dict]:
    """The ground prior (:mod:`sarclear.ground_prior`) of the train split's clear L2A scenes: the
    fill of a scene that the mask hides whole. Per SAR class for a SAR-guided ``config``, from
    the scenes with SAR."""
    scenes = [s for s in load_scenes(data, config.bands) if s.split == "train" and s.product_level == "l2a"]
    step = config.sar_guide
    prior = build_ground_prior(scenes, config.bands, config.sar_ranges, step)
    sar = [s for s in scenes if s.sar is not None]
    return prior, {"split": "train", "level": "l2a", "scenes": len(scenes), "places": len({s.place for s in scenes}),
                   "sar_scenes": len(sar) if step else 0, "classes": len(prior.classes),
                   "sources": sorted({s.source for s in scenes})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the data folder (its train split calibrates the uncertainty)")
    parser.add_argument("--guided", action="store_true",
                        help="write sarclear-fill-guided (the SAR-guided fill; reads VV and VH) instead")
    parser.add_argument("--prior-only", action="store_true",
                        help="keep the model file as it is (its uncertainty fit included) and only compute "
                             "its ground prior again: a minute instead of ten")
    args = parser.parse_args()
    if args.guided:
        base = dataclasses.replace(preset("fill"), preset="fill-guided", keep_detail=KEEP_DETAIL, sar_guide=STEP_DB)
        name, what = "sarclear-fill-guided", "SAR-guided normalized-convolution fill"
    else:
        base = dataclasses.replace(preset("fill-ms"), preset="fill-classic", keep_detail=KEEP_DETAIL)
        name, what = "sarclear-fill-classic", "normalized-convolution fill"
    path = ROOT / "resources" / "models" / f"{name}.safetensors"
    if args.prior_only:
        loaded = load_model(path)
        prior, prior_info = ground_prior(args.data, loaded.config)
        config = dataclasses.replace(loaded.config, ground_prior=prior.to_table())
        info = {k: v for k, v in loaded.info.items() if k != "sarclear_version"}
        print(save_model(path, loaded.generator, config, info={**info, "ground_prior": prior_info}), prior_info)
        return
    fit = calibrate(args.data, base)
    prior, prior_info = ground_prior(args.data, base)
    config = dataclasses.replace(base, fill_sigma=(fit["gain"], fit["floor"], fit["haze_gain"]),
                                 ground_prior=prior.to_table())
    generator, _ = build(config)
    with torch.no_grad():
        for p in generator.parameters():
            p.zero_()
        generator.gate.bias.fill_(40.0)
    out = save_model(path, generator, config,
                     info={"description": f"{what} of the masked pixels (no learned part); "
                                          "uncertainty from the fill's spread",
                           "made_by": "scripts/make_classic_model.py", "sigma_calibration": fit,
                           "ground_prior": prior_info,
                           "fixed": True})  # nothing to fit to a scene (sarclear.adapt.fit_problem)
    print(out, fit)


if __name__ == "__main__":
    main()
