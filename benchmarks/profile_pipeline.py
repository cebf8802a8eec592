"""Where the time goes when a target is missed: the decloud pipeline by stage, and the
trainer's per-step data path by operation count.

    python benchmarks/profile_pipeline.py decloud --size 4096           # cProfile, stages
    python benchmarks/profile_pipeline.py train-data --batch 64         # ops per training step

``decloud``: one decloud of a ``size`` x ``size`` generated scene (inputs.py) with the
identity generator by default (the network's own time is measured by model_throughput.py;
``--model`` profiles a real one, e.g. the default model file), reads,
compute and writes in turn (``io_threads`` off, so that one thread does everything and the
profile sees every stage), under cProfile; the time of each stage from its cumulative time.

``train-data``: the trainer's data path for one step on the CPU (cached windows cropped as on
the GPU, augmentation, synthetic clouds, scaling), with the number of operations that
torch.profiler counts in each part, views excluded: on a GPU each is a kernel launch of some
microseconds of CPU time, which is what bounds an eager training step there when the
operations are small. Results: ``<out>/profile_<what>.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import common
import inputs
import torch
import workloads

# (stage, file suffix, function): cumulative time of that function
DECLOUD_STAGES = (
    ("cloud detection (its own pass over the scene)", "scene_prep.py", "detect_mask"),
    ("reads and decoding (reconstruction pass)", "streaming.py", "_read"),
    ("tiles: scaling, model, blending", "streaming.py", "run_batch"),
    ("  of which the model's own pass (network and, for a mask-aware one, its fill)", "inference.py", "_batched"),
    ("writes: conversion and encoding", "streaming.py", "_write"),
    ("  of which the conversion to the output type", "write.py", "to_dtype"),
)
# aten operations that are views or host-side bookkeeping (no kernel on a GPU)
NO_KERNEL = {"aten::slice", "aten::as_strided", "aten::select", "aten::alias", "aten::view", "aten::unsqueeze",
             "aten::lift_fresh", "aten::detach", "aten::detach_", "aten::to", "aten::empty", "aten::reshape",
             "aten::expand", "aten::_reshape_alias", "aten::t", "aten::transpose", "aten::permute", "aten::squeeze",
             "aten::unbind", "aten::split", "aten::narrow", "aten::empty_strided", "aten::_unsafe_view",
             "aten::result_type", "aten::item", "aten::_local_scalar_dense", "aten::randint", "aten::random_",
             "aten::empty_like"}


def profile_decloud(args: argparse.Namespace) -> dict[str, Any]:
    from sarclear.inference import DecloudOptions, decloud
    from sarclear.raster import limit_gdal_cache

    limit_gdal_cache()
    sc = inputs.scene(args.size, args.workdir)
    model = workloads.bench_model(args.model, identity=args.model == "identity")
    options = DecloudOptions(device="cpu", overwrite=True, io_threads=False, mask_method=args.mask_method)
    out = args.workdir / "outputs" / f"profile_{args.size}.tif"
    out.parent.mkdir(parents=True, exist_ok=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    result = decloud(str(sc.s2), str(sc.s1), model, out, maps=False, options=options)
    prof.disable()
    total = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (calls, ..., tottime, cumtime, callers)
    rows = []
    for stage, suffix, func in DECLOUD_STAGES:
        cum = sum(v[3] for (f, _, fn), v in stats.items() if f.endswith(suffix) and fn == func)
        rows.append({"stage": stage, "seconds": cum, "share": cum / total})
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:12]
    rows_top = [{"function": f"{Path(f).name}:{fn}", "calls": v[1], "self_s": v[2]} for (f, _, fn), v in top]
    title = (f"decloud of {args.size}^2 by stage ({Path(args.model).name}, reads, compute and writes in turn, "
             f"{args.mask_method} detector)")
    return {"seconds": total, "tiles": result.tiles, "notes_from_decloud": result.notes, "stages": rows,
            "top_self": rows_top,
            "tables": {title: common.markdown_table(rows, [("stage", "stage"), ("seconds", "seconds"),
                                                           ("share", "share of the run")]),
                       "most self time": common.markdown_table(rows_top, [("function", "function"),
                                                                          ("calls", "calls"),
                                                                          ("self_s", "self seconds")])},
            "notes": [f"whole run {total:.1f} s, {result.tiles} tiles, under cProfile (adds a little)"]}


def _kernels(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::") and e.key not in NO_KERNEL)


def profile_train_data(args: argparse.Namespace) -> dict[str, Any]:
    from sarclear.clouds import CloudConfig, CloudField
    from sarclear.data import PairDataset, find_pairs
    from sarclear.networks import preset
    from sarclear.radiometry import reflectance_to_network
    from sarclear.training import augment

    windows, size = (4, 512) if args.quick else (16, 1024)  # train_throughput.py's memory data
    sc = inputs.scene(size * int(windows**0.5), args.workdir)
    manifest = inputs.window_manifest(args.workdir / "train" / f"windows_{windows}x{size}.csv", sc, windows, size)
    cfg = preset("paper")
    ds = PairDataset(find_pairs(str(manifest)), cfg.bands, cfg.sar_channels, 256, length=100 * args.batch)
    sar_scaling = cfg.sar_scaling()
    n = args.batch
    batch = ds.batch(list(range(n)))
    g = torch.Generator().manual_seed(0)

    def item_by_item():  # what PairDataset.batch did before 2026-12-04: each item converted alone
        items = [ds[i] for i in range(n, 2 * n)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    parts = {
        "batch assembly (crops of the cached windows)": lambda: ds.batch(list(range(n, 2 * n))),
        "  the same, item by item (for comparison; not in the sum)": item_by_item,
        "augmentation": lambda: augment([batch["clear"], batch["sar"], batch["valid"][:, None].float(),
                                         batch["cloudy"]], g),
        "synthetic clouds": lambda: CloudField(n, 256, 256, CloudConfig(), seed=g).apply(batch["clear"], cfg.bands),
        "scaling to the network range": lambda: (reflectance_to_network(batch["clear"]),
                                                 sar_scaling.to_network(batch["sar"])),
    }
    rows = [{"part": k, "operations": _kernels(fn)} for k, fn in parts.items()]
    rows.append({"part": "data path, in all", "operations": sum(r["operations"] for r in rows
                                                                if not r["part"].startswith("  "))})
    title = f"operations per training step, batch {n} (views and allocations excluded)"
    return {"batch": n, "rows": rows,
            "tables": {title: common.markdown_table(
                rows, [("part", "part"), ("operations", "operations (about a kernel launch each on a GPU)")])},
            "notes": ["counted with torch.profiler on the CPU (aten operations less views and allocations; an "
                      "operation that calls another is counted twice); the same calls run on the GPU in the trainer"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=("decloud", "train-data"))
    common.add_common_arguments(p)
    p.add_argument("--size", type=int, default=4096, help="decloud: scene size (default 4096)")
    p.add_argument("--model", default="identity",
                   help="decloud: identity (the I/O path alone; default), lite, paper or a model file")
    p.add_argument("--mask-method", default="rules", choices=("auto", "csmask", "rules"),
                   help="decloud: the cloud detector (default rules, as on a machine without ukis-csmask)")
    p.add_argument("--batch", type=int, default=64, help="train-data: batch size (default 64)")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batch = 512, 4
    common.setup_logging()
    result = profile_decloud(args) if args.what == "decloud" else profile_train_data(args)
    out_dir = args.out or common.default_out_dir(torch.device("cpu"))
    out_dir.mkdir(parents=True, exist_ok=True)
    common.publish(f"profile_{args.what.replace('-', '_')}", result, out_dir, torch.device("cpu"))
    return result


if __name__ == "__main__":
    main()
