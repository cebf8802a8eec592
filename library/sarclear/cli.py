"""The ``sarclear`` command line: argument parsing and progress bars only; every command
calls one library function. Errors the user can fix are printed as one line (exit 2)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_args import (
    _AZIMUTH,
    _FINITE,
    _FRACTION,
    _HAZE_POWER,
    _NONNEG,
    _NONNEG_INT,
    _POSITIVE,
    _POSITIVE_INT,
    _csv,
    _Progress,
)
from .cli_train import _add_train_arguments, _train
from .defaults import FILL_BUFFER_PX, MASK_BUFFER_PX
from .errors import Cancelled, SarclearError

log = logging.getLogger("sarclear")


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
    _add_verbosity(parser, False)
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
    p.add_argument("--model", metavar="FILE", help="model file (.safetensors); default: with --sar the bundled "
                   "SAR-guided fill (sarclear-fill-guided), without it the classical fill (sarclear-fill-classic)")
    p.add_argument("--out", required=True, metavar="FILE", help="output GeoTIFF")
    p.add_argument("--reference", nargs="+", metavar="PATH", help="cloud-free reference to score against")
    p.add_argument("--mask", metavar="auto|none|FILE", default="auto",
                   help="cloud mask: auto (default: detect clouds and shadows, written to <out>_mask.tif), none "
                        "(no mask: a plain generator changes every pixel), or a raster: 0 = clear, > 0 = cloud; "
                        "float = cloud probability; Sentinel-2's *_SCL_20m scene classification and "
                        "MSK_CLDPRB_20m (percent) are known by their names. Pixels the mask calls clear are kept "
                        "exactly")
    p.add_argument("--mask-method", choices=("auto", "csmask", "rules"), default="auto",
                   help="detector for --mask auto: ukis-csmask's CNN (csmask; the spectral rules' large cloud bodies "
                        "join it: the CNN passes over flat, bright ones), the spectral rules alone, or "
                        "auto (csmask when installed and the area is at least 2.4 km across)")
    p.add_argument("--product-level", choices=("l1c", "l2a"), type=str.lower,
                   help="processing level of the optical input, for the cloud detector and the uncertainty's haze "
                        "term: l1c (top of atmosphere) or l2a (surface reflectance). Default: the level in the file "
                        "names (MSIL1C / MSIL2A, SAFE folders included), else the bands (B10 in the file or its "
                        "folder: L1C), else guessed, with a note")
    p.add_argument("--adapt", action="store_true",
                   help="first fit a copy of the model to this scene's clear pixels (synthetic clouds drawn over "
                        "them), then decloud with it")
    p.add_argument("--adapt-time", type=_NONNEG, default=180.0, metavar="SECONDS",
                   help="time budget of --adapt (default 180)")
    p.add_argument("--fill-buffer", type=_NONNEG_INT, metavar="PX",
                   help=f"clear pixels this close to the mask are kept but do not feed the fill: cloud edges and "
                        f"their haze reach past a mask (default: {FILL_BUFFER_PX} px past the cloud's edge, counting "
                        f"--mask-buffer with --mask auto, so 0 there by default; {FILL_BUFFER_PX} with a mask file, "
                        f"0 for one that is already buffered or exact)")
    p.add_argument("--mask-buffer", type=_NONNEG_INT, default=MASK_BUFFER_PX, metavar="PX",
                   help=f"with --mask auto, detected cloud and shadow grow by this many pixels: real clouds are "
                        f"wider than what a detector calls cloud (default {MASK_BUFFER_PX}, 90 m at 10 m)")
    p.add_argument("--sun-azimuth", type=_AZIMUTH, metavar="DEG",
                   help="with --mask auto: the sun's azimuth in degrees from true north (the product's mean solar "
                        "azimuth), for the check that a shadow lies on the far side of its cloud from the sun "
                        "(default: from the input's metadata, or its sensing time and place; else no such check)")
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
    p.add_argument("--shadow-diffuse", type=_FRACTION, nargs=2, metavar=("MIN", "MAX"), default=(0.2, 0.95),
                   help="share of the light at 490 nm a shadow keeps (diffuse skylight; less at longer wavelengths, "
                        "so shadows darken NIR and SWIR most, as real ones do; default 0.2 0.95; 0 0 for grey "
                        "shadows that darken every band alike)")
    p.add_argument("--haze-power", type=_HAZE_POWER, default=1.0, metavar="P",
                   help="how the haze thins with wavelength: opacity at a band = 1 - (1 - haze) ^ ((490 nm / "
                        "wavelength) ^ P); 1 (default) aerosol haze, thinner in NIR and SWIR; 0 neutral, the same "
                        "in every band, as thin water cloud is (0 to 4)")
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
    for command in sub.choices.values():  # also after the command (sarclear decloud ... -q)
        _add_verbosity(command, argparse.SUPPRESS)  # absent there: the value before the command stands
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="only warnings and errors, no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug messages")


class _Warned(logging.Handler):
    """Remembers the warnings already shown, so that quiet runs do not repeat them as notes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.add(record.getMessage())


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="sarclear: %(message)s", stream=sys.stderr)


