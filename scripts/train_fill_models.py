"""Train the two bundled gap-fill models in sequence and copy them into resources/models:
the MS-only twin first (resources/models/fill-ms_train.yaml), then the SAR model, which
starts from the twin (resources/models/fill_train.yaml).

    python scripts/train_fill_models.py --data ../shared/data/train            # both, ~30 min each on 2 cores
    python scripts/train_fill_models.py --data ../shared/data/train --resume   # continue after an interruption

Each run is the same as ``sarclear train --config <yaml> --data <data> --out runs/<name>``;
the model shipped is each run's ``best.safetensors`` (the EMA weights at the evaluation with
the lowest validation RMSE under the mask).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from sarclear.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
RUNS = (("fill-ms", "sarclear-fill-ms.safetensors"), ("fill", "sarclear-fill.safetensors"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    p.add_argument("--runs", default=str(ROOT / "runs"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-copy", action="store_true", help="leave resources/models as it is")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name, shipped in RUNS:
        out = Path(args.runs) / name
        overrides = {"data": args.data, "out": str(out)}
        if name == "fill":
            overrides["init"] = str(Path(args.runs) / "fill-ms" / "best.safetensors")
        config = TrainConfig.from_file(ROOT / "resources" / "models" / f"{name}_train.yaml", **overrides)
        summary = train(config, resume=args.resume)
        logging.info("%s: best validation %s; best checkpoint %s", name, summary["best"], summary["best_checkpoint"])
        if not args.no_copy:
            shutil.copyfile(summary["best_checkpoint"], ROOT / "resources" / "models" / shipped)


if __name__ == "__main__":
    main()
