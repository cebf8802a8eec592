"""Train the bundled demo model and its MS-only twin on the real samples, score both on the
held-out test pairs with synthetic clouds, and write the model card's numbers.

    python scripts/train_demo_model.py [--runs runs/demo] [--resume]

Trains `lite` SAR-Opt-cGAN and `lite-ms` Opt-cGAN with resources/models/demo_train.yaml,
writes both runs' curves in one figure (the paper's Fig. 5), evaluates every test pair under
10 cloud realisations (fixed seeds) for the SAR model, the MS-only twin and the cloudy input
itself, over all pixels and over the pixels under thick cloud, and copies the SAR model to
resources/models/sarclear-lite-demo.safetensors.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch

from sarclear import checkpoint, data
from sarclear.clouds import CloudConfig, CloudField
from sarclear.figures import training_curves_figure
from sarclear.metrics import MetricAccumulator
from sarclear.resources import DEMO_MODEL
from sarclear.scaling import network_to_reflectance, reflectance_to_network
from sarclear.train_eval import pad_to as _pad_to
from sarclear.train_state import item_seed
from sarclear.training import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "resources" / "models" / "demo_train.yaml"
REALISATIONS = 10


@torch.no_grad()
def score(models: dict[str, checkpoint.Model], pairs: list[data.Pair]) -> dict[str, dict[str, dict]]:
    """Metrics per model (and the cloudy input) over all valid pixels and thick-cloud pixels."""
    bands = next(iter(models.values())).config.bands
    acc = {name: {"all": MetricAccumulator(bands), "thick_cloud": MetricAccumulator(bands)}
           for name in [*models, "cloudy input"]}
    for i, pair in enumerate(pairs):
        loaded = data.load_pair(pair, bands, ("VV", "VH"))
        clear, sar, valid = loaded.clear[None], torch.nan_to_num(loaded.sar[None]), loaded.valid
        h, w = clear.shape[-2:]
        for r in range(REALISATIONS):
            field = CloudField(1, h, w, CloudConfig(shadow_diffuse=(0.0, 0.0)),  # grey shadows, as trained
                               seed=item_seed(2024, i, r))
            result = field.apply(torch.nan_to_num(clear), bands)
            thick = valid & result.mask[0, 0]
            preds = {"cloudy input": result.cloudy[0]}
            for name, m in models.items():
                x_ms = _pad_to(reflectance_to_network(result.cloudy), m.config.size_multiple)
                x_sar = _pad_to(m.config.sar_scaling().to_network(sar), m.config.size_multiple) \
                    if m.config.uses_sar else x_ms[:, :0]
                preds[name] = network_to_reflectance(m.generator(x_ms, x_sar))[0, :, :h, :w]
            for name, p in preds.items():
                acc[name]["all"].update(p, clear[0], valid)
                acc[name]["thick_cloud"].update(p, clear[0], thick)
    return {name: {k: a.result() for k, a in d.items()} for name, d in acc.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = Path(args.runs)
    summaries = {}
    for name, ms_only in (("SAR-Opt-cGAN", False), ("Opt-cGAN", True)):
        cfg = TrainConfig.from_file(CONFIG, data=str(ROOT / "resources/samples/train_manifest.csv"),
                                    out=str(runs / ("lite-ms" if ms_only else "lite")), ms_only=ms_only)
        summaries[name] = train(cfg, resume=args.resume)
    histories = {name: s["history"] for name, s in summaries.items()}
    training_curves_figure(runs / "curves_both.png", histories,
                           title="lite twins on the real samples: RMSE and SAM per epoch (train vs test)")
    models = {name: checkpoint.load_model(s["model"]) for name, s in summaries.items()}
    _, test = data.split_pairs(data.find_pairs(ROOT / "resources/samples/train_manifest.csv"), 0.0)
    scores = score(models, test)
    (runs / "test_scores.json").write_text(json.dumps(scores, indent=1))
    print(f"\nheld-out test pairs: {len(test)}, {REALISATIONS} cloud realisations each")
    print(f"{'':<14} {'pixels':<12} {'RMSE':>7} {'SAM deg':>8} {'MAE':>7} {'PSNR':>6} {'SSIM':>6}")
    for name, d in scores.items():
        for part, m in d.items():
            print(f"{name:<14} {part:<12} {m['rmse']:>7.4f} {m['sam_deg']:>8.2f} {m['mae']:>7.4f} "
                  f"{m['psnr']:>6.2f} {m['ssim']:>6.3f}")
    shutil.copyfile(summaries["SAR-Opt-cGAN"]["model"], ROOT / "resources" / "models" / DEMO_MODEL)
    shutil.copyfile(runs / "curves_both.png", ROOT / "docs" / "demo_model_curves.png")
    print(f"\nmodel: resources/models/{DEMO_MODEL}\ncurves: docs/demo_model_curves.png")
    print(f"scores: {runs}/test_scores.json")


if __name__ == "__main__":
    main()
