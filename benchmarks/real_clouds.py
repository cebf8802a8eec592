"""Real clouds against a real clear acquisition of the same place: how each bundled model, run
as users run it (``sarclear decloud`` defaults: detected mask), compares with the cloudy input,
mean fill and normalized-convolution fill of the same mask.

Scene: SSL4EO-S12 location 0000200 (resources/samples), cloudy on 2020-08-23 (S1 of 2020-09-03),
clear on 2020-06-04. The two dates are 80 days apart, so part of every error is seasonal change;
the comparison between methods is what counts. Scored over the pixels the detected mask hides.

    python benchmarks/real_clouds.py [--model PATH ...] [--out docs/quality]

Writes ``real_clouds.json`` and ``real_clouds.md`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess  # nosec B404 - runs git for the revision only
import tempfile
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from sarclear.bands import S2_PAPER10
from sarclear.fill import mean_fill, normalized_convolution
from sarclear.inference import DecloudOptions, decloud
from sarclear.io import open_optical
from sarclear.resources import bundled_models
from sarclear.tiling import Window

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "resources" / "samples" / "ssl4eo-s12"
CLOUDY = BASE / "s2c" / "0000200" / "20200823T054639_20200823T055618_T43RCP"
CLEAR = BASE / "s2c" / "0000200" / "20200604T054639_20200604T054831_T43RCP"
S1 = BASE / "s1" / "0000200" / "S1A_IW_GRDH_1SDV_20200903T131212_20200903T131237_034195_03F8F5_AC1C"


def _read(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    stack = open_optical(folder, S2_PAPER10)
    raw, ok = stack.open().read(Window(0, 0, stack.grid.width, stack.grid.height))
    return raw / 10_000, ok


def _scores(pred: np.ndarray, ref: np.ndarray, where: np.ndarray) -> dict[str, float]:
    d = (pred - ref)[:, where]
    p, r = pred[:, where], ref[:, where]
    cos = (p * r).sum(0) / np.maximum(np.linalg.norm(p, axis=0) * np.linalg.norm(r, axis=0), 1e-12)
    return {"rmse": float(np.sqrt((d**2).mean())), "mae": float(np.abs(d).mean()),
            "sam_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="model file (default: every bundled model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality"))
    args = parser.parse_args()
    models = [Path(m) for m in args.model] if args.model else bundled_models()
    x, ok_x = _read(CLOUDY)
    ref, ok_r = _read(CLEAR)
    rows, mask = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            out = Path(tmp) / f"{model.stem}.tif"
            decloud(CLOUDY, S1, model, out, maps=False, options=DecloudOptions(overwrite=True))
            rows[model.stem] = gdal.Open(str(out)).ReadAsArray() / 10_000
            if mask is None:
                mask = gdal.Open(str(out.with_name(f"{out.stem}_mask.tif"))).ReadAsArray()
    hidden = (mask > 0) & (mask < 255) & ok_x & ok_r
    clear = torch.from_numpy((mask == 0).astype(np.float64))[None, None]
    xt = torch.from_numpy(x)[None]
    for name, fill in (("mean fill", mean_fill), ("normalized convolution", normalized_convolution)):
        rows[f"{name} (same mask)"] = torch.where(clear > 0, xt, fill(xt, clear))[0].numpy()
    rows["cloudy input"] = x
    table = {k: _scores(v, ref, hidden) for k, v in rows.items()}
    rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,  # nosec B603 B607
                         text=True, check=False).stdout.strip()
    record = {"scene": "SSL4EO-S12 0000200: cloudy 2020-08-23 vs clear 2020-06-04",
              "hidden_share": float(hidden.mean()), "hidden_pixels": int(hidden.sum()),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "revision": rev, "command": "python benchmarks/real_clouds.py", "scores": table}
    lines = [f"Real clouds, {record['scene']} (80 days apart: part of every error is seasonal change); "
             f"{100 * record['hidden_share']:.0f} % of the scene hidden by the detected mask; "
             f"`{record['command']}`, {record['date']}, revision `{rev}`.", "",
             "| method | RMSE under the mask | MAE | SAM ° |", "|---|---|---|---|"]
    for k, s in sorted(table.items(), key=lambda kv: kv[1]["rmse"]):
        lines.append(f"| {k} | {s['rmse']:.4f} | {s['mae']:.4f} | {s['sam_deg']:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_clouds.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "real_clouds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
