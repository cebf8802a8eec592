"""End-to-end training throughput of the real trainer (:func:`sarclear.training.train`:
reading patches, on-the-fly synthetic clouds, augmentation, both updates, EMA) against the
same model alone in the same run, and against the reference pix2pix way (fp32, batch 1,
eager); then throughput and memory against the batch size (table and plot).

    python benchmarks/train_throughput.py                          # CUDA: paper, batch 64, sweep
    python benchmarks/train_throughput.py --quick --device cpu     # smoke run: lite, tiny

Training data are generated from the real samples (inputs.py) in two forms:

* ``memory``: a manifest of a few large windows of a generated scene, which the trainer
  caches in memory (its default for <= 2000 pairs) and crops at random positions;
* ``disk``: many 256 x 256 pair files (SEN12MS-CR-like), read for every sample (the
  trainer's mode for paper-scale datasets, which are too large to cache).

Throughput is timed by the trainer's progress callback between the end of the warm-up
steps and the last step (the callback runs after the losses are read back, so the device
queue is drained): data loading at start-up, compilation and the final checkpoint are
excluded. Model-only runs the trainer's step on one resident batch with the trainer's
settings (workloads.TrainStep). Results: ``<out>/train_throughput.json`` and
``train_vs_batch.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common
import inputs
import memory_use
import torch
import workloads

from sarclear.networks import preset
from sarclear.training import TrainConfig, train

TARGET_E2E = 2200.0        # samples/s, paper preset, one H100
TARGET_VS_REFERENCE = 30.0
TARGET_E2E_VS_MODEL = 0.9
PAPER_SCALE_SAMPLES = 24_720 * 5


def _settings(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """What the trainer will use, resolved as it resolves them."""
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    channels_last = device.type == "cuda" if args.channels_last is None else args.channels_last
    return {"precision": precision, "channels_last": channels_last, "fused_adam": device.type == "cuda",
            "compile": args.compile}


def make_data(mode: str, args: argparse.Namespace) -> tuple[Path, bool, str]:
    """(manifest, cache, description) of the training data for ``mode``."""
    if mode == "memory":
        size = args.window * max(1, int(args.pairs**0.5 + 0.999))
        sc = inputs.scene(max(size, 256), args.workdir)
        manifest = inputs.window_manifest(args.workdir / "train" / f"windows_{args.pairs}x{args.window}.csv", sc,
                                          args.pairs, args.window)
        return manifest, True, f"{args.pairs} cached windows of {args.window} px, random 256 px crops"
    side = 256 * max(1, int(args.disk_pairs**0.5 + 0.999))
    sc = inputs.scene(side, args.workdir)
    manifest = inputs.pair_files(args.workdir / "train" / f"pairs{args.disk_pairs}", sc, args.disk_pairs)
    return manifest, False, f"{args.disk_pairs} pair files of 256 px, read per sample"


def trainer_run(manifest: Path, cache: bool, device: torch.device, batch: int, workers: int,
                args: argparse.Namespace) -> dict[str, Any]:
    """samples/s of the real trainer over ``args.steps`` steps after ``args.warmup_steps``."""
    run_dir = args.workdir / "train-runs" / f"b{batch}-w{workers}-{int(time.time() * 1000)}"
    total = args.warmup_steps + args.steps
    config = TrainConfig(data=str(manifest), out=str(run_dir), preset=args.preset, batch_size=batch,
                         epochs=1, samples_per_epoch=(total + 2) * batch, crop=256, checkpoint_every=0,
                         eval_max_pairs=1, keep_checkpoints=1, device=str(device), precision=args.precision,
                         channels_last=args.channels_last, compile=args.compile, workers=workers, cache=cache,
                         test_fraction=0.0, seed=0)
    clock = common.StepClock()
    memory_use.free_device_memory(device)
    memory_use.reset_cuda_peak(device)
    memory_use.reset_peak_rss()
    t0 = time.perf_counter()
    try:
        train(config, progress=clock, stop_after_steps=total)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    rate = clock.rate(args.warmup_steps, batch)
    return {"per_s": rate, "steps": len(clock.times) - args.warmup_steps, "warmup_steps": args.warmup_steps,
            "startup_s": clock.times[0] - t0 if clock.times else None, "total_s": time.perf_counter() - t0,
            "peak_cuda_gib": common.gib(memory_use.cuda_peak_bytes(device)),
            "peak_rss_gib": common.gib(memory_use.peak_rss_bytes())}


def model_only(device: torch.device, batch: int, settings: dict[str, Any], args: argparse.Namespace,
               reference: bool = False) -> dict[str, Any]:
    cfg = preset(args.preset)
    if reference:
        variant = workloads.reference()
    else:
        variant = workloads.Variant("model only", batch, settings["precision"], settings["channels_last"],
                                    settings["compile"], fused_adam=settings["fused_adam"])
    memory_use.free_device_memory(device)
    memory_use.reset_cuda_peak(device)
    step = workloads.TrainStep(cfg, variant, device)
    t = common.benchmark(step, device, warmup=args.warmup_steps, repeats=args.repeats, min_time=args.min_time,
                         iters=args.iters)
    del step
    out = {"per_s": variant.batch / t["median"], "seconds_per_step": t["median"], "iters": t["iters"],
           "repeats": t["repeats"], "peak_cuda_gib": common.gib(memory_use.cuda_peak_bytes(device))}
    memory_use.free_device_memory(device)
    return out


def plot(rows: list[dict[str, Any]], path: Path, title: str, memory_key: str, memory_label: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    b = [r["batch"] for r in rows]
    for key, label, style in (("e2e_per_s", "end to end (trainer)", "o-"), ("model_per_s", "model only", "s--")):
        pts = [(x, r[key]) for x, r in zip(b, rows) if r.get(key)]
        if pts:
            ax1.plot(*zip(*pts), style, label=label)
    ax1.set(xscale="log", yscale="log", xlabel="batch size", ylabel="samples / s", title="throughput")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    pts = [(x, r[memory_key]) for x, r in zip(b, rows) if r.get(memory_key)]
    if pts:
        ax2.plot(*zip(*pts), "o-")
    ax2.set(xscale="log", xlabel="batch size", ylabel=memory_label, title="peak memory")
    for ax in (ax1, ax2):
        ax.set_xticks(b, [str(x) for x in b])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    device = common.resolve(args.device)
    settings = _settings(device, args)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    models: dict[int, dict[str, Any]] = {}     # model-only by batch
    e2es: dict[tuple, dict[str, Any]] = {}      # trainer runs by (data, workers, batch)
    measured: dict[str, dict[str, Any]] = {}

    def keep(what: str, value: dict[str, Any]) -> dict[str, Any]:
        """Each figure as it is measured: printed, and saved with the ones before it
        (train_throughput.partial.json), so a run stopped at a lease's end keeps them."""
        measured[what] = value
        print(f"[train] {what}: {value.get('per_s') or float('nan'):.4g} samples/s", file=sys.stderr, flush=True)
        common.save_results("train_throughput.partial", {"settings": settings, "measured": measured}, out_dir,
                            device)
        return value

    def model_at(batch: int) -> dict[str, Any]:
        if batch not in models:
            print(f"[train] model only, batch {batch} ...", file=sys.stderr, flush=True)
            models[batch] = keep(f"model only, batch {batch}", model_only(device, batch, settings, args))
        return models[batch]

    def e2e_at(mode: str, workers: int, batch: int) -> dict[str, Any]:
        if (mode, workers, batch) not in e2es:
            what = f"end to end: {mode} data, {workers} workers, batch {batch}"
            print(f"[train] {what} ...", file=sys.stderr, flush=True)
            manifest, cache, _ = data[mode]
            e2es[mode, workers, batch] = keep(what, trainer_run(manifest, cache, device, batch, workers, args))
        return e2es[mode, workers, batch]

    print(f"[train] reference model-only ({args.preset}, fp32, batch 1, eager) ...", file=sys.stderr, flush=True)
    ref = keep("reference model only, batch 1", model_only(device, 1, settings, args, reference=True))
    model = model_at(args.batch)
    data = {mode: make_data(mode, args) for mode in args.data}
    for mode, (_, _, what) in data.items():
        for workers in args.workers:
            e2e = e2e_at(mode, workers, args.batch)
            rows.append({"data": mode, "data_description": what, "workers": workers, "batch": args.batch,
                         "e2e_per_s": e2e["per_s"], "model_per_s": model["per_s"], "reference_per_s": ref["per_s"],
                         "e2e_vs_model": e2e["per_s"] / model["per_s"] if e2e["per_s"] else None,
                         "e2e_vs_reference": e2e["per_s"] / ref["per_s"] if e2e["per_s"] else None,
                         "paper_scale_s": PAPER_SCALE_SAMPLES / e2e["per_s"] if e2e["per_s"] else None,
                         "startup_s": e2e["startup_s"], "peak_cuda_gib": e2e["peak_cuda_gib"],
                         "peak_rss_gib": e2e["peak_rss_gib"], "e2e": e2e})
    for r in rows:
        r["meets_e2e_vs_model"] = common.target_check(r["e2e_vs_model"], TARGET_E2E_VS_MODEL)
        r["meets_vs_reference"] = common.target_check(r["e2e_vs_reference"], TARGET_VS_REFERENCE)
        r["meets_2200"] = common.target_check(r["e2e_per_s"], TARGET_E2E) if args.preset == "paper" \
            and device.type == "cuda" else None

    sweep = []
    sweep_mode = args.data[0]
    sweep_workers = max(args.workers)
    for b in args.batches:
        row: dict[str, Any] = {"batch": b}
        try:
            m = model_at(b)
            row.update(model_per_s=m["per_s"], model_peak_cuda_gib=m["peak_cuda_gib"])
            e = e2e_at(sweep_mode, sweep_workers, b)
            row.update(e2e_per_s=e["per_s"], peak_cuda_gib=e["peak_cuda_gib"], peak_rss_gib=e["peak_rss_gib"],
                       e2e_vs_model=e["per_s"] / m["per_s"] if e["per_s"] else None)
        except Exception as exc:  # out of memory at the largest batches ends only that row
            from sarclear.devices import is_out_of_memory

            if not is_out_of_memory(exc):
                raise
            row["skipped"] = "out of memory"
            memory_use.free_device_memory(device)
        sweep.append(row)

    cfg_text = (f"{args.preset}, {settings['precision']}, channels_last {settings['channels_last']}, fused Adam "
                f"{settings['fused_adam']}, compile {settings['compile']}")
    tables = {
        f"End-to-end training vs model only ({cfg_text}) on {common.device_name(device)}": common.markdown_table(
            rows, [("data", "data"), ("workers", "loader workers"), ("batch", "batch"),
                   ("e2e_per_s", "end to end samples/s"), ("model_per_s", "model only samples/s"),
                   ("e2e_vs_model", "e2e / model (>= 0.9)"), ("reference_per_s", "reference samples/s"),
                   ("e2e_vs_reference", "e2e / reference (>= 30)"), ("paper_scale_s", "24,720 x 5 epochs, s"),
                   ("peak_cuda_gib", "peak CUDA GiB"), ("peak_rss_gib", "peak RSS GiB")]),
        f"Training vs batch size ({sweep_mode} data, {sweep_workers} workers, {cfg_text})": common.markdown_table(
            sweep, [("batch", "batch"), ("e2e_per_s", "end to end samples/s"),
                    ("model_per_s", "model only samples/s"), ("e2e_vs_model", "e2e / model"),
                    ("peak_cuda_gib", "peak CUDA GiB (e2e)"), ("model_peak_cuda_gib", "peak CUDA GiB (model)"),
                    ("peak_rss_gib", "peak RSS GiB"), ("skipped", "skipped")]),
    }
    if sweep:
        cuda = device.type == "cuda"
        plot(sweep, out_dir / "train_vs_batch.png", f"{args.preset} training on {common.device_name(device)}",
             "peak_cuda_gib" if cuda else "peak_rss_gib", "peak CUDA memory, GiB" if cuda else "peak host RSS, GiB")
    notes.append(f"reference (fp32, batch 1, eager, model only): {ref['per_s']:.3g} samples/s; "
                 f"24,720 x 5 epochs the reference way: {PAPER_SCALE_SAMPLES / ref['per_s']:.0f} s")
    notes.append(f"targets: end to end >= {TARGET_E2E:,.0f} samples/s (paper preset, one H100), >= "
                 f"{TARGET_VS_REFERENCE:.0f}x the reference, >= {TARGET_E2E_VS_MODEL:.0%} of model only")
    notes.append(f"end to end: {args.steps} steps timed after {args.warmup_steps} warm-up steps; the trainer's "
                 "learning rate is used unchanged at every batch size (throughput does not depend on it)")
    return {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "device": str(device), "settings": settings, "reference": ref, "model_only": model, "rows": rows,
            "batch_sweep": sweep, "tables": tables, "notes": notes,
            "targets": {"e2e_samples_per_s": TARGET_E2E, "vs_reference": TARGET_VS_REFERENCE,
                        "e2e_vs_model": TARGET_E2E_VS_MODEL}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p)
    p.add_argument("--preset", default=None, help="paper or lite (default paper on CUDA, lite on CPU)")
    p.add_argument("--batch", type=int, default=None, help="batch of the headline rows (default 64 CUDA, 2 CPU)")
    p.add_argument("--batches", type=lambda s: common.parse_list(s), default=None,
                   help="batch sweep (default 1,8,16,32,64,128 CUDA; 1,2,4 CPU; 1,2 quick)")
    p.add_argument("--workers", type=lambda s: common.parse_list(s), default=None,
                   help="DataLoader workers to compare (default 0,8 CUDA; 0 CPU)")
    p.add_argument("--data", type=lambda s: s.split(","), default=None,
                   help="memory,disk (default both on CUDA, memory on CPU)")
    p.add_argument("--pairs", type=int, default=None, help="memory data: windows (default 16, quick 2)")
    p.add_argument("--window", type=int, default=None, help="memory data: window size (default 1024, quick 512)")
    p.add_argument("--disk-pairs", type=int, default=None, help="disk data: pair files (default 1024, quick 8)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="torch.compile G and D (default on CUDA)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 CUDA, 5 CPU, quick 2)")
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed steps (default 15 CUDA, 2 CPU, quick 1)")
    p.add_argument("--repeats", type=int, default=None, help="model-only timed loops (default 3, quick 1)")
    p.add_argument("--min-time", type=float, default=None, help="model-only seconds per loop (default 2, quick 0)")
    p.add_argument("--iters", type=int, default=None, help="model-only steps per loop (default: fill --min-time)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    device = common.resolve(args.device)
    cuda, quick = device.type == "cuda", args.quick

    def pick(value, on_cuda, on_cpu, on_quick):
        if value is not None:
            return value
        return on_quick if quick else (on_cuda if cuda else on_cpu)

    args.preset = pick(args.preset, "paper", "lite", "lite")
    args.batch = pick(args.batch, 64, 2, 2)
    args.batches = pick(args.batches, [1, 8, 16, 32, 64, 128], [1, 2, 4], [1, 2])
    args.workers = pick(args.workers, [0, 8], [0], [0])
    args.data = pick(args.data, ["memory", "disk"], ["memory"], ["memory"])
    args.pairs = pick(args.pairs, 16, 16, 2)
    args.window = pick(args.window, 1024, 512, 512)
    args.disk_pairs = pick(args.disk_pairs, 1024, 64, 8)
    args.compile = pick(args.compile, True, False, False)
    args.steps = pick(args.steps, 50, 5, 2)
    args.warmup_steps = pick(args.warmup_steps, 15, 2, 1)
    args.repeats = pick(args.repeats, 3, 3, 1)
    args.min_time = pick(args.min_time, 2.0, 2.0, 0.0)
    if quick and args.iters is None:
        args.iters = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    common.setup_logging()
    out_dir = args.out or common.default_out_dir(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run(args, out_dir)
    common.publish("train_throughput", result, out_dir, device)
    (out_dir / "train_throughput.partial.json").unlink(missing_ok=True)  # the whole is there now
    return result


if __name__ == "__main__":
    main()
