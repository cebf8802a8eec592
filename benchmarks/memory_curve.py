"""Resident memory over time during one whole decloud: is it bounded, or does it creep?

    python benchmarks/memory_curve.py --identity --size vrt8000       # I/O path, 8000 x 8000 VRT
    python benchmarks/memory_curve.py --identity --size vrt20000      # the issue's 20000 x 20000 case

The decloud runs in a child process (the command line's GDAL block-cache cap of 512 MB, no
maps) with a sampler thread that records, every ``--interval`` seconds, the process's RSS
(VmRSS), the bytes held by GDAL's block cache (``gdal.GetCacheUsed``) and the tiles done.
RSS minus the block cache is the memory sarclear, torch and GDAL's other state hold: if it
is flat over the second half of the run, nothing grows with the raster; the block cache
fills up to its cap and then stays there. Results: ``<out>/<name>.json`` and
``<out>/<name>.png`` (RSS, block cache and their difference over time; ``--plot`` writes a
copy elsewhere, e.g. under ``docs/benchmarks/``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
import inputs
import memory_use


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Decloud ``spec``'s scene in this process, sampling memory on a thread."""
    import workloads
    from osgeo import gdal

    from sarclear.inference import DecloudOptions, decloud
    from sarclear.raster import limit_gdal_cache

    limit_gdal_cache()  # as the command line does
    samples: list[tuple[float, int, int, int]] = []
    done = [0, 1]
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, memory_use.rss_bytes() or 0, gdal.GetCacheUsed(), done[0]))
            stop.wait(spec["interval"])

    def progress(n: int, total: int, _: str) -> None:
        done[0], done[1] = n, total

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    model = workloads.bench_model(spec["model"], spec["identity"])
    options = DecloudOptions(device="cpu", overwrite=True, batch_size=spec.get("batch_size"))
    result = decloud(spec["ms"], spec["sar"], model, spec["out"], maps=False, options=options, progress=progress)
    stop.set()
    sampler.join()
    Path(spec["out"]).unlink(missing_ok=True)
    return {"seconds": time.perf_counter() - t0, "tiles": result.tiles,
            "peak_rss_self_bytes": memory_use.peak_rss_bytes(),
            "gdal_cache_max_bytes": gdal.GetCacheMax(),
            "samples": [{"t": t, "rss": r, "gdal_cache": c, "tiles": n} for t, r, c, n in samples]}


def summarise(res: dict[str, Any]) -> list[dict[str, Any]]:
    """RSS and RSS minus the block cache at each tenth of the tiles."""
    samples, total = res["samples"], res["tiles"]
    rows = []
    for tenth in range(11):
        target = total * tenth / 10
        s = next((s for s in samples if s["tiles"] >= target), samples[-1])
        rows.append({"done": f"{10 * tenth} %", "t": s["t"], "rss_gib": common.gib(s["rss"]),
                     "gdal_cache_gib": common.gib(s["gdal_cache"]),
                     "rss_minus_cache_gib": common.gib(s["rss"] - s["gdal_cache"])})
    return rows


def fit_trend(res: dict[str, Any]) -> dict[str, float]:
    """RSS minus the block cache over the second half of the tiles: range, mean and the
    least-squares slope (a leak shows as a steady positive slope)."""
    import numpy as np

    half = [v for v in res["samples"] if res["tiles"] / 2 <= v["tiles"] < res["tiles"]]  # while tiles run
    if not half:  # a run too short to be sampled in its second half (a smoke run): use every sample
        half = res["samples"]
    if not half:
        return {"samples": 0, "min_gib": math.nan, "max_gib": math.nan, "mean_gib": math.nan,
                "mib_per_1000_tiles": math.nan, "mib_over_half": math.nan}
    x = np.array([v["tiles"] for v in half], float)
    y = np.array([(v["rss"] - v["gdal_cache"]) / 2**20 for v in half])
    slope = float(np.polyfit(x, y, 1)[0]) if len(half) > 2 and np.ptp(x) > 0 else float("nan")
    return {"samples": len(half), "min_gib": float(y.min()) / 1024, "max_gib": float(y.max()) / 1024,
            "mean_gib": float(y.mean()) / 1024, "mib_per_1000_tiles": 1000 * slope,
            "mib_over_half": slope * res["tiles"] / 2}


