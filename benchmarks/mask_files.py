"""Real clouds under a mask file: how far past the mask's edge the fill should draw from.

A mask file is used as it is (``sarclear decloud --mask FILE``), and the masks that tools write
are seldom as wide as a real cloud's haze: the clear pixels next to such a mask are often hazy,
and a fill that draws from them is too bright. This runs the real cloudy scene of
``benchmarks/real_clouds.py`` (SSL4EO-S12 0000200, L1C, with S1) with masks of its clouds that
were not grown (each detector's, and the spectral rules' grown by 3 px), each written to a file
and given to default decloud (both default models) at several fill buffers (``--fill-buffer``;
the default for a mask file is :func:`sarclear.defaults.fill_buffer_px`), beside mean fill and
normalized convolution of the same mask from the same sources. Scored over the pixels each mask
hides, against both clear references of ``real_clouds.py`` (its docstring says why two).

    python benchmarks/mask_files.py [--out docs/quality]

Writes ``mask_files.json`` and ``mask_files.md`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import real_clouds as rc
import torch
from osgeo import gdal

from sarclear.defaults import fill_buffer_px
from sarclear.fill import fill_sources, mean_fill, normalized_convolution
from sarclear.inference import DecloudOptions, decloud
from sarclear.resources import default_model

#: masks of the real clouds, none grown as decloud grows its own: (detector, pixels grown)
MASKS = (("rules", 0), ("rules", 3), ("csmask", 0))
BUFFERS = (0, 2, 5, 9, 15)
REFERENCES = {"10-day": rc.CLOSE, "80-day": rc.CLEAR}


def write_mask(classes_tif: Path, out: Path) -> np.ndarray:
    """Write a 0/1 mask file ``out`` (cloud or shadow = 1) on the grid of decloud's class raster;
    return the mask (H, W) bool."""
    ds = gdal.Open(str(classes_tif))
    hidden = np.isin(ds.ReadAsArray(), (1, 2))
    dst = gdal.GetDriverByName("GTiff").Create(str(out), ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    dst.SetGeoTransform(ds.GetGeoTransform())
    dst.SetProjection(ds.GetProjection())
    dst.GetRasterBand(1).WriteArray(hidden.astype(np.uint8))
    dst = None
    return hidden


def run(tmp: Path) -> dict:
    x, ok_x = rc._read(rc.CLOUDY)
    refs = {name: rc._read(folder) for name, folder in REFERENCES.items()}
    models = {"guided": default_model(with_sar=True), "classic": default_model(with_sar=False)}
    base = tmp / "default.tif"  # the default run's clear pixels normalise the L2A reference, as real_clouds.py
    decloud(rc.CLOUDY, rc.S1, models["guided"], base, maps=False, options=DecloudOptions(overwrite=True))
    seen = (gdal.Open(str(base.with_name("default_mask.tif"))).ReadAsArray() == 0) & ok_x & refs["10-day"][1]
    rc.normalise(refs["10-day"][0], x, seen)
    ok = ok_x & np.all([v[1] for v in refs.values()], axis=0)
    xt = torch.from_numpy(x)[None]
    rows = []
    for method, grown in MASKS:
        probe = tmp / f"{method}{grown}.tif"
        decloud(rc.CLOUDY, rc.S1, models["guided"], probe, maps=False,
                options=DecloudOptions(overwrite=True, mask_method=method, mask_buffer=grown))
        mask_file = tmp / f"{method}{grown}_file.tif"
        hidden_map = write_mask(probe.with_name(f"{probe.stem}_mask.tif"), mask_file)
        hidden = hidden_map & ok
        clear = torch.from_numpy(~hidden_map).double()[None, None]
        for buffer in BUFFERS:
            outs = {}
            for name, model in models.items():
                out = tmp / f"{name}.tif"
                decloud(rc.CLOUDY, rc.S1 if name == "guided" else None, model, out, maps=False,
                        options=DecloudOptions(overwrite=True, cloud_mask=str(mask_file), fill_buffer=buffer))
                outs[name] = rc._output(out)
            sources = fill_sources(clear, buffer)
            for name, fill in (("normalized convolution", normalized_convolution), ("mean fill", mean_fill)):
                outs[name] = torch.where(clear > 0, xt, fill(xt, sources))[0].numpy()
            scored = hidden & np.all([np.isfinite(v).all(0) for v in outs.values()], axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):  # mean fill is flat: no correlation
                scores = {m: {r: rc._scores(v, refs[r][0], scored) for r in REFERENCES} for m, v in outs.items()}
            rows.append({"mask": method, "grown_px": grown, "hidden_pct": float(100 * scored.sum() / ok.sum()),
                         "fill_buffer": buffer, "scores": scores})
    return {"rows": rows, "default_fill_buffer": fill_buffer_px(False)}


def report(record: dict) -> str:
    methods = list(record["rows"][0]["scores"])
    head = (f"Real clouds under a mask file: `{record['command']}`, {record['date']}, revision "
            f"`{record['revision']}`, {record['seconds']:.0f} s. SSL4EO-S12 0000200 (the scene of "
            "`real_clouds.py`), masks of its clouds that were not grown as `--mask auto` grows its own "
            "(detector, pixels grown), each given as a mask file at each fill buffer (`--fill-buffer`, "
            f"pixels of 10 m; the default for a mask file is {record['default_fill_buffer']}). RMSE over the "
            "pixels the mask hides against the 10-day / 80-day reference; mean fill and normalized "
            "convolution draw from the same sources as the models.")
    lines = [head, "",
             "| mask (hidden %) | fill buffer | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for r in record["rows"]:
        cells = " | ".join(f"{r['scores'][m]['10-day']['rmse']:.4f} / {r['scores'][m]['80-day']['rmse']:.4f}"
                           for m in methods)
        lines.append(f"| {r['mask']} +{r['grown_px']} px ({r['hidden_pct']:.0f} %) | {r['fill_buffer']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=common.ROOT / "docs" / "quality")
    args = p.parse_args(argv)
    common.setup_logging(False)
    logging.getLogger("sarclear").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        record = run(Path(tmp))
    text = common.write_record(args.out, "mask_files", record, report, argv, t0)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
