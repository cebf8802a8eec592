"""Shared helpers of the benchmark scripts: where the machine and software are described,
how time and memory are measured, how results are stored and printed.

A *result file* is one JSON document per script run, ``<results dir>/<name>.json``::

    {"benchmark": "model_throughput", "env": {device, versions, command, date, git...},
     "args": {...}, "rows": [...], "tables": {"title": "markdown table", ...}, ...}

The results directory defaults to ``benchmarks/results/<device>-<date>/`` (ignored by git:
numbers reach BENCHMARKS.md only when someone pastes them there with their context).

Timing on CUDA uses CUDA events around a loop of iterations (the host does not wait for
the GPU inside the loop); on the CPU, ``time.perf_counter``. Every measurement has a
warm-up and reports the median of its repeats. Memory is measured by ``memory_use``.

Importing this module puts this checkout's ``library/`` first on ``sys.path``, so the
scripts always measure the code they sit beside (not another installed sarclear).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
SAMPLES = ROOT / "resources" / "samples"
DEFAULT_WORKDIR = Path(os.environ.get("SARCLEAR_BENCH_WORKDIR", "/tmp/sarclear-bench"))

if str(ROOT / "library") not in sys.path:
    sys.path.insert(0, str(ROOT / "library"))
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # no .aux.xml files beside inputs


def child_env() -> dict[str, str]:
    """Environment for child processes: this checkout's library first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "library"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("GDAL_PAM_ENABLED", "NO")
    return env


# --------------------------------------------------------------------------- environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


#: what the benchmarks write: a change there does not change the code that measures
RESULTS = ("docs/quality", "docs/QUALITY.md", "docs/benchmarks", "BENCHMARKS.md")