def plot(res: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, total = res["samples"], res["tiles"]
    x = [v["t"] for v in s]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [common.gib(v["rss"]) for v in s], label="RSS")
    ax.plot(x, [common.gib(v["gdal_cache"]) for v in s], label="GDAL block cache (cap 0.5 GiB)")
    ax.plot(x, [common.gib(v["rss"] - v["gdal_cache"]) for v in s], label="RSS - block cache")
    ax.set_xlabel("seconds")
    top = ax.twiny()  # the fraction of tiles done at each time, on the top axis
    ticks = [next((v["t"] for v in s if v["tiles"] >= total * f / 4), s[-1]["t"]) for f in range(5)]
    top.set_xlim(ax.get_xlim())
    top.set_xticks(ticks, [f"{25 * f} %" for f in range(5)])
    top.set_xlabel("tiles done", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser)
    parser.add_argument("--size", default="vrt8000", help="N or vrtN (see inputs.scene_for)")
    parser.add_argument("--model", default="lite")
    parser.add_argument("--identity", action="store_true", help="a generator that returns its input")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--plot", type=Path, help="write the curve here (PNG)")
    parser.add_argument("--name", default="memory_curve")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        res = child_main(json.loads(args.child))
        args.child_result.write_text(json.dumps(res))
        return 0
    common.setup_logging()
    if args.quick:
        args.size = "512"
    sc = inputs.scene_for(args.size, args.workdir)
    out_dir = args.workdir / "outputs"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"ms": str(sc.s2), "sar": str(sc.s1), "out": str(out_dir / f"memory_{args.size}.tif"),
            "model": args.model, "identity": args.identity, "batch_size": args.batch_size, "interval": args.interval}
    result_path = out_dir / f"memory_{args.size}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--child-result",
           str(result_path)]
    run = memory_use.run_child(cmd)
    if run["returncode"] != 0:
        print(run["output"][-3000:], file=sys.stderr)
        return 1
    res = json.loads(result_path.read_text())
    res["peak_rss_bytes"] = run["peak_rss_bytes"]
    rows = summarise(res)
    trend = fit_trend(res)
    what = "identity generator" if args.identity else args.model
    title = (f"decloud {args.size} ({what}, CPU): peak RSS {common.gib(run['peak_rss_bytes']):.2f} GiB, "
             f"{res['seconds']:.0f} s")
    out_dir = args.out or common.default_out_dir("cpu")
    for path in (out_dir / f"{args.name}.png", args.plot):
        if path is not None:
            plot(res, path, title)
    table = common.markdown_table(rows, [("done", "tiles done"), ("t", "seconds"), ("rss_gib", "RSS GiB"),
                                         ("gdal_cache_gib", "GDAL cache GiB"),
                                         ("rss_minus_cache_gib", "RSS - cache GiB")])
    notes = [f"{title}; {res['tiles']} tiles", "second half of the run (block cache full): RSS - block cache "
             f"from {trend['min_gib']:.2f} to {trend['max_gib']:.2f} GiB, mean {trend['mean_gib']:.2f} GiB, "
             f"least-squares trend {trend['mib_per_1000_tiles']:+.1f} MiB per 1000 tiles "
             f"({trend['mib_over_half']:+.0f} MiB over the half)"]
    common.publish(args.name, {"size": args.size, "model": what, "summary": rows, "trend": trend, "result": res,
                               "tables": {"memory over the run": table}, "notes": notes},
                   out_dir, "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
