"""Kill a training run with SIGKILL many times at random moments, resume it each time, and
check that it ends with exactly the weights of an uninterrupted run (issue: reliability).

    python scripts/kill_resume.py [--kills 20] [--work /tmp/sarclear-kills] [--seed 1]

Each kill lands at a random moment after the run made progress (during a step, while a
checkpoint or the history is being written, during evaluation or start-up). Prints one row
per kill and the final comparison; exits 1 if any tensor differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from sarclear.training import latest_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"data": str(ROOT / "resources/samples/train_manifest.csv"), "preset": "lite", "crop": 128,
          "batch_size": 2, "samples_per_epoch": 16, "epochs": 3, "checkpoint_every": 1, "eval_max_pairs": 1,
          "keep_checkpoints": 2, "seed": 5}


def _step(out: Path) -> int:
    last = latest_checkpoint(out)
    return int(last.stem.split("-")[1]) if last else 0


def _run(out: Path, resume: bool) -> subprocess.Popen:
    cfg = out.parent / f"{out.name}.json"
    cfg.write_text(json.dumps({**CONFIG, "out": str(out)}))
    cmd = [sys.executable, "-m", "sarclear", "-q", "train", "--config", str(cfg)] + (["--resume"] if resume else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--work", default="/tmp/sarclear-kills")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total_steps = CONFIG["samples_per_epoch"] // CONFIG["batch_size"] * CONFIG["epochs"]

    t0 = time.time()
    ref = _run(work / "straight", resume=False)
    _, err = ref.communicate()
    if ref.returncode != 0:
        print(err)
        return 1
    print(f"uninterrupted run: {total_steps} steps in {time.time() - t0:.0f} s")

    out = work / "killed"
    print(f"{'kill':>4} {'step before':>11} {'killed after':>12} {'step after':>10}")
    kills = 0
    while kills < args.kills and _step(out) < total_steps:
        before = _step(out)
        proc = _run(out, resume=kills > 0)
        start = time.time()
        while proc.poll() is None and _step(out) <= before and time.time() - start < 300:
            time.sleep(0.01)  # wait for progress, so every kill interrupts real work
        delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        if proc.poll() is not None:  # it finished first
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        print(f"{kills:>4} {before:>11} {time.time() - start:>11.2f}s {_step(out):>10}")
    final = _run(out, resume=True)
    _, err = final.communicate()
    if final.returncode != 0:
        print(err)
        return 1
    a, b = load_file(str(latest_checkpoint(work / "straight"))), load_file(str(latest_checkpoint(out)))
    differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    same_model = all(torch.equal(x, y) for x, y in zip(load_file(str(work / "straight/model.safetensors")).values(),
                                                      load_file(str(out / "model.safetensors")).values()))
    print(f"\n{kills} SIGKILLs; final step {_step(out)} of {total_steps}; {len(a)} tensors compared "
          f"(G, D, EMA, both Adam states, RNG): {'all identical' if not differ else f'{len(differ)} differ'}; "
          f"exported model {'identical' if same_model else 'DIFFERENT'}")
    return 0 if not differ and same_model else 1


if __name__ == "__main__":
    sys.exit(main())
