"""Train the two bundled gap-fill models in sequence and copy them into resources/models:
the MS-only twin first (resources/models/fill-ms_train.yaml), then the SAR model, which
starts from the twin (resources/models/fill_train.yaml); then each is fine-tuned under real
cloud layers (``*_layers_train.yaml``: 40 % of the items under the clouds of real cloudy
train-split scenes, :mod:`sarclear.cloud_layers`), and once more with a random radiometric
level per item on top (``*_level_train.yaml``, :func:`sarclear.fill_data.jitter_level`), so that
an L1C scene is not pulled towards the L2A level of every S1+S2 training pair.

    python scripts/train_fill_models.py --data ../shared/data/train            # both, ~1 h each on 2 cores
    python scripts/train_fill_models.py --data ../shared/data/train --resume   # continue after an interruption

Each run is the same as ``sarclear train --config <yaml> --data <data> --out runs/<name>``.
What a run hands on (to the next stage, or to resources/models) follows from its config: a run
under real cloud layers (``real_layer_fraction`` > 0) hands on its last EMA weights
(``model.safetensors``), since its validation has synthetic clouds only and its "best" would
favour the start, before the real clouds were learnt; the first two runs hand on their
``best.safetensors``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from sarclear.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
#: (run, the run it starts from, the file it becomes: None for a stage that is fine-tuned further)
RUNS = (("fill-ms", None, None), ("fill", "fill-ms", None),
        ("fill-ms_layers", "fill-ms", None), ("fill_layers", "fill", None),
        ("fill-ms_level", "fill-ms_layers", "sarclear-fill-ms.safetensors"),
        ("fill_level", "fill_layers", "sarclear-fill.safetensors"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    p.add_argument("--runs", default=str(ROOT / "runs"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-copy", action="store_true", help="leave resources/models as it is")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    handed_on: dict[str, str] = {}  # run -> the model file it hands on (see above)
    for name, start, shipped in RUNS:
        overrides = {"data": args.data, "out": str(Path(args.runs) / name)}
        if start:
            overrides["init"] = handed_on[start]
        config = TrainConfig.from_file(ROOT / "resources" / "models" / f"{name}_train.yaml", **overrides)
        summary = train(config, resume=args.resume)
        logging.info("%s: best validation %s; best checkpoint %s", name, summary["best"], summary["best_checkpoint"])
        handed_on[name] = summary["model"] if config.real_layer_fraction > 0 else summary["best_checkpoint"]
        if not handed_on[name]:
            raise SystemExit(f"{name} saved no best model (its validation split is empty?); nothing to hand on")
        if shipped and not args.no_copy:
            shutil.copyfile(handed_on[name], ROOT / "resources" / "models" / shipped)


if __name__ == "__main__":
    main()
