"""The ``sarclear`` command line: argument parsing and progress bars only; every command
calls one library function. Errors the user can fix are printed as one line (exit 2)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import Cancelled, InputError, SarclearError

log = logging.getLogger("sarclear")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _number(kind: type, *, low: float | None = None, above: float | None = None, high: float | None = None):
    """An argparse type: a finite ``kind`` (int or float) >= ``low`` or > ``above``, and
    <= ``high``; bad values are refused by argparse with a one-line message, before any work."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{text} is too small: it must be {low:g} or more")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{text} is too small: it must be more than {above:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is too large: it must be {high:g} or less")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE_INT = _number(int, low=1)
_NONNEG_INT = _number(int, low=0)
_POSITIVE = _number(float, above=0)
_NONNEG = _number(float, low=0)
_FINITE = _number(float)
_FRACTION = _number(float, low=0, high=1)


class _Progress:
    """Maps the library's progress callback onto a tqdm bar."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc, self.bar = enabled, desc, None

    def __call__(self, done: int, total: int, what: str) -> None:
        self.update(done, total, what)

    def update(self, done: int, total: int, unit: str, **postfix: object) -> None:
        """Move the bar to ``done`` of ``total``; ``postfix``: figures shown after it."""
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True)
        self.bar.n = done
        if postfix:
            self.bar.set_postfix(postfix)  # refreshes the bar
        else:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _add_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ms-bands", type=_csv, metavar="B2,B3,...",
                   help="names of the optical bands in file order, for rasters whose bands carry no names")
    p.add_argument("--ms-scale", type=_POSITIVE, metavar="DN",
                   help="optical digital numbers per unit reflectance (default: 10000 for integer data, "
                        "1 for floating-point data that is already reflectance)")
    p.add_argument("--ms-offset", type=_FINITE, metavar="DN",
                   help="added to the digital numbers before scaling (processing baseline >= 04.00: -1000; "
                        "default: as the input declares it (GDAL offset, SAFE metadata, product id), else 0)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sarclear", description="Remove clouds and haze from Sentinel-2 images with Sentinel-1 SAR "
        "(SAR-Opt-cGAN, Grohnfeldt et al. 2018).")
    parser.add_argument("--version", action="version", version=f"sarclear {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("decloud", help="remove clouds from a Sentinel-2 raster using Sentinel-1 SAR",
                       description="Decloud an optical raster with a trained model. Writes the reconstruction "
                       "(GeoTIFF, the input's data type and georeference) and, beside it, RMSE and SAM maps with "
                       "a metrics JSON: errors against --reference, or input-vs-output change maps without one.")
    p.add_argument("--ms", nargs="+", required=True, metavar="PATH",
                   help="cloudy Sentinel-2 raster: one multi-band file, one file per band, or a folder")
    p.add_argument("--sar", nargs="+", metavar="PATH",
                   help="Sentinel-1 raster(s) (VV, VH; dB or linear power), any grid or CRS: warped onto the "
                        "optical grid")
    p.add_argument("--model", metavar="FILE", help="model file (.safetensors); default: the bundled mask-aware SAR "
                   "model (sarclear-fill), else the demo model")
    p.add_argument("--out", required=True, metavar="FILE", help="output GeoTIFF")
    p.add_argument("--reference", nargs="+", metavar="PATH", help="cloud-free reference to score against")
    p.add_argument("--mask", metavar="auto|none|FILE", default="auto",
                   help="cloud mask: auto (default: detect clouds and shadows, written to <out>_mask.tif), none "
                        "(no mask: a plain generator changes every pixel), or a raster: 0 = clear, > 0 = cloud; "
                        "float = cloud probability. Pixels the mask calls clear are kept exactly")
    p.add_argument("--mask-method", choices=("auto", "csmask", "rules"), default="auto",
                   help="detector for --mask auto: ukis-csmask's CNN (csmask), the spectral rules, or auto "
                        "(csmask when installed)")
    p.add_argument("--adapt", action="store_true",
                   help="first fit a copy of the model to this scene's clear pixels (synthetic clouds drawn over "
                        "them), then decloud with it")
    p.add_argument("--adapt-time", type=_NONNEG, default=180.0, metavar="SECONDS",
                   help="time budget of --adapt (default 180)")
    p.add_argument("--mask-feather", type=_NONNEG, default=0.0, metavar="PX",
                   help="pixels inside the mask over which the reconstruction fades in (default 0)")
    p.add_argument("--aoi", type=_FINITE, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="area of interest in the optical raster's CRS")
    p.add_argument("--sar-channels", type=_csv, metavar="VV,VH",
                   help="names of the SAR bands in file order, for rasters whose bands carry no names")
    p.add_argument("--ms-acquisition", metavar="DATE|ID",
                   help="for a --ms folder holding several acquisitions: the one to use (date, sensing time or "
                        "product id, as in its path)")
    p.add_argument("--sar-acquisition", metavar="DATE|ID", help="the same for a --sar folder")
    p.add_argument("--sar-units", choices=("auto", "db", "linear"), default="auto",
                   help="SAR values in dB or linear power (default: detected)")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--batch-size", type=_POSITIVE_INT, metavar="N",
                   help="tiles per batch (default 4 on CPU, 32 on CUDA)")
    p.add_argument("--overlap", type=_NONNEG_INT, metavar="PX",
                   help="overlap of neighbouring tiles (default: tile / 4)")
    p.add_argument("--cog", action="store_true", help="write a Cloud Optimized GeoTIFF with overviews")
    p.add_argument("--overviews", action="store_true", help="add internal overviews to the GeoTIFF")
    p.add_argument("--compress", choices=("deflate", "zstd", "lzw", "none"), default="deflate",
                   help="GeoTIFF compression (default deflate; zstd is faster, lzw/deflate are read everywhere)")
    p.add_argument("--no-maps", action="store_true", help="write only the reconstruction")
    p.add_argument("--figure", metavar="PNG", help="also write a figure (quick-looks, maps, band-wise RMSE, spectra)")
    _add_io_options(p)

    p = sub.add_parser("clouds", help="add synthetic clouds, haze and shadows to a clear raster",
                       description="Corrupt a clear Sentinel-2 raster with Perlin-noise clouds, haze and shadows "
                       "(reproducible from --seed); also writes the cloud opacity.")
    p.add_argument("--in", dest="clear", nargs="+", required=True, metavar="PATH", help="clear Sentinel-2 raster")
    p.add_argument("--out", required=True, metavar="FILE", help="cloudy output GeoTIFF")
    p.add_argument("--opacity", metavar="FILE", help="cloud opacity output GeoTIFF (default: <out>_opacity.tif)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coverage", type=_FRACTION, nargs=2, metavar=("MIN", "MAX"), default=(0.3, 0.5),
                   help="fraction under thick cloud, drawn uniformly (default 0.3 0.5)")
    p.add_argument("--haze", type=_FRACTION, nargs=2, metavar=("MIN", "MAX"), default=(0.1, 0.3),
                   help="haze opacity at 490 nm (default 0.1 0.3)")
    p.add_argument("--shadow", type=_FRACTION, nargs=2, metavar=("MIN", "MAX"), default=(0.3, 0.5),
                   help="darkening in cloud shadows (default 0.3 0.5; 0 0 for none)")
    p.add_argument("--cloud-size", type=_POSITIVE, default=100.0, metavar="PX",
                   help="size of the largest cloud structures in pixels (default 100)")
    _add_io_options(p)

    p = sub.add_parser("evaluate", help="score a reconstruction against a cloud-free reference",
                       description="RMSE, SAM, MAE, PSNR and SSIM on reflectance; writes RMSE/SAM maps, a metrics "
                       "JSON and optionally a paper-style figure.")
    p.add_argument("--prediction", nargs="+", required=True, metavar="PATH")
    p.add_argument("--reference", nargs="+", required=True, metavar="PATH")
    p.add_argument("--out-prefix", required=True, metavar="PREFIX",
                   help="writes PREFIX_rmse.tif, PREFIX_sam.tif, PREFIX_metrics.json")
    p.add_argument("--bands", type=_csv, help="bands to score (default: the paper's ten)")
    p.add_argument("--figure", metavar="PNG", help="also write a figure")
    p.add_argument("--cloudy", nargs="+", metavar="PATH", help="the cloudy input, for the figure")
    p.add_argument("--sar", nargs="+", metavar="PATH", help="the SAR input, for the figure")
    p.add_argument("--sar-channels", type=_csv, metavar="VV,VH",
                   help="names of the SAR bands in file order (default: found as decloud finds them)")
    _add_io_options(p)

    p = sub.add_parser("models", help="list model presets (parameter counts) and bundled models",
                       description="Without arguments, list presets and bundled models; with a file, show its config.")
    p.add_argument("file", nargs="?", help="a model file to describe")

    p = sub.add_parser("train", help="train a model: gap-fill (fill) or SAR-Opt-cGAN (paper, lite), or a twin",
                       description="Train the paper's cGAN on S1/S2 pairs with synthetic clouds made on the fly. "
                       "Checkpoints atomically; --resume continues exactly. Several GPUs or nodes: launch with "
                       "torchrun (DistributedDataParallel).")
    _add_train_arguments(p)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="sarclear: %(message)s", stream=sys.stderr)


def _decloud(args: argparse.Namespace) -> int:
    from .inference import DecloudOptions, decloud
    from .resources import default_model

    model = args.model or default_model()
    opts = DecloudOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                          overlap=args.overlap, aoi=tuple(args.aoi) if args.aoi else None, cloud_mask=args.mask,
                          mask_method=args.mask_method, mask_feather=args.mask_feather, ms_bands=args.ms_bands,
                          sar_channels=args.sar_channels, adapt=args.adapt, adapt_seconds=args.adapt_time,
                          sar_units=args.sar_units, ms_scale=args.ms_scale, ms_offset=args.ms_offset,
                          ms_acquisition=args.ms_acquisition, sar_acquisition=args.sar_acquisition,
                          overwrite=args.overwrite, cog=args.cog, overviews=args.overviews, compress=args.compress)
    bar = _Progress(not args.quiet, "decloud")
    try:
        result = decloud(args.ms, args.sar, model, args.out, reference=args.reference, maps=not args.no_maps,
                         figure=args.figure, options=opts, progress=bar)
    finally:
        bar.close()
    for note in result.notes:
        print(f"note: {note}{_note_hint(note)}", file=sys.stderr)
    print(f"reconstruction: {result.output}  ({result.window.width} x {result.window.height} px, "
          f"{result.tiles} tiles, {result.seconds:.1f} s on {result.device})")
    for name, path in result.maps.items():
        print(f"{name} map: {path}")
    if result.metrics is not None:
        m = result.metrics
        label = "against the reference" if args.reference else "change, input vs output"
        print(f"metrics ({label}): RMSE {m['rmse']:.4f}  SAM {m['sam_deg']:.2f} deg  MAE {m['mae']:.4f}  "
              f"PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.3f}  -> {result.metrics_path}")
    if result.figure:
        print(f"figure: {result.figure}")
    return 0


def _clouds(args: argparse.Namespace) -> int:
    from .clouds import CloudConfig
    from .synthetic import cloud_raster

    opacity = args.opacity or str(Path(args.out).with_suffix("")) + "_opacity.tif"
    config = CloudConfig(coverage=tuple(args.coverage), haze=tuple(args.haze), shadow=tuple(args.shadow),
                         cell_px=args.cloud_size)
    bar = _Progress(not args.quiet, "clouds")
    try:
        stats = cloud_raster(args.clear, args.out, opacity_out=opacity, config=config, seed=args.seed,
                             overwrite=args.overwrite, progress=bar, order=args.ms_bands, scale=args.ms_scale,
                             offset=args.ms_offset)
    finally:
        bar.close()
    print(f"cloudy raster: {args.out}\nopacity: {opacity}\nthick cloud over {100 * stats['thick_cloud_fraction']:.1f} %"
          f" of the scene, mean opacity {stats['mean_opacity']:.3f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .bands import S2_PAPER10
    from .evaluation import evaluate, json_safe
    from .outputs import GEOTIFF, JSON, PNG, OutputSet

    bands = tuple(args.bands or S2_PAPER10)
    prefix = args.out_prefix
    paths = {"rmse": f"{prefix}_rmse.tif", "sam": f"{prefix}_sam.tif", "metrics": f"{prefix}_metrics.json"}
    # the maps, the metrics and the figure are one set, checked before any work
    outputs = OutputSet([args.prediction, args.reference, args.cloudy, args.sar], overwrite=args.overwrite)
    staged = {name: outputs.add(p, formats=JSON if name == "metrics" else GEOTIFF) for name, p in paths.items()}
    figure = outputs.add(args.figure, formats=PNG) if args.figure else None
    with outputs:
        metrics = evaluate(args.prediction, args.reference, bands, rmse_path=staged["rmse"], sam_path=staged["sam"],
                           metrics_path=staged["metrics"], scale=args.ms_scale, offset=args.ms_offset,
                           reference_order=args.ms_bands, overwrite=True)
        if figure is not None:
            from .figures import decloud_figure

            decloud_figure(figure, cloudy=args.cloudy or args.prediction, output=args.prediction[0], bands=bands,
                           sar=args.sar, sar_channels=args.sar_channels, reference=args.reference,
                           rmse_map=staged["rmse"], sam_map=staged["sam"], metrics=metrics,
                           title="sarclear evaluate")
    keys = ("rmse", "sam_deg", "mae", "psnr", "ssim", "pixels", "prediction_pixels")
    print(json.dumps(json_safe({k: metrics[k] for k in keys}), indent=1))
    for name, path in paths.items():
        print(f"{name}: {path}")
    if args.figure:
        print(f"figure: {args.figure}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .checkpoint import read_header
    from .networks import PRESETS, build, count_parameters
    from .resources import bundled_models

    if args.file:
        config, info = read_header(args.file)
        print(json.dumps({"config": config.to_dict(), "info": info}, indent=2))
        return 0
    print(f"{'preset':<10} {'inputs':<22} {'G weights':>11} {'D weights':>11} {'total':>11}  tile")
    for name, cfg in PRESETS.items():
        g, d = build(cfg, discriminator=cfg.has_discriminator)
        ng, nd = count_parameters(g), count_parameters(d) if d is not None else 0
        inputs = f"{len(cfg.bands)} MS" + (f" + {'/'.join(cfg.sar_channels)}" if cfg.sar_channels else "")
        print(f"{name:<10} {inputs:<22} {ng / 1e6:>10.2f}M {nd / 1e6:>10.2f}M {(ng + nd) / 1e6:>10.2f}M  "
              f"{cfg.tile_size} (multiple of {cfg.size_multiple})")
    models = bundled_models()
    if models:
        print("\nbundled models:")
        for path in models:
            cfg = read_header(path)[0]
            print(f"  {path}  ({cfg.preset}, {len(cfg.bands)} bands, SAR {','.join(cfg.sar_channels) or 'none'})")
    return 0


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``sarclear train`` options; each overrides the --config file."""
    p.add_argument("--config", metavar="FILE", help="YAML or JSON training config (options below override it)")
    p.add_argument("--data", metavar="PATH", help="manifest .csv or SEN12MS-CR / SEN1-2-style folder")
    p.add_argument("--out", metavar="DIR", help="run folder (checkpoints, history, curves, model.safetensors)")
    p.add_argument("--preset", choices=("fill", "paper", "lite", "fill-ms", "paper-ms", "lite-ms"),
                   help="fill: the gap-fill generator (the bundled models); paper, lite: the paper's cGAN "
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
_FLAGS = {
    "ms_bands": "--ms-bands B2,B3,...", "sar_channels": "--sar-channels VV,VH", "sar_units": "--sar-units db|linear",
    "ms_scale": "--ms-scale", "ms_offset": "--ms-offset", "overwrite": "--overwrite", "sar": "--sar",
    "aoi": "--aoi", "window": "--aoi", "model": "--model", "cloud_mask": "--mask", "device": "--device",
    "batch_size": "--batch-size", "reference": "--reference",
}


def flag_for(exc: SarclearError) -> str | None:
    """The command-line flag that fixes ``exc``, from its structured fields."""
    option = getattr(exc, "option", None)
    if option == "acquisition":
        return {"ms": "--ms-acquisition", "sar": "--sar-acquisition"}.get(getattr(exc, "input", None) or "",
                                                                        "--ms-acquisition / --sar-acquisition")
    if option == "ms_bands" and getattr(exc, "input", None) == "reference":
        return None
    return _FLAGS.get(option or "")


def _note_hint(note: str) -> str:
    """Flag hint for a run's notes (the library's notes name no flag)."""
    return " (command line: --ms-offset -1000)" if "give the offset" in note else ""


def error_text(exc: SarclearError) -> str:
    """The library's message plus the flag that fixes it."""
    flag = flag_for(exc)
    return f"{exc} (command line: {flag})" if flag else str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args)
    from .raster import limit_gdal_cache

    limit_gdal_cache()
    commands = {"decloud": _decloud, "clouds": _clouds, "evaluate": _evaluate, "models": _models, "train": _train}
    try:
        return commands[args.command](args)
    except Cancelled as exc:
        print(f"sarclear: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("sarclear: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except SarclearError as exc:
        print(f"sarclear: error: {error_text(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the library did not expect to fail: still one line that names it
        what = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        print(f"sarclear: error: {what}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