def git_revision() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files other than the benchmarks'
    results (:data:`RESULTS`) have changed: benchmarks run one after another in one checkout
    rewrite those, and the next one's code is still the commit's."""
    rev = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in RESULTS))
    return rev + ("-dirty" if changed else "")


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def device_name(device: str | Any) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU: <model> (N cores)'."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU: {_cpu_model()} ({cpu_cores()} cores)"


def device_slug(device: str | Any) -> str:
    """A file-name-safe short name of the device: ``nvidia-h100-80gb-hbm3``, ``cpu-2cores``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = f"cpu-{cpu_cores()}cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def env_info(device: str | Any = "cpu") -> dict[str, Any]:
    """Everything a reader needs to reproduce or judge a measurement."""
    import numpy as np
    import torch
    from osgeo import gdal

    dev = torch.device(device)
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "git_revision": git_revision(),
        "device": device_name(dev),
        "device_type": dev.type,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "gdal": gdal.__version__,
        "gdal_cachemax_bytes": gdal.GetCacheMax(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_cores_usable": cpu_cores(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": _memory_total_bytes(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_bytes": props.total_memory, "multiprocessors": props.multi_processor_count,
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                       "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                       "cudnn_benchmark": torch.backends.cudnn.benchmark}
    return info


def resolve(device: str) -> Any:
    """The torch device for ``auto``/``cpu``/``cuda``, through the library's own choice."""
    from sarclear.devices import resolve_device

    return resolve_device(device)


# --------------------------------------------------------------------------- timing


def synchronize(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _time_iterations(fn: Callable[[], Any], device: Any, iters: int) -> float:
    """Seconds for ``iters`` calls of ``fn``, the device's queue drained at the end."""
    import torch

    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return time.perf_counter() - t0


def benchmark(fn: Callable[[], Any], device: Any, *, warmup: int = 3, repeats: int = 5, min_time: float = 1.0,
              iters: int | None = None, max_iters: int = 10_000) -> dict[str, Any]:
    """Time ``fn``: ``warmup`` untimed calls, then ``repeats`` timed loops of ``iters``
    calls each (by default as many as fill about ``min_time`` seconds).

    Returns seconds per call: ``median`` (the figure to quote), ``min``, ``max``, and
    ``iters``, ``repeats``.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    if iters is None:
        probe = _time_iterations(fn, device, 1)
        iters = max(1, min(max_iters, math.ceil(min_time / max(probe, 1e-9)))) if min_time > 0 else 1
    per_call = [_time_iterations(fn, device, iters) / iters for _ in range(max(1, repeats))]
    return {"median": statistics.median(per_call), "min": min(per_call), "max": max(per_call),
            "iters": iters, "repeats": len(per_call)}


class StepClock:
    """Timestamps of a loop's steps, taken by a progress callback: throughput over the
    steps after a warm-up, excluding start-up and shut-down."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, *_: Any) -> None:
        self.times.append(time.perf_counter())

    def rate(self, warmup_steps: int, items_per_step: int) -> float | None:
        """Items per second between step ``warmup_steps`` and the last step."""
        if len(self.times) <= warmup_steps or warmup_steps < 1:
            return None
        dt = self.times[-1] - self.times[warmup_steps - 1]
        return (len(self.times) - warmup_steps) * items_per_step / dt if dt > 0 else None


# --------------------------------------------------------------------------- results


def today() -> str:
    return _dt.date.today().strftime("%Y%m%d")


def default_out_dir(device: Any) -> Path:
    """``benchmarks/results/<device>-<date>/``, shared by the scripts of one run_all."""
    return RESULTS_DIR / f"{device_slug(device)}-{today()}"


def save_results(name: str, payload: dict[str, Any], out_dir: Path, device: Any) -> Path:
    """Write ``payload`` with the environment as ``<out_dir>/<name>.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    doc = {"benchmark": name, "env": env_info(device), **payload}
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default))
    os.replace(tmp, path)
    return path


def publish(name: str, result: dict[str, Any], out_dir: Path, device: Any) -> Path:
    """End of every benchmark: save ``result`` (see :func:`save_results`), print its tables
    and notes, and say where the JSON went."""
    path = save_results(name, result, out_dir, device)
    print_tables(result["tables"], result["notes"])
    print(f"\nresults: {path}")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return str(value)


def fmt(value: Any) -> str:
    """A table cell: None -> '-', booleans as yes/no, numbers with sensible digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        a = abs(value)
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.0f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        if a == 0:
            return "0"
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub markdown table of ``rows`` with ``columns`` given as (key, header)."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def print_tables(tables: dict[str, str], notes: Sequence[str] = ()) -> None:
    for title, table in tables.items():
        print(f"\n### {title}\n\n{table}")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    sys.stdout.flush()


def mib(n: float | None) -> float | None:
    return None if n is None else n / 2**20


def gib(n: float | None) -> float | None:
    return None if n is None else n / 2**30


def target_check(value: float | None, target: float, *, higher_is_better: bool = True) -> bool | None:
    """Whether ``value`` meets ``target`` (None when not measured)."""
    if value is None:
        return None
    return value >= target if higher_is_better else value <= target


def parse_list(text: str, kind: type = int) -> list:
    """'1,2,4' -> [1, 2, 4]."""
    return [kind(v) for v in text.split(",") if v.strip()]


def add_common_arguments(parser, *, quick_help: str = "tiny sizes and few iterations (CPU smoke run)") -> None:
    """--device, --out, --workdir, --quick: the options every script has."""
    parser.add_argument("--device", default="auto", help="auto (CUDA if usable), cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default benchmarks/results/<device>-<date>/)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help=f"where generated inputs are cached and outputs written (default {DEFAULT_WORKDIR})")
    parser.add_argument("--quick", action="store_true", help=quick_help)


def setup_logging(verbose: bool = False) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def write_record(out: Path, name: str, record: dict[str, Any], report: Callable[[dict[str, Any]], str],
                 argv: Sequence[str] | None, started: float) -> str:
    """Stamp a quality benchmark's ``record`` with the date, the git revision, its run time since
    ``started`` (``time.perf_counter``) and the exact command (``argv``, None: this process's),
    then write it as ``name``.json and its ``report`` as ``name``.md under ``out``; return the report."""
    args = sys.argv[1:] if argv is None else list(argv)
    record.update(date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), revision=git_revision(),
                  seconds=time.perf_counter() - started, command=" ".join([f"python benchmarks/{name}.py", *args]))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    text = report(record)
    (out / f"{name}.md").write_text(text)
    return text
