"""How large an area the CNN cloud detector (ukis-csmask) needs before ``--mask auto`` trusts it
over the spectral rules: false detections on clear ground by crop size, and what each detector
leaves of real clouds.

* **Clear crops**: every real clear scene under ``--data`` (the centre ``--max-side`` of large
  ones) cut into non-overlapping square crops of each ``--sizes`` (10 m pixels). Each crop goes
  through :func:`sarclear.masks.detect_array` with each detector (default options otherwise:
  30 m blocks, 90 m buffer). Hidden: the share of valid pixels called cloud or shadow, which
  default decloud would change; a crop is *within* when at most 0.5 % is hidden (issue 11's
  clear-scene target).
* **Real clouds**: the real cloudy scene of ``benchmarks/real_clouds.py`` (SSL4EO-S12 0000200,
  264 px, 2.6 km) through default decloud with each detector, scored over **every** valid pixel
  against the 10-day reference (L2A normalised to the cloudy date's L1C by one linear fit per
  band on the pixels both masks call clear): a missed cloud counts there, a hidden pixel is
  only as good as its fill. Also the SEN12MS-CR cloudy sample (256 px, no reference): the
  share of its pixels bright in blue (B2 >= 0.15: cloud edges, and >= 0.2: cloud bodies, at top
  of atmosphere; its clear forest is about 0.09) that each mask leaves visible.

    python benchmarks/detector_context.py [--data ../shared/data] [--out docs/quality]

Writes ``detector_context.json`` and ``.md`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import real_clouds
import torch
from osgeo import gdal
from quality_io import (
    CLEAR_CHANGED_PCT,
    DEFAULT_DATA,
    KINDS,
    _load,
    clouds_sun,
    layer_sources,
    scene_clouds,
    scene_sun,
    split_scenes,
)

from sarclear.bands import S2_BANDS
from sarclear.defaults import fill_buffer_px
from sarclear.fill import FILL_REACH_PX, fill_sources, normalized_convolution
from sarclear.inference import DecloudOptions, decloud
from sarclear.masks import CLOUD, SHADOW, MaskOptions, detect_array
from sarclear.resources import default_model

DETECTORS = ("rules", "csmask")
SEN12MS = Path("real") / "sen12ms-cr-cloudy"
BRIGHT_BLUE = (0.15, 0.2)  # B2 at top of atmosphere: cloud edges, cloud bodies


def clear_crops(data: Path, sizes: list[int], max_side: int) -> list[dict]:
    """False detections of each detector on clear crops of each size."""
    rows = []
    scenes = _load(data)
    for size in sizes:
        tally = {d: [] for d in DETECTORS}
        for scene in scenes:
            h, w = scene.ms.shape[1:]
            sun = scene_sun(scene)  # as decloud works it out for the product: its crops share it
            r0, c0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
            for r in range(r0, r0 + min(h, max_side) - size + 1, size):
                for c in range(c0, c0 + min(w, max_side) - size + 1, size):
                    x = scene.ms[:, r:r + size, c:c + size].astype(np.float32)
                    valid = np.isfinite(x).all(0)
                    if valid.mean() < 0.5:
                        continue
                    for det in DETECTORS:
                        classes = detect_array(np.nan_to_num(x), scene.bands, valid, scene.product_level,
                                               options=MaskOptions(method=det, sun_azimuth_deg=sun)).classes
                        tally[det].append((int((np.isin(classes, (CLOUD, SHADOW)) & valid).sum()), int(valid.sum())))
        for det, crops in tally.items():
            hidden = np.array([h for h, _ in crops])
            pixels = np.array([p for _, p in crops])
            shares = 100 * hidden / np.maximum(pixels, 1)
            rows.append({"size_px": size, "detector": det, "crops": len(crops),
                         "hidden_pct": float(100 * hidden.sum() / max(pixels.sum(), 1)),
                         "within": int((shares <= CLEAR_CHANGED_PCT).sum()),
                         "worst_pct": float(shares.max()) if len(crops) else 0.0})
    return rows


def synthetic(data: Path, size: int, seeds: int) -> list[dict]:
    """Whole-image RMSE of the normalized-convolution fill of each detector's mask (everything
    else as observed) on the test split's clear scenes at least 240 px across (centre ``size``
    px), under the quality benchmark's cloud kinds: a missed cloud counts, and so does clear
    ground that the mask hides and the fill gets wrong."""
    scenes = [s for s in split_scenes(data, "test", size) if min(s.ms.shape[1:]) >= 240]
    layers = layer_sources(data, False, size)
    acc: dict[tuple[str, str], list[float]] = {}  # squared error, band-values, hidden pixels, pixels
    for scene in scenes:
        truth = torch.from_numpy(np.nan_to_num(scene.ms))[None].float()
        valid = np.isfinite(scene.ms).all(0)
        for kind in KINDS:
            for seed in range(seeds):
                clouds = scene_clouds(scene, kind, seed, layers)
                if clouds is None:
                    continue
                cloudy = clouds.apply(truth, scene.bands).cloudy
                for det in DETECTORS:
                    classes = detect_array(cloudy[0].numpy(), scene.bands, valid, scene.product_level,
                                           options=MaskOptions(method=det, sun_azimuth_deg=clouds_sun(clouds))).classes
                    hidden = torch.from_numpy(np.isin(classes, (CLOUD, SHADOW)))[None, None].float()
                    sources = fill_sources(1 - hidden, fill_buffer_px(True))  # decloud's, under a detected mask
                    fill = normalized_convolution(cloudy, sources, reach=FILL_REACH_PX)
                    err = ((torch.where(hidden > 0, fill, cloudy) - truth)[0].numpy() ** 2)[:, valid]
                    a = acc.setdefault((kind, det), [0.0, 0.0, 0.0, 0.0])
                    a[0] += float(err.sum())
                    a[1] += err.size
                    a[2] += float(hidden[0, 0].numpy()[valid].sum())
                    a[3] += float(valid.sum())
    return [{"kind": k, "detector": d, "scenes": len(scenes), "rmse": float(np.sqrt(s / n)),
             "hidden_pct": float(100 * h / p)} for (k, d), (s, n, h, p) in acc.items()]


def real_scene(model: Path) -> dict:
    """The SSL4EO-S12 real cloudy scene through default decloud with each detector, over every
    valid pixel against the 10-day reference."""
    x, ok_x = real_clouds._read(real_clouds.CLOUDY)
    close, ok_c = real_clouds._read(real_clouds.CLOSE)
    outs, masks = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for det in DETECTORS:
            out = Path(tmp) / f"{det}.tif"
            decloud(real_clouds.CLOUDY, real_clouds.S1, model, out, maps=False,
                    options=DecloudOptions(overwrite=True, mask_method=det))
            outs[det] = real_clouds._output(out)
            masks[det] = gdal.Open(str(out.with_name(f"{det}_mask.tif"))).ReadAsArray()
    ok = ok_x & ok_c & np.all([np.isfinite(v).all(0) for v in outs.values()], axis=0)
    seen = ok & np.all([m == 0 for m in masks.values()], axis=0)
    real_clouds.normalise(close, x, seen)
    rmse = lambda a: float(np.sqrt(((a - close)[:, ok] ** 2).mean()))  # noqa: E731
    return {"fit_pixels": int(seen.sum()), "pixels": int(ok.sum()), "input_rmse": rmse(x),
            "detectors": {d: {"hidden_pct": float(100 * (np.isin(masks[d], (CLOUD, SHADOW)) & ok).sum() / ok.sum()),
                              "rmse": rmse(outs[d])} for d in DETECTORS}}


def sen12ms(data: Path) -> dict | None:
    """Bright pixels each detector leaves visible on the SEN12MS-CR cloudy sample."""
    files = sorted((data / SEN12MS).glob("*_s2_cloudy_*.tif"))
    if not files:
        return None
    ds = gdal.Open(str(files[0]))
    x = ds.ReadAsArray().astype(np.float32) / 10_000
    bands = S2_BANDS  # the sample's 13 bands, in Sentinel-2's order
    valid = np.ones(x.shape[1:], bool)
    blue = x[bands.index("B2")]
    out = {"scene": files[0].name, "bright_pct": {str(t): float(100 * (blue >= t).mean()) for t in BRIGHT_BLUE},
           "detectors": {}}
    for det in DETECTORS:
        hidden = np.isin(detect_array(x, bands, valid, "l1c", options=MaskOptions(method=det)).classes, (CLOUD, SHADOW))
        out["detectors"][det] = {"hidden_pct": float(100 * hidden.mean()), "bright_visible_pct": {
            str(t): float(100 * ((blue >= t) & ~hidden).sum() / max((blue >= t).sum(), 1)) for t in BRIGHT_BLUE}}
    return out


def report(record: dict) -> str:
    lines = [f"Cloud detector by area size: `{record['command']}`, {record['date']}, revision `{record['revision']}`, "
             f"{record['seconds']:.0f} s. `--mask auto` uses ukis-csmask (csmask) on areas at least "
             f"{record['min_context_km']:.2f} km across (`MaskOptions.min_context_m`), the spectral rules below.", "",
             "False detections on real clear ground: every clear scene cut into square crops; hidden = called "
             f"cloud or shadow (what default decloud changes); within = crops with at most {CLEAR_CHANGED_PCT} % "
             "hidden.", "",
             "| crop (10 m px) | detector | crops | hidden % (pooled) | crops within | worst crop % |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['size_px']} | {r['detector']} | {r['crops']} | {r['hidden_pct']:.3f} | {r['within']} of "
              f"{r['crops']} | {r['worst_pct']:.1f} |" for r in record["clear_crops"]]
    real = record["real_scene"]
    lines += ["", "Real clouds, SSL4EO-S12 0000200 (264 px), default decloud with each detector: RMSE over every "
              f"valid pixel ({real['pixels']:,}) against the 10-day reference (normalised on the "
              f"{real['fit_pixels']:,} pixels both masks call clear); the cloudy input scores "
              f"{real['input_rmse']:.4f}.", "", "| detector | hidden % | RMSE, whole scene |", "|---|---|---|"]
    lines += [f"| {d} | {v['hidden_pct']:.1f} | {v['rmse']:.4f} |" for d, v in real["detectors"].items()]
    syn = record["synthetic"]
    if syn:
        kinds = list(dict.fromkeys(r["kind"] for r in syn))
        by = {(r["kind"], r["detector"]): r for r in syn}
        lines += ["", f"Synthetic clouds on the test split's clear scenes at least 240 px across ({syn[0]['scenes']}, "
                  f"centre {record['synthetic_size']} px, {record['synthetic_seeds']} seeds, the quality benchmark's "
                  "kinds): RMSE over the whole image of the normalized-convolution fill of each detector's mask "
                  "(hidden % in brackets). Synthetic clouds end where their opacity does, without the haze that "
                  "surrounds real ones, and the real layers' opacity was lifted only near what the spectral rules "
                  "flag (`sarclear.cloud_layers`): both favour a tight mask, where the real scenes above show the "
                  "haze around real clouds.", "",
                  "| detector | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        cell = lambda r: f"{r['rmse']:.4f} ({r['hidden_pct']:.0f} %)"  # noqa: E731
        lines += [f"| {d} | " + " | ".join(cell(by[(k, d)]) for k in kinds) + " |" for d in DETECTORS]
    s12 = record.get("sen12ms")
    if s12:
        shares = ", ".join(f"{v:.1f} % have B2 >= {t}" for t, v in s12["bright_pct"].items())
        lines += ["", f"SEN12MS-CR cloudy sample {s12['scene']} (256 px, no reference; its clear forest has B2 about "
                  f"0.09): of its pixels {shares} (top of atmosphere); the share of those each mask leaves visible.",
                  "", "| detector | hidden % | " + " | ".join(f"B2 >= {t} left visible %" for t in BRIGHT_BLUE) + " |",
                  "|---|---|" + "---|" * len(BRIGHT_BLUE)]
        lines += [f"| {d} | {v['hidden_pct']:.1f} | " + " | ".join(f"{p:.1f}" for p in v["bright_visible_pct"].values())
                  + " |" for d, v in s12["detectors"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (docs/DATA.md)")
    p.add_argument("--sizes", default="120,192,240,256,384", help="crop sizes, 10 m pixels, comma-separated")
    p.add_argument("--max-side", type=int, default=1536, help="larger scenes: only their centre this size")
    p.add_argument("--synthetic-size", type=int, default=384, help="synthetic clouds: centre crop of the scenes")
    p.add_argument("--seeds", type=int, default=2, help="synthetic clouds: cloud fields per scene and kind")
    p.add_argument("--out", type=Path, default=common.ROOT / "docs" / "quality")
    args = p.parse_args(argv)
    common.setup_logging(False)
    logging.getLogger("sarclear").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    record = {"clear_crops": clear_crops(args.data, [int(s) for s in args.sizes.split(",")], args.max_side),
              "real_scene": real_scene(default_model(with_sar=True)), "sen12ms": sen12ms(args.data),
              "synthetic": synthetic(args.data, args.synthetic_size, args.seeds),
              "synthetic_size": args.synthetic_size, "synthetic_seeds": args.seeds,
              "min_context_km": MaskOptions().min_context_m / 1000}
    text = common.write_record(args.out, "detector_context", record, report, argv, t0)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
