"""``sarclear train``: its arguments and the command (one call of the trainer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_args import _NONNEG_INT, _POSITIVE, _POSITIVE_INT, _Progress
from .errors import InputError


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``sarclear train`` options; each overrides the --config file."""
    p.add_argument("--config", metavar="FILE", help="YAML or JSON training config (options below override it)")
    p.add_argument("--data", metavar="PATH", help="manifest .csv or SEN12MS-CR / SEN1-2-style folder")
    p.add_argument("--out", metavar="DIR", help="run folder (checkpoints, history, curves, model.safetensors)")
    p.add_argument("--preset", choices=("fill", "inpaint", "paper", "lite", "fill-ms", "inpaint-ms",
                                          "paper-ms", "lite-ms"),
                   help="fill: the gap-fill generator (the bundled models); inpaint: the same, blind to the "
                        "hidden pixels; paper, lite: the paper's cGAN "
                        "(default paper); -ms: the MS-only twin")
    p.add_argument("--ms-only", action="store_true", default=None,
                   help="train the MS-only twin (for the paper's presets: Opt-cGAN, the paper's baseline)")
    p.add_argument("--init", metavar="MODEL", help="fill preset: start from this gap-fill model's weights")
    p.add_argument("--max-minutes", type=float, help="stop (checkpoint, export) after this much wall time")
    p.add_argument("--bands", choices=("paper10", "all13"))
    p.add_argument("--epochs", type=_POSITIVE_INT)
    p.add_argument("--batch-size", type=_POSITIVE_INT)
    p.add_argument("--lr", type=_POSITIVE, help="learning rate (default 2e-4, see the docs on the paper's 2^-4)")
    p.add_argument("--crop", type=_POSITIVE_INT, help="training crop size in pixels")
    p.add_argument("--samples-per-epoch", type=_NONNEG_INT)
    p.add_argument("--checkpoint-every", type=_NONNEG_INT, metavar="STEPS")
    p.add_argument("--eval-every", type=_NONNEG_INT, metavar="STEPS")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"))
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile G and D")
    p.add_argument("--workers", type=_NONNEG_INT, help="data loader processes")
    p.add_argument("--tensorboard", action="store_true", default=None)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--compare-with", metavar="RUN_DIR", action="append", default=[],
                   help="another run whose history is drawn in this run's curves (e.g. the other twin)")


def _train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, read_options, train

    options = {k: getattr(args, k) for k in ("data", "out", "preset", "ms_only", "bands", "epochs", "batch_size",
                                             "lr", "crop", "samples_per_epoch", "checkpoint_every", "eval_every",
                                             "seed", "device", "precision", "compile", "workers", "tensorboard",
                                             "init", "max_minutes")}
    if args.config:
        config = TrainConfig.from_file(args.config, **options)
    else:
        config = TrainConfig.from_dict({k: v for k, v in options.items() if v is not None})
    # what the user set explicitly: on --resume only these change the run's own settings
    explicit = {k for k, v in options.items() if v is not None}
    explicit |= set(read_options(args.config)) if args.config else set()
    if not config.data and not args.resume:
        raise InputError("give the training data with --data (or in --config)")  # the CLI's own message
    compare = {}
    for run in args.compare_with:
        hist = Path(run) / "history.json"
        if hist.is_file():
            compare[Path(run).name] = json.loads(hist.read_text())
    bar = _Progress(not args.quiet, "train")

    def progress(done: int, total: int, stats: dict) -> None:  # the bar shows the ETA
        if "loss_g" in stats:
            bar.update(done, total, "steps", epoch=f"{stats['epoch']:.2f}", loss_g=f"{stats['loss_g']:.3f}",
                       loss_d=f"{stats['loss_d']:.3f}", samples_s=f"{stats['samples_per_s']:.1f}")
        else:
            bar.update(done, total, "steps", epoch=f"{stats['epoch']:.2f}", l1=f"{stats['l1']:.4f}",
                       nll=f"{stats['nll']:.3f}")

    try:
        summary = train(config, resume=args.resume, progress=progress, compare=compare, overrides=explicit)
    finally:
        bar.close()
    if "rank" not in summary:  # the gap-fill trainer
        out = Path(summary["out"])
        print(f"model: {summary['model']}\ncurves: {out / 'curves.png'}\nhistory: {out / 'history.csv'}, "
              f"{out / 'losses.csv'}")
        best = summary["best"]
        if best:
            print(f"best validation at step {best['step']}: RMSE under the mask {best['model_all']:.4f} "
                  f"(normalized convolution {best['nc_all']:.4f}, mean fill {best['mean_all']:.4f}); "
                  f"90 % interval coverage {best['coverage90']:.2f}")
        print(f"best checkpoint: {summary['best_checkpoint'] or 'none kept'}")
        return 0
    if summary["rank"] == 0:
        print(f"model: {summary['model']}\ncurves: {Path(summary['out']) / 'curves.png'}\n"
              f"history: {Path(summary['out']) / 'history.csv'}")
        for rec in summary["history"][-2:]:
            print(f"{rec['split']}: RMSE {rec['rmse']:.4f} SAM {rec['sam_deg']:.2f} deg "
                  f"(cloudy input RMSE {rec['cloudy_rmse']:.4f} SAM {rec['cloudy_sam_deg']:.2f} deg)")
        if summary["best"]:
            print(f"best checkpoint: {summary['best_checkpoint']} (epoch {summary['best']['epoch']}, "
                  f"{summary['best']['split']} RMSE {summary['best']['rmse']:.4f})")
    return 0


#: library option (the ``option`` field of a SarclearError) -> the flag that sets it.
