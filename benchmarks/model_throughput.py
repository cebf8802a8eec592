"""Model-only throughput: generator inference (patches/s) and cGAN training (samples/s) for
the presets, the reference pix2pix way (fp32, batch 1, eager) against optimised variants
(larger batch, bf16 autocast, channels_last, fused Adam, torch.compile), with FLOPs per
patch / sample and the achieved TFLOP/s.

    python benchmarks/model_throughput.py                      # paper and lite, all variants
    python benchmarks/model_throughput.py --presets lite --quick --device cpu

No data pipeline is involved: the inputs are one batch resident on the device (see
workloads.py for exactly what one step runs). Variants the device cannot run (bf16 and
torch.compile off CUDA) are listed as skipped, with the reason. Results:
``<out>/model_throughput.json``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

import common
import memory_use
import torch
import workloads

from sarclear.networks import build, count_parameters, preset

ISSUE_TARGETS = {"training_samples_per_s": 1815, "inference_patches_per_s": 15_000}


def _measure(kind: str, preset_name: str, variant: workloads.Variant, device: torch.device, flops: dict,
             args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": kind, "preset": preset_name, "variant": variant.name, "batch": variant.batch,
                           "config": variant.describe()}
    why = variant.unavailable(device)
    if why:
        return {**row, "skipped": why}
    cfg = preset(preset_name)
    memory_use.free_device_memory(device)
    memory_use.reset_cuda_peak(device)
    try:
        step = (workloads.InferenceStep(cfg, variant, device) if kind == "inference"
                else workloads.TrainStep(cfg, variant, device))
        warmup = args.warmup + (args.compile_warmup if variant.compile else 0)
        t = common.benchmark(step, device, warmup=warmup, repeats=args.repeats, min_time=args.min_time,
                             iters=args.iters)
    except Exception as exc:  # an out-of-memory or unsupported op must not end the other rows
        if args.strict:
            raise
        traceback.print_exc()
        return {**row, "skipped": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    finally:
        step = None
    rate = variant.batch / t["median"]
    gflop = flops["inference_gflop" if kind == "inference" else "training_gflop"]
    row.update(seconds_per_step=t["median"], seconds_min=t["min"], seconds_max=t["max"], iters=t["iters"],
               repeats=t["repeats"], per_s=rate, tflops=rate * gflop / 1e3,
               peak_cuda_gib=common.gib(memory_use.cuda_peak_bytes(device)))
    memory_use.free_device_memory(device)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = common.resolve(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    batch = args.batch or (64 if device.type == "cuda" else 4)
    rows, flops_rows, notes = [], [], []
    kinds = [k for k in ("inference", "training") if k in args.kinds]
    for name in args.presets:
        flops = workloads.flops_report(name)
        G, D = build(preset(name), discriminator=True)
        flops["parameters_g_plus_d"] = count_parameters(G) + count_parameters(D)
        del G, D
        flops_rows.append(flops)
        for kind in kinds:
            variants = (workloads.inference_variants if kind == "inference" else workloads.training_variants)(
                device, batch, args.compile_mode)
            if args.variants:
                variants = [v for i, v in enumerate(variants) if str(i) in args.variants or v.name in args.variants]
            ref_rate = None
            for v in variants:
                print(f"[{name} {kind}] {v.name} ...", file=sys.stderr, flush=True)
                row = _measure(kind, name, v, device, flops, args)
                if row.get("per_s") and v.batch == 1 and v.precision == "fp32" and not v.channels_last \
                        and not v.compile and not v.engine and ref_rate is None:
                    ref_rate = row["per_s"]
                row["speedup_vs_reference"] = row["per_s"] / ref_rate if ref_rate and row.get("per_s") else None
                rows.append(row)
                if row.get("skipped"):
                    notes.append(f"{name} {kind}, {v.name}: skipped ({row['skipped']})")
    tables = {
        "FLOPs per 256 x 256 patch (counted with FlopCounterMode)": common.markdown_table(flops_rows, [
            ("preset", "preset"), ("parameters_g_plus_d", "G + D weights"),
            ("inference_gflop", "inference GFLOP/patch"), ("nominal_inference_gflop", "issue"),
            ("training_gflop", "training GFLOP/sample (D frozen in G step)"),
            ("training_gflop_d_unfrozen", "same, D not frozen"), ("nominal_training_gflop", "issue")]),
    }
    for kind, unit in (("inference", "patches/s"), ("training", "samples/s")):
        kind_rows = [r for r in rows if r["kind"] == kind]
        if kind_rows:
            tables[f"Model-only {kind} on {common.device_name(device)}"] = common.markdown_table(kind_rows, [
                ("preset", "preset"), ("variant", "variant"), ("per_s", unit),
                ("speedup_vs_reference", "x reference"), ("tflops", "TFLOP/s"),
                ("seconds_per_step", "s/step"), ("peak_cuda_gib", "peak CUDA GiB"), ("skipped", "skipped")])
    notes.append("training GFLOP counts G forward + backward, D forward + backward on real and fake for D's "
                 "step, and D forward + input-gradient backward for G's step (D frozen, as the trainer does); "
                 "the issue's 108.6 also counts D's weight gradients in G's step ('D not frozen' column)")
    notes.append("TFLOP/s = counted GFLOP per item x items/s; the training step includes the EMA update and reads "
                 "both losses back every step, as the trainer does")
    return {"args": {k: (str(v) if k in ("out", "workdir") else v) for k, v in vars(args).items()},
            "device": str(device), "batch": batch, "flops": flops_rows, "rows": rows, "tables": tables,
            "notes": notes, "issue_targets": ISSUE_TARGETS}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["paper", "lite"], help="paper,lite")
    p.add_argument("--kinds", type=lambda s: s.split(","), default=["inference", "training"],
                   help="inference,training")
    p.add_argument("--batch", type=int, default=None, help="batch of the optimised variants (default 64 CUDA, 4 CPU)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=None,
                   help="only these variants (their index in the list, 0 = reference, or full name)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant (default 3, quick 1)")
    p.add_argument("--compile-warmup", type=int, default=5, help="extra untimed steps for compiled variants")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--repeats", type=int, default=None, help="timed loops per variant (default 5, quick 1)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per timed loop (default 2, quick 0)")
    p.add_argument("--iters", type=int, default=None, help="steps per timed loop (default: fill --min-time)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="turn torch.backends.cudnn.benchmark on (the library leaves it off)")
    p.add_argument("--strict", action="store_true", help="stop at the first failing variant")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    quick = args.quick
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if quick else 2.0)
    if quick and args.iters is None:
        args.iters = 1
    device = common.resolve(args.device)
    result = run(args)
    common.publish("model_throughput", result, args.out or common.default_out_dir(device), device)
    return result


if __name__ == "__main__":
    main()