def _decloud(args: argparse.Namespace) -> int:
    from .inference import DecloudOptions, decloud
    from .resources import default_model

    model = args.model or default_model(with_sar=bool(args.sar))
    opts = DecloudOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                          overlap=args.overlap, aoi=tuple(args.aoi) if args.aoi else None, cloud_mask=args.mask,
                          mask_method=args.mask_method, mask_feather=args.mask_feather, fill_buffer=args.fill_buffer,
                          mask_buffer=args.mask_buffer, sun_azimuth=args.sun_azimuth, product_level=args.product_level,
                          ms_bands=args.ms_bands,
                          sar_channels=args.sar_channels, adapt=args.adapt, adapt_seconds=args.adapt_time,
                          sar_units=args.sar_units, ms_scale=args.ms_scale, ms_offset=args.ms_offset,
                          ms_acquisition=args.ms_acquisition, sar_acquisition=args.sar_acquisition,
                          overwrite=args.overwrite, cog=args.cog, overviews=args.overviews, compress=args.compress)
    bar, warned = _Progress(not args.quiet, "decloud"), _Warned()
    logging.getLogger().addHandler(warned)
    try:
        result = decloud(args.ms, args.sar, model, args.out, reference=args.reference, maps=not args.no_maps,
                         figure=args.figure, options=opts, progress=bar)
    finally:
        bar.close()
        logging.getLogger().removeHandler(warned)
    for note in result.notes:  # gathered after the progress bars; a quiet run has none: once is enough then
        if not (args.quiet and note in warned.messages and not _note_hint(note)):
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
                         shadow_diffuse=tuple(args.shadow_diffuse), haze_power=args.haze_power,
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


_FLAGS = {
    "ms_bands": "--ms-bands B2,B3,...", "sar_channels": "--sar-channels VV,VH", "sar_units": "--sar-units db|linear",
    "ms_scale": "--ms-scale", "ms_offset": "--ms-offset", "overwrite": "--overwrite", "ms": "--ms", "sar": "--sar",
    "aoi": "--aoi", "window": "--aoi", "model": "--model", "cloud_mask": "--mask", "device": "--device",
    "batch_size": "--batch-size", "reference": "--reference", "product_level": "--product-level l1c|l2a",
    "adapt": "--model resources/models/sarclear-fill-scene.safetensors, or leave out --adapt",
    "sun_azimuth": "--sun-azimuth DEG",
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


def _honour_interrupts() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the command even when its parent (QGIS, a test runner)
    had them ignored or blocked: children inherit both, and Python then never raises
    KeyboardInterrupt, so an interrupted run would go on and commit its outputs."""
    import threading

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args)
    _honour_interrupts()
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
