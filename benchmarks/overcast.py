"""What default decloud puts under a cloud that hides the **whole** scene: the ground prior
(:mod:`sarclear.ground_prior`) against the mean of the scene's own pixels (the behaviour without
a prior) and the cloudy input.

Every held-out (test split) clear scene, large ones centre-cropped to 384 px, goes under a
seeded synthetic cloud that covers all of it (``overcast``: the quality benchmark's thick kind
with coverage 1) and, as the control, under the quality benchmark's haze and thin cloud with a
mask that hides all of it too (``haze``, ``thin cloud``: there the ground still shows, the prior
must not be used, and the classical fills de-haze the input, :mod:`sarclear.dehaze`). Each
runs through :func:`sarclear.inference.decloud` with an all-cloud mask and the default model for
its inputs (the SAR-guided fill with SAR, the classical fill without), once as bundled and once
with its ground prior removed. Scored: RMSE over every valid pixel against the clear scene, and
the per-band correlation with it (averaged over bands and runs: whether the ground's pattern
survives).
For scale, ``own mean``: each band's mean of the clear scene itself, flat (what a fill from the
scene's own clear ground could at best give without detail; unknowable under an overcast). On
the S1+S2 places also the classical fill (no SAR), whose prior has no classes: what SAR adds.

    python benchmarks/overcast.py [--data ../shared/data] [--out docs/quality] [--seeds 2]

Writes ``overcast.json`` and ``.md`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch
from quality_io import (
    DEFAULT_DATA,
    EXTRA_KIND_CONFIGS,
    KIND_CONFIGS,
    THIN_CLOUD,
    read_output,
    split_scenes,
    write_mask,
    write_scene,
)

from sarclear.checkpoint import load_model, save_model
from sarclear.clouds import add_clouds
from sarclear.inference import DecloudOptions, decloud
from sarclear.resources import default_model

CROP = 384
CASES = {"overcast": dataclasses.replace(KIND_CONFIGS["thick"], coverage=(1.0, 1.0)), "haze": KIND_CONFIGS["haze"],
         THIN_CLOUD: EXTRA_KIND_CONFIGS[THIN_CLOUD]}
METHODS = ("cloudy input", "default decloud (ground prior)", "default without a ground prior",
           "without SAR (the prior's overall row)", "own mean")


def _without_prior(model: Path, work: Path) -> Path:
    loaded = load_model(model)
    config = dataclasses.replace(loaded.config, ground_prior={})
    return save_model(work / f"{model.stem}-no-prior.safetensors", loaded.generator, config, info=loaded.info)


def _corr(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pearson correlation per band over the pixels (C, N), averaged: does the pattern survive?"""
    values = []
    for p, t in zip(pred.astype(np.float64), truth.astype(np.float64)):
        ok = np.isfinite(p) & np.isfinite(t)
        if ok.sum() > 1 and p[ok].std() > 0 and t[ok].std() > 0:  # a flat band has no pattern to compare
            values.append(np.corrcoef(p[ok], t[ok])[0, 1])
    return float(np.mean(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=common.ROOT / "docs" / "quality")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    t0 = time.perf_counter()
    scenes = split_scenes(args.data, "test", CROP)
    sums: dict[tuple[str, str, str], list[float]] = {}
    used: dict[tuple[str, str], list[int]] = {}
    corrs: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {sar: default_model(with_sar=sar) for sar in (True, False)}
        plain = {sar: _without_prior(m, work) for sar, m in models.items()}
        for scene in scenes:
            sar = scene.sar is not None
            group = "S1+S2" if sar else "S2 only"
            ok = np.isfinite(scene.ms).all(axis=0)
            truth = np.nan_to_num(scene.ms)
            mask = write_mask(work / "mask.tif", np.ones(ok.shape, np.uint8), scene)
            for case, config in CASES.items():
                for seed in range(args.seeds):
                    cloudy = add_clouds(torch.from_numpy(truth)[None].float(), scene.bands, config, seed=seed)
                    obs = np.where(ok, cloudy.cloudy[0].numpy(), np.nan)
                    ms, sar_path = write_scene(work / "ms.tif", work / "sar.tif", scene, obs)
                    options = DecloudOptions(cloud_mask=str(mask), product_level=scene.product_level, overwrite=True)
                    outs = {"cloudy input": obs,
                            "own mean": np.broadcast_to(scene.ms[:, ok].mean(axis=1)[:, None, None], obs.shape)}
                    runs = [("default decloud (ground prior)", models[sar]),
                            ("default without a ground prior", plain[sar])]
                    if sar:  # what the SAR classes add: the classical fill, whose prior is the overall row
                        runs.append(("without SAR (the prior's overall row)", models[False]))
                    for name, model in runs:
                        result = decloud(ms, sar_path, model, work / "out.tif", maps=False, options=options)
                        outs[name] = read_output(work / "out.tif")
                        if model == models[sar]:
                            prior = any("ground prior" in n for n in result.notes)
                            used.setdefault((group, case), []).append(int(prior))
                    for name, pred in outs.items():
                        err = (pred - scene.ms)[:, ok].astype(np.float64)
                        acc = sums.setdefault((group, case, name), [0.0, 0.0])
                        acc[0] += float((err**2).sum())
                        acc[1] += err.size
                        if name != "own mean":  # flat: no correlation
                            corrs.setdefault((group, case, name), []).append(_corr(pred[:, ok], scene.ms[:, ok]))
    rmse = {"|".join(k): round(float(np.sqrt(v[0] / v[1])), 4) for k, v in sums.items()}
    corr = {"|".join(k): round(float(np.nanmean(v)), 3) for k, v in corrs.items() if np.isfinite(v).any()}
    record = {"command": "python benchmarks/overcast.py" + (f" --seeds {args.seeds}" if args.seeds != 2 else ""),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "revision": common.git_revision(), "seconds": round(time.perf_counter() - t0, 1),
              "scenes": {"S1+S2": sum(s.sar is not None for s in scenes),
                         "S2 only": sum(s.sar is None for s in scenes)},
              "seeds": args.seeds, "rmse": rmse, "corr": corr,
              "prior_used": {"|".join(k): f"{sum(v)} of {len(v)}" for k, v in used.items()}}
    groups = ("S1+S2", "S2 only")
    lines = [f"Whole-scene cloud, held-out places (test split, {CROP}-px crops, {args.seeds} seeds): "
             f"`{record['command']}`, {record['date'][:10]}, revision `{record['revision']}`. RMSE over every "
             "valid pixel against the clear scene / per-band correlation with it (averaged); an all-cloud "
             "mask. Default: sarclear-fill-guided with SAR (S1+S2), sarclear-fill-classic without (S2 only).", "",
             "| method | " + " | ".join(f"{g}, {c}" for g in groups for c in CASES) + " |",
             "|---|" + "---|" * (len(groups) * len(CASES))]
    for name in METHODS:
        cells = [f"{rmse[k]} / {corr.get(k, '-')}" if (k := f"{g}|{c}|{name}") in rmse else "-"
                 for g in groups for c in CASES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| scenes where the prior was used | " + " | ".join(
        record["prior_used"].get(f"{g}|{c}", "-") for g in groups for c in CASES) + " |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overcast.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "overcast.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
