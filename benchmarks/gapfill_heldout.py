"""Held-out check of the gap-fill models: under-mask RMSE against normalized-convolution and
mean fill, the SAR model against its MS-only twin, haze structure (correlation), the
calibration of the predicted sigma (share of true values inside the 90 % interval, error
against sigma), and scene-adaptive fitting (same seeds, with and without).

    python benchmarks/gapfill_heldout.py --data ../shared/data/train \\
        --sar resources/models/sarclear-fill.safetensors --twin resources/models/sarclear-fill-ms.safetensors \\
        --adapt-steps 150 --figure docs/benchmarks/gapfill_uncertainty.png

Scenes: the ``test`` split of :func:`sarclear.datasets.load_scenes` (held out by place);
each scene gets fixed crops (128 px; 4 per scene larger than 256 px) and one seeded synthetic
cloud per kind (thick, haze, thick with shadow). The mask is what a detector would give
(threshold and dilation of the true opacity, see sarclear.fill_data); RMSE is over the
masked pixels, which are the only ones a gap-fill model changes. Results:
``<out>/gapfill_heldout.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch

from sarclear.adapt import AdaptOptions, adapt_model
from sarclear.checkpoint import load_model
from sarclear.fill import mean_fill
from sarclear.fill_eval import Z90, EvalItem, eval_items, predict, score
from sarclear.fill_training import load_training_scenes


def _items(scenes, bands, scaling, seed: int) -> list[EvalItem]:
    small = [s for s in scenes if max(s.ms.shape[1:]) <= 256]
    large = [s for s in scenes if max(s.ms.shape[1:]) > 256]
    return (eval_items(small, bands, scaling, crop=128, seed=seed)
            + eval_items(large, bands, scaling, crop=128, seed=seed + 1, per_scene=4))


def _haze_correlation(items: list[EvalItem], pred_fn) -> float:
    """Mean per-band Pearson correlation with the truth over the masked pixels of the haze items."""
    values = []
    for it in items:
        if it.kind != "haze":
            continue
        b = it.batch
        pred = pred_fn(it)
        m = b.hidden[0, 0] > 0
        if m.sum() < 50:
            continue
        for c in range(pred.shape[1]):
            x, y = pred[0, c][m].double(), b.truth[0, c][m].double()
            if x.std() > 0 and y.std() > 0:
                values.append(float(torch.corrcoef(torch.stack([x, y]))[0, 1]))
    return float(np.mean(values)) if values else float("nan")


def _thick_core_rmse(items: list[EvalItem], pred_fn) -> float:
    sq, n = 0.0, 0
    for it in items:
        m = (it.batch.thick >= 0.5) & (it.batch.hidden > 0)
        if not m.any():
            continue
        err = (pred_fn(it) - it.batch.truth)[m.expand_as(it.batch.truth)]
        sq += float((err.double() ** 2).sum())
        n += err.numel()
    return math.sqrt(sq / n) if n else float("nan")


def _sigma_figure(path: Path, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = 0.0
    for name, (err, sigma) in pairs.items():
        order = torch.argsort(sigma)
        bins = torch.tensor_split(order, 20)
        s = [float(sigma[i].mean()) for i in bins if len(i)]
        r = [float(err[i].pow(2).mean().sqrt()) for i in bins if len(i)]
        ax.plot(s, r, "o-", label=name)
        top = max(top, max(s), max(r))
    ax.plot([0, top], [0, top], "k--", lw=1, label="RMSE = sigma (calibrated)")
    ax.set_xlabel("predicted sigma (reflectance), 20 quantile bins")
    ax.set_ylabel("RMSE of the estimate in the bin")
    ax.set_title("Held-out synthetic clouds: error against predicted sigma")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _adapt_rows(model, name: str, items: list[EvalItem], steps: int, seed: int) -> list[dict[str, Any]]:
    """Per item: RMSE under the mask with and without adapting the model to the item's scene
    (its clear pixels only; the hidden truth is never shown)."""
    rows = []
    for it in items:
        b = it.batch
        clear = b.clear[0, 0].numpy() > 0
        sar = None
        if model.config.uses_sar:
            sar = model.config.sar_scaling().from_network(b.sar[0]).numpy()
        t = time.perf_counter()
        adapted = adapt_model(model, b.observed[0].numpy(), sar, clear,
                              AdaptOptions(steps=steps, seed=seed, crop=96, batch=4))
        seconds = time.perf_counter() - t
        s0, s1 = score(model.generator, [it]), score(adapted.generator, [it])
        rows.append({"model": name, "scene": it.scene, "kind": it.kind, "nc": s0.rmse["nc"]["all"],
                     "no_adapt": s0.rmse["model"]["all"], "adapt": s1.rmse["model"]["all"],
                     "seconds": round(seconds, 1)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "train"))
    p.add_argument("--sar", default="resources/models/sarclear-fill.safetensors")
    p.add_argument("--twin", default="resources/models/sarclear-fill-ms.safetensors")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--adapt-steps", type=int, default=0, help="0: skip the adaptation comparison")
    p.add_argument("--adapt-items", type=int, default=6, help="items (scene x kind) adapted per model")
    p.add_argument("--adapt-models", choices=("both", "sar", "twin"), default="both")
    p.add_argument("--skip-table", action="store_true", help="only the adaptation comparison")
    p.add_argument("--figure", default="docs/benchmarks/gapfill_uncertainty.png")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()
    torch.set_grad_enabled(True)
    models = {"fill (SAR)": load_model(args.sar), "fill-ms (twin)": load_model(args.twin)}
    sar_model = models["fill (SAR)"]
    scenes = [s for s in load_training_scenes(args.data, sar_model.config.bands, sar_model.config.sar_channels)
              if s.split == args.split]
    with_sar = [s for s in scenes if s.sar is not None]
    sets = {"all scenes": _items(scenes, sar_model.config.bands, None, args.seed),
            "scenes with SAR": _items(with_sar, sar_model.config.bands, sar_model.config.sar_scaling(), args.seed)}
    rows, sigmas, coverage = [], {}, {}
    for set_name, items in ({} if args.skip_table else sets).items():
        base = score(None, items)
        for method in ("cloudy", "mean", "nc"):
            rows.append({"set": set_name, "method": {"cloudy": "cloudy input", "mean": "mean fill",
                                                     "nc": "normalized convolution"}[method],
                         **{k: base.rmse[method][k] for k in ("all", "thick", "haze", "shadow")},
                         "thick_core": _thick_core_rmse(items, lambda it, m=method: _baseline(it, m)),
                         "haze_corr": _haze_correlation(items, lambda it, m=method: _baseline(it, m))})
        for name, model in models.items():
            if set_name == "all scenes" and model.config.uses_sar:
                continue  # a SAR model is only ever run with SAR
            feed = items
            if not model.config.uses_sar:  # the twin sees the same items without SAR
                feed = [EvalItem(it.scene, it.kind, _without_sar(it.batch)) for it in items]
            collected: list = []
            s = score(model.generator, feed, collected)
            rows.append({"set": set_name, "method": name, **{k: s.rmse["model"][k]
                                                              for k in ("all", "thick", "haze", "shadow")},
                         "thick_core": _thick_core_rmse(feed, lambda it, g=model.generator: predict(g, it.batch)[0]),
                         "haze_corr": _haze_correlation(feed, lambda it, g=model.generator: predict(g, it.batch)[0]),
                         "coverage90": s.coverage90})
            coverage[f"{name}, {set_name}"] = s.coverage90
            sigmas[f"{name}, {set_name}"] = (torch.cat([e for e, _ in collected]), torch.cat([g for _, g in collected]))
    if sigmas:
        _sigma_figure(Path(args.figure), sigmas)
    columns = [("set", "scenes"), ("method", "method"), ("all", "all kinds"), ("thick", "thick"), ("haze", "haze"),
               ("shadow", "thick + shadow"), ("thick_core", "thick core (opacity >= 0.5)"),
               ("haze_corr", "haze: band correlation"), ("coverage90", "90 % interval coverage")]
    tables = {} if args.skip_table else {
        "RMSE under the mask (reflectance), held-out places": common.markdown_table(rows, columns)}
    result: dict[str, Any] = {"rows": rows, "coverage90": coverage, "scenes": [s.name for s in scenes],
                              "items": {k: len(v) for k, v in sets.items()}, "figure": args.figure}
    notes = [f"{len(scenes)} {args.split} scenes ({len(with_sar)} with SAR); "
             f"{len(sets['all scenes'])} and {len(sets['scenes with SAR'])} items; interval = estimate "
             f"+- {Z90:.3f} sigma", f"figure: {args.figure}"]
    if args.adapt_steps:
        adapt_rows = []
        for name, model in models.items():
            if args.adapt_models != "both" and model.config.uses_sar != (args.adapt_models == "sar"):
                continue
            items = sets["scenes with SAR"] if model.config.uses_sar else sets["all scenes"]
            # the largest thick-cloud items with enough clear pixels to learn from (same for every run)
            picked = sorted((it for it in items if it.kind == "thick" and float(it.batch.clear.mean()) >= 0.25),
                            key=lambda it: (-it.batch.truth.shape[-1], it.scene))[:args.adapt_items]
            if not model.config.uses_sar:
                picked = [EvalItem(it.scene, it.kind, _without_sar(it.batch)) for it in picked]
            adapt_rows += _adapt_rows(model, name, picked, args.adapt_steps, args.seed)
        result["adapt"] = adapt_rows
        tables[f"Scene-adaptive fitting ({args.adapt_steps} steps), thick cloud, RMSE under the mask"] = \
            common.markdown_table(adapt_rows, [("model", "model"), ("scene", "scene"), ("nc", "normalized conv."),
                                               ("no_adapt", "without adapt"), ("adapt", "with adapt"),
                                               ("seconds", "adapt s")])
    result["tables"], result["notes"] = tables, notes
    common.publish("gapfill_heldout", result, Path(args.out), torch.device("cpu"))


def _baseline(it: EvalItem, method: str) -> torch.Tensor:
    b = it.batch
    return {"cloudy": b.observed, "nc": b.prior, "mean": mean_fill(b.observed, b.clear)}[method]


def _without_sar(b):
    import dataclasses

    return dataclasses.replace(b, sar=b.sar[:, :0])


if __name__ == "__main__":
    main()
