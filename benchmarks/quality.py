"""Quality benchmark: how well each method restores real clear scenes held out from training
(split by place, :mod:`sarclear.datasets`) under seeded synthetic clouds of four kinds and
under real cloud layers, and what it does to real clear and real cloudy scenes.

Cloud kinds (one seed per scene and kind, the same for every method; ``--kinds`` picks some):

* ``thick``: thick cloud over 35 % of the scene, no haze, no shadow (:mod:`sarclear.clouds`);
* ``haze``: a thin veil only (opacity 0.25-0.5 at 490 nm, less at longer wavelengths, as
  aerosol haze), no thick cloud;
* ``thin cloud``: the same veil, neutral (the same opacity in every band), as thin water cloud
  is (not one of issue 11's kinds: no target; the classic model's uncertainty is not fitted on it);
* ``thick+shadow``: thick cloud over 25 % with its shadow (darkening 0.4-0.7);
* ``real layers``: the clouds and shadows of a real cloudy scene (:mod:`sarclear.cloud_layers`:
  SSL4EO-S12's cloudy date, the overcast Major TOM cell; never the test scene's own place, and
  never a layer that training draws from), turned and cut to the scene. Synthetic clouds are
  one colour and never quite opaque; these have real tops, edges, gaps and shadows, where a
  method that learned to see through synthetic clouds fails as it does on real ones.

The *true mask* is every pixel the clouds changed: combined opacity at 490 nm >= 0.02 or
shadow darkening >= 0.02 (soft cloud edges included; a layer's opacity is one for all
bands). Under-cloud metrics are over the true mask, whole-image metrics over every valid pixel.

Methods: the cloudy input; mean fill and normalized-convolution fill (:mod:`sarclear.fill`)
inside the mask; each model (``--model NAME=PATH``, default every model in resources/models)
run the way users run it: the scene written as a GeoTIFF (uint16 DN, as delivered; a dummy
UTM grid where the source has no georeferencing), the mask as a uint8 raster, and
``sarclear.inference.decloud``. Masks: the true mask, and the detected one (``cloud_mask=
"auto"`` for models, ``sarclear.masks.detect_array`` for the baselines) where the library has
detection; ``+ adapt`` rows where ``DecloudOptions`` has ``adapt``. SAR models run on the
scenes that have SAR only, so the tables are per scene group (S1+S2, S2 only).

Also: real clear scenes through default decloud (pixels changed by more than 0.002 in any
band, RMSE against the input), and figures of real clouds (BigEarthNet v2 cloudy pairs, the
overcast Major TOM cell, the bundled SEN12MS-CR cloudy sample), one display stretch per figure.

    python benchmarks/quality.py            # full run: docs/QUALITY.md, docs/quality/
    python benchmarks/quality.py --quick    # CI smoke run, < 1 min
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import math
import resource
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from quality_io import (
    DEFAULT_DATA,
    EXTRA_KIND_CONFIGS,
    KIND_CONFIGS,
    KINDS,
    clear_check,
    clouds_sun,
    detect_sun,
    layer_sources,
    read_output,
    real_cloud_scenes,
    scene_clouds,
    test_scenes,
    write_mask,
    write_scene,
)

from sarclear import fill
from sarclear.adapt import fit_problem
from sarclear.checkpoint import load_model
from sarclear.datasets import MEASURE_ONLY_SOURCES
from sarclear.inference import DecloudOptions, decloud
from sarclear.metrics import MetricAccumulator, correlation, ssim_map

log = logging.getLogger("quality")
ADAPT_GROUP = "adapt subset (S1+S2)"
MASK_OPACITY = 0.02  # opacity (and shadow darkening) from which a pixel counts as cloud-affected


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(",".join(map(str, parts)).encode()).digest()[:4], "little")


def detector():
    """``sarclear.masks.detect_array`` where the library has it, else None."""
    try:
        from sarclear.masks import detect_array
    except ImportError:
        return None
    return detect_array


def figure_scene(scenes: Sequence) -> object | None:
    """The scene the synthetic figures show: the largest with SAR whose source may be drawn
    (:data:`sarclear.datasets.MEASURE_ONLY_SOURCES` publish no licence for it); None if none may."""
    drawable = [s for s in scenes if s.sar is not None and s.source not in MEASURE_ONLY_SOURCES]
    return max(drawable, key=lambda s: s.ms.shape[1] * s.ms.shape[2]) if drawable else None


def options_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(DecloudOptions)}


class Scorer:
    """Per-scene metrics of each (group, kind, method, mask), pooled over scenes at the end."""

    def __init__(self, bands):
        self.bands = tuple(bands)
        self.records: list[dict] = []

    def add(self, groups: Sequence[str], key: tuple, scene: str, out: torch.Tensor, ref: torch.Tensor,
            valid: torch.Tensor, cloud: torch.Tensor) -> None:
        """Score ``out`` once; record it under each of ``groups`` with ``key`` (kind, method, mask)."""
        xs, ys = torch.where(valid, out, 0), torch.where(valid, ref, 0)
        ssim = ssim_map(xs[None], ys[None])[0]
        res = {}
        for region, m in (("all", valid), ("cloud", valid & cloud)):
            acc = MetricAccumulator(self.bands)
            acc.update(out, ref, m, ssim=ssim)
            res[region] = acc.result()
        a, c = res["all"], res["cloud"]
        rec = {"scene": scene, "kind": key[0], "method": key[1], "mask": key[2],
               "rmse_cloud": c["rmse"], "rmse_all": a["rmse"], "sam_deg": a["sam_deg"], "psnr": a["psnr"],
               "ssim": a["ssim"], "corr": float(np.nanmean(correlation(out, ref, valid).numpy())),
               "pixels": a["pixels"], "cloud_pixels": c["pixels"]}
        self.records += [{"group": g, **rec} for g in groups]

    def rows(self) -> list[dict]:
        """Pooled over scenes: RMSE from the summed squared errors (pixel-weighted MSE), SAM
        and SSIM pixel-weighted, PSNR from the pooled MSE, correlation the mean of scenes."""
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.records:
            groups[(r["group"], r["kind"], r["method"], r["mask"])].append(r)
        out = []
        for key, recs in groups.items():
            n = sum(r["pixels"] for r in recs)
            nc = sum(r["cloud_pixels"] for r in recs)
            mse = sum(r["rmse_all"] ** 2 * r["pixels"] for r in recs) / n
            mse_c = sum(r["rmse_cloud"] ** 2 * r["cloud_pixels"] for r in recs if r["cloud_pixels"]) / nc \
                if nc else float("nan")
            out.append({"group": key[0], "kind": key[1], "method": key[2], "mask": key[3], "scenes": len(recs),
                        "rmse_cloud": math.sqrt(mse_c), "rmse_all": math.sqrt(mse),
                        "sam_deg": sum(r["sam_deg"] * r["pixels"] for r in recs) / n,
                        "psnr": 10 * math.log10(1 / mse) if mse > 0 else float("inf"),
                        "ssim": sum(r["ssim"] * r["pixels"] for r in recs) / n,
                        "corr": float(np.nanmean([r["corr"] for r in recs])), "pixels": n, "cloud_pixels": nc})
        return out


class Runner:
    """Runs every method on one cloudy scene and scores it."""

    def __init__(self, args, models: dict, work: Path, layers: Sequence = ()):
        self.args, self.models, self.work = args, models, work
        self.detect = detector()
        fields = options_fields()
        self.adapt = "adapt" in fields
        self.adapt_time = "adapt_seconds" in fields
        self.auto_ok: bool | None = None  # cloud_mask="auto" supported? (found by trying)
        self.notes: list[str] = []
        self.unfillable: list[str] = []  # scene, kind and mask where every valid pixel is hidden
        self.layers = list(layers)  # (scene, CloudLayer) of the real cloudy scenes
        if self.detect is None:
            self.notes.append("sarclear.masks.detect_array is not in this library yet: no detected-mask rows "
                              "for the baselines")
        if not self.adapt:
            self.notes.append("DecloudOptions has no adapt field yet: no '+ adapt' rows")

    def decloud(self, model, ms_path, sar_path, out, **opts) -> np.ndarray:
        options = DecloudOptions(device=self.args.device, overwrite=True, **opts)
        decloud(ms_path, sar_path if model.config.uses_sar else None, model, out, maps=False, options=options)
        return read_output(out)

    def level_option(self, scene) -> dict:
        """decloud's ``product_level`` for ``scene`` where decloud has that option: the level its
        real product would say (the written 10-band stack carries no product name)."""
        return {"product_level": scene.product_level} if "product_level" in options_fields() else {}

    def model_variants(self, model, adapt_subset: bool):
        """(label suffix, extra options) per model run: without and, where decloud has it and
        the model is mask-aware (the kind scene adaptation fits), with scene adaptation
        (explicitly off in the plain rows, whatever the default)."""
        if not self.adapt:
            yield "", {}
            return
        yield "", {"adapt": False}
        if not adapt_subset or fit_problem(model.config, model.info):
            return
        extra = {"adapt": True}
        if self.adapt_time:
            extra["adapt_seconds"] = self.args.adapt_time
        yield " + adapt", extra

    def try_auto(self, model, ms_path, sar_path, out, **extra) -> np.ndarray | None:
        """The model with the library's own detection (``cloud_mask="auto"``); None where
        decloud does not support it yet (found out on the first call)."""
        if self.auto_ok is False:
            return None
        try:
            result = self.decloud(model, ms_path, sar_path, out, cloud_mask="auto", **extra)
        except Exception as exc:  # any failure means: not supported here
            if self.auto_ok is None:
                self.auto_ok = False
                self.notes.append(f"decloud does not take cloud_mask='auto' yet ({type(exc).__name__}: "
                                  f"{str(exc)[:120]}): no detected-mask rows for the models")
                return None
            raise
        self.auto_ok = True
        return result

    def run(self, scene, kind: str, scorer: Scorer, figure: dict | None = None, adapt_subset: bool = False) -> None:
        """Clouds of ``kind`` on ``scene``, every method, scored; ``figure`` receives the
        outputs; scenes of the ``adapt_subset`` are scored again, with ``+ adapt`` rows, in
        a group of their own (so with and without adaptation compare on the same scenes)."""
        bands = scene.bands
        ref = torch.from_numpy(scene.ms)
        valid = torch.isfinite(ref).all(0)
        if scene.sar is not None:
            valid &= torch.from_numpy(np.isfinite(scene.sar).all(0))
        clouds = scene_clouds(scene, kind, _seed(self.args.seed, scene.name, kind), self.layers)
        if clouds is None:
            log.info("%s: no real cloud layer from another place; no %s row", scene.name, kind)
            return
        res = clouds.apply(torch.nan_to_num(ref)[None], bands)
        sun = clouds_sun(clouds)  # the sun of these clouds' shadows, told to every detector
        cloudy = (torch.round(res.cloudy[0].clamp(0, 6.5) * 10000) / 10000).float()  # as written (uint16 DN)
        cloudy = torch.where(valid, cloudy, torch.nan)
        ref_q = torch.round(ref * 10000) / 10000
        true_mask = (res.opacity[0, 0] >= MASK_OPACITY) | (res.shadow[0, 0] >= MASK_OPACITY)
        groups = ["S1+S2" if scene.sar is not None else "S2 only"] + ([ADAPT_GROUP] if adapt_subset else [])
        score = lambda method, mask, out, gs=groups: scorer.add(gs, (kind, method, mask), scene.name,  # noqa: E731
                                                                out, ref_q, valid, true_mask)
        outputs = {"reference": ref_q, "cloudy input": cloudy}
        score("cloudy input", "-", cloudy)
        masks = {"true": true_mask}
        if self.detect is not None:
            # the scene's own level, as decloud is told it below (a 10-band stack without a product name
            # says none): the baselines' detected mask is the models' own
            det = self.detect(cloudy.numpy(), bands, valid.numpy(), scene.product_level, **detect_sun(sun))
            masks["detected"] = torch.from_numpy(np.isin(det.classes, (1, 2)))
        for mask_name, m in masks.items():
            clear_w = (~m & valid).float()[None, None]
            x = torch.nan_to_num(cloudy)[None]
            fillable = bool(clear_w.any())  # else nothing to fill from: the image stays as it is (not zeros)
            if not fillable:
                self.unfillable.append(f"{scene.name} ({kind}, {mask_name} mask)")
            for method, fn in (("mean fill", fill.mean_fill), ("normalized convolution", fill.normalized_convolution)):
                out = torch.where(m, fn(x, clear_w)[0], cloudy) if fillable else cloudy
                score(method, mask_name, out)
                outputs[f"{method} ({mask_name} mask)"] = out
        d = self.work / f"{_seed(scene.name)}_{kind.replace(' ', '_')}"
        d.mkdir(parents=True, exist_ok=True)
        ms_path, sar_path = write_scene(d / "ms.tif", d / "sar.tif", scene, cloudy.numpy(), sun)
        mask_path = write_mask(d / "mask.tif", true_mask.numpy(), scene)
        level = self.level_option(scene)
        for name, model in self.models.items():
            if model.config.uses_sar and scene.sar is None:
                continue
            for suffix, extra in self.model_variants(model, adapt_subset):
                label = name + suffix
                gs = [ADAPT_GROUP] if suffix else groups
                out = self.decloud(model, ms_path, sar_path, d / "out_true.tif", cloud_mask=str(mask_path),
                                   **level, **extra)
                score(label, "true", torch.from_numpy(out), gs)
                outputs[f"{label} (true mask)"] = torch.from_numpy(out)
                out = self.try_auto(model, ms_path, sar_path, d / "out_auto.tif", **level, **extra)
                if out is not None:
                    score(label, "detected", torch.from_numpy(out), gs)
        if figure is not None:
            figure.update(outputs)
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data root (default {DEFAULT_DATA})")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model to compare (repeatable; default: every model in resources/models)")
    p.add_argument("--crop", type=int, default=384, help="size of the crop taken from large test scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("test", "train", "val"), default="test",
                   help="places to score: the held-out test places (default), or train/val ones to choose a "
                        "setting without looking at the test places")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"comma-separated cloud kinds to run (default all: {', '.join(KINDS)})")
    p.add_argument("--adapt-time", type=float, default=15.0,
                   help="seconds of scene adaptation per run, where decloud supports it")
    p.add_argument("--adapt-scenes", type=int, default=2,
                   help="the largest S1+S2 test scenes that also run with adaptation (its own table)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON and figures (default docs/quality; out/quality-<split> with --split train/val)")
    p.add_argument("--report", type=Path, default=None, help="Markdown report (default docs/QUALITY.md; "
                   "with --quick or --split train/val, <out>/QUALITY.md)")
    p.add_argument("--workdir", type=Path, default=common.DEFAULT_WORKDIR)
    p.add_argument("--quick", action="store_true", help="two small scenes, no real-cloud figures but one (CI)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        p.error(f"--kinds: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(KINDS)}")
    if args.quick:  # CI: adaptation (where supported) on one scene, briefly
        args.adapt_scenes, args.adapt_time = min(args.adapt_scenes, 1), min(args.adapt_time, 5.0)
    common.setup_logging(args.verbose)
    logging.getLogger("quality").setLevel(logging.INFO)
    t0 = time.perf_counter()
    from quality_report import figure_synthetic, figures_real, write_report

    models = {}
    bundled = sorted((common.ROOT / "resources" / "models").glob("*.safetensors"))
    specs = args.model or [f"{f.stem}={f}" for f in bundled]
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            p.error(f"--model takes NAME=PATH, got {spec!r}")
        models[name] = load_model(path, args.device)
    work = args.workdir / "quality"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.out is None:  # a run on train or val places never overwrites the held-out results
        args.out = common.ROOT / ("docs/quality" if args.split == "test" else f"out/quality-{args.split}")
    args.out.mkdir(parents=True, exist_ok=True)
    published = not args.quick and args.split == "test"  # only held-out runs write docs/QUALITY.md
    report = args.report or (common.ROOT / "docs" / "QUALITY.md" if published else args.out / "QUALITY.md")

    scenes, chosen = test_scenes(args.data, args.quick, args.crop, args.split)
    log.info("%d %s scenes: %s", len(scenes), args.split,
             ", ".join(f"{s.name} {s.ms.shape[2]}x{s.ms.shape[1]}" for s in scenes))
    layers = layer_sources(args.data, args.quick, args.crop)
    log.info("%d real cloud layers: %s", len(layers),
             ", ".join(f"{s.name} ({100 * layer.cloud_fraction:.0f} % cloud)" for s, layer in layers))
    runner = Runner(args, models, work, layers)
    scorer = Scorer(scenes[0].bands)
    fig_scene = figure_scene(scenes)
    by_size = sorted((s for s in scenes if s.sar is not None), key=lambda s: -s.ms.shape[1] * s.ms.shape[2])
    adapt_names = {s.name for s in by_size[:args.adapt_scenes]} if runner.adapt else set()
    synthetic_views = {}
    for i, scene in enumerate(scenes):
        for kind in kinds:
            views = {} if scene is fig_scene and (kind == "thick" or not args.quick) else None
            runner.run(scene, kind, scorer, views, adapt_subset=scene.name in adapt_names)
            if views:
                synthetic_views[kind] = views
        log.info("[%d/%d] %s done (%.0f s)", i + 1, len(scenes), scene.name, time.perf_counter() - t0)
    t_synth = time.perf_counter() - t0
    clear_rows = clear_check(scenes, models, runner, work)
    log.info("clear-scene check done (%.0f s)", time.perf_counter() - t0)
    figures = []
    if not args.no_figures:
        for kind, views in synthetic_views.items():
            name = f"synthetic_{kind.replace(' ', '_')}.png"
            figures.append(figure_synthetic(args.out / name, views, fig_scene, kind))
        real = real_cloud_scenes(args.data, args.quick, args.crop)
        figures += figures_real(args.out, real, models, runner, work)
    if runner.unfillable:
        runner.notes.append(f"mean fill and normalized convolution leave the cloudy input as it is where the mask "
                            f"hides every valid pixel (nothing to fill from; the library's fills would write 0): "
                            f"{len(runner.unfillable)} cases, {', '.join(runner.unfillable)}")
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"cpu_seconds": usage.ru_utime + usage.ru_stime,
              "models": {name: {"path": m.path, "preset": m.config.preset, "uses_sar": m.config.uses_sar,
                                "bands": list(m.config.bands)} for name, m in models.items()},
              "args": {k: str(v) for k, v in vars(args).items()}, "scenes": chosen,
              "kinds": {k: dataclasses.asdict(c) for k, c in {**KIND_CONFIGS, **EXTRA_KIND_CONFIGS}.items()},
              "real_layers": [{"source": s.name, "place": s.place, "cloud_fraction": layer.cloud_fraction}
                              for s, layer in runner.layers],
              "mask_rule": f"opacity at 490 nm >= {MASK_OPACITY} or shadow darkening >= {MASK_OPACITY}",
              "adapt_scenes": sorted(adapt_names), "rows": scorer.rows(), "per_scene": scorer.records,
              "clear_check": clear_rows,
              "figures": [str(f) for f in figures], "notes": runner.notes,
              "seconds": seconds, "seconds_synthetic": t_synth}
    path = common.save_results("quality", result, args.out, args.device)
    write_report(report, path, args.out)
    print(report.read_text())
    print(f"results: {path}\nreport: {report}\n{seconds:.0f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
