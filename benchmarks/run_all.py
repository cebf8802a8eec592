"""Run every benchmark appropriate for this machine and collect the results in one folder.

    python benchmarks/run_all.py             # CUDA machine: full sizes (the GPU tables)
    python benchmarks/run_all.py             # CPU-only machine: the CPU tables
    python benchmarks/run_all.py --quick     # any machine: tiny sizes, minutes (smoke run)

Each script runs in its own process (its output shown as it runs and kept in
``<out>/<name>.log``) and writes ``<out>/<name>.json`` (+ plots); at the end the tables of
all of them are printed and written, with the machine and software description, to
``<out>/summary.md``, ready to paste into BENCHMARKS.md. ``<out>`` defaults to
``benchmarks/results/<device>-<date>/``. A failing script is reported and the others run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent


def plan(cuda: bool, quick: bool) -> list[tuple[str, list[str]]]:
    """(results name, script and arguments) for this machine."""
    if quick:
        return [
            ("model_throughput", ["model_throughput.py", "--quick", "--presets", "lite"]),
            ("train_throughput", ["train_throughput.py", "--quick"]),
            ("decloud_scaling", ["decloud_scaling.py", "--quick", "--identity", "--cpu-target",
                                 "--cpu-models", "lite"]),
            ("full_tile", ["full_tile.py", "--quick", "--identity"]),
            ("memory_curve", ["memory_curve.py", "--quick", "--identity", "--interval", "0.1"]),
        ]
    if cuda:
        return [
            ("model_throughput", ["model_throughput.py", "--presets", "paper,lite"]),
            ("train_throughput", ["train_throughput.py", "--preset", "paper"]),
            ("decloud_scaling", ["decloud_scaling.py", "--model", "paper", "--cpu-target"]),
            ("decloud_scaling_identity", ["decloud_scaling.py", "--identity", "--name", "decloud_scaling_identity",
                                          "--sizes", "512,1024,2048,4096,8192,10980,vrt20000"]),
            ("full_tile", ["full_tile.py", "--model", "paper", "--compare-unthreaded"]),
            ("memory_curve", ["memory_curve.py", "--identity", "--size", "vrt20000", "--interval", "1"]),
        ]
    return [
        ("model_throughput", ["model_throughput.py", "--presets", "paper,lite"]),
        ("train_throughput", ["train_throughput.py", "--preset", "lite"]),
        ("decloud_scaling", ["decloud_scaling.py", "--model", "lite", "--cpu-target", "--sizes", "512,1024,2048"]),
        ("decloud_scaling_identity", ["decloud_scaling.py", "--identity", "--name", "decloud_scaling_identity",
                                      "--sizes", "512,1024,2048,4096,vrt20000"]),
        ("full_tile", ["full_tile.py", "--identity"]),
        ("memory_curve", ["memory_curve.py", "--identity", "--size", "vrt20000", "--interval", "1"]),
    ]


def summary_markdown(out_dir: Path, names: list[str], statuses: dict[str, str]) -> str:
    lines: list[str] = []
    env = None
    for name in names:
        path = out_dir / f"{name}.json"
        if not path.exists():
            lines.append(f"\n## {name}\n\nno results ({statuses.get(name, 'not run')})\n")
            continue
        doc = json.loads(path.read_text())
        env = env or doc["env"]
        lines.append(f"\n## {name}\n\n`{doc['env']['command']}`\n")
        for title, table in doc.get("tables", {}).items():
            lines.append(f"### {title}\n\n{table}\n")
        for note in doc.get("notes", []):
            lines.append(f"- {note}")
        pngs = sorted(p.name for p in out_dir.glob(f"{name}*.png"))
        if pngs:
            lines.append("\nplots: " + ", ".join(pngs))
    head = ["# sarclear benchmarks", ""]
    if env:
        head += [f"- device: {env['device']}", f"- date: {env['date']}", f"- git: {env['git_revision']}",
                 f"- versions: Python {env['python']}, torch {env['torch']} (CUDA {env['torch_cuda']}), "
                 f"GDAL {env['gdal']}, numpy {env['numpy']}",
                 f"- CPU: {env['cpu']} ({env['cpu_cores_usable']} cores usable), "
                 f"memory {(env.get('memory_bytes') or 0) / 2**30:.0f} GiB, load average at start "
                 f"{env.get('load_average')}",
                 f"- run: `{' '.join(sys.argv)}`"]
    return "\n".join(head + lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p, quick_help="tiny sizes and few iterations, minutes on any machine")
    p.add_argument("--only", type=lambda s: s.split(","), default=None, help="run only these (results names)")
    p.add_argument("--skip", type=lambda s: s.split(","), default=[], help="skip these (results names)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script before it is stopped")
    args = p.parse_args(argv)
    device = common.resolve(args.device)
    out_dir = args.out or common.default_out_dir(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [(n, a) for n, a in plan(device.type == "cuda", args.quick)
             if (args.only is None or n in args.only) and n not in args.skip]
    statuses: dict[str, str] = {}
    for name, (script, *rest) in steps:
        cmd = [sys.executable, str(HERE / script), *rest, "--device", str(device), "--out", str(out_dir),
               "--workdir", str(args.workdir)]
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        with (out_dir / f"{name}.log").open("w") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=common.child_env(),
                                    text=True)
            timer = threading.Timer(args.timeout, proc.kill) if args.timeout else None
            if timer:
                timer.start()
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            code = proc.wait()
            if timer:
                timer.cancel()
        statuses[name] = f"exit status {code}" if code else "ok"
        print(f"=== {name}: {statuses[name]} in {time.perf_counter() - t0:.0f} s", flush=True)
    summary = summary_markdown(out_dir, [n for n, _ in steps], statuses)
    (out_dir / "summary.md").write_text(summary)
    print("\n" + summary)
    print(f"results: {out_dir} (summary.md, *.json, *.png, *.log)")
    failed = [n for n, s in statuses.items() if s != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
