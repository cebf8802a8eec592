"""The main job on the bundled samples (`make demo`): decloud a real cloudy Sentinel-2 scene
with the shipped model, and score the model on a held-out clear scene with synthetic clouds.

Writes under out/demo/ (or --out):
  real_clouds/   reconstruction.tif, input-vs-output change maps (RMSE, SAM), metrics, figure.png
  synthetic/     cloudy.tif + opacity, reconstruction.tif, error maps against the clear truth,
                 metrics, figure.png
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sarclear.checkpoint import load_model
from sarclear.figures import decloud_figure
from sarclear.inference import DecloudOptions, decloud
from sarclear.resources import default_model
from sarclear.synthetic import cloud_raster
from sarclear.tiling import Window

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"
REAL_S2 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s2_cloudy_19_p30.tif"
REAL_S1 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s1_19_p30.tif"
# a clear scene whose rows 168-263 are held out from the demo model's training (the test split
# of resources/samples/train_manifest.csv): clouds are added to the scene, and only those rows
# are declouded and scored
SSL4EO = SAMPLES / "ssl4eo-s12"
CLEAR_S2 = SSL4EO / "s2c" / "0000200" / "20200604T054639_20200604T054831_T43RCP"
CLEAR_S1 = SSL4EO / "s1" / "0000200" / "S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457"
HELD_OUT = Window(0, 168, 264, 96)


def _report(title: str, result, folder: Path) -> None:
    m = result.metrics
    print(f"\n{title}\n  {'reconstruction:':<16} {result.output}")
    for name, path in result.maps.items():
        print(f"  {name.upper() + ' map:':<16} {path}")
    print(f"  {'metrics:':<16} {result.metrics_path}\n  {'figure:':<16} {folder / 'figure.png'}")
    print(f"  RMSE {m['rmse']:.4f}  SAM {m['sam_deg']:.2f} deg  MAE {m['mae']:.4f}  PSNR {m['psnr']:.2f} dB  "
          f"SSIM {m['ssim']:.3f}  ({m['kind']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "demo"))
    parser.add_argument("--model", default=None, help="model file (default: the default model for SAR input)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="sarclear: %(message)s")
    model_path = Path(args.model) if args.model else default_model(with_sar=True)  # both scenes have SAR
    model = load_model(model_path)
    cfg = model.config
    opts = DecloudOptions(device=args.device, overwrite=True)
    print(f"model: {model_path} ({cfg.preset}, bands {','.join(cfg.bands)}, SAR {','.join(cfg.sar_channels)})")

    real = Path(args.out) / "real_clouds"
    real.mkdir(parents=True, exist_ok=True)
    r = decloud(REAL_S2, REAL_S1, model, real / "reconstruction.tif", options=opts)
    decloud_figure(real / "figure.png", cloudy=REAL_S2, output=r.output, bands=cfg.bands, sar=REAL_S1,
                   sar_channels=cfg.sar_channels, rmse_map=r.maps["rmse"], sam_map=r.maps["sam"], metrics=r.metrics,
                   title="Real clouds (SEN12MS-CR ROIs1868_summer 19 p30): cloudy input, SAR, reconstruction")
    _report("Real clouds, no cloud-free truth (maps show how much each pixel changed):", r, real)

    syn = Path(args.out) / "synthetic"
    syn.mkdir(parents=True, exist_ok=True)
    stats = cloud_raster(CLEAR_S2, syn / "cloudy.tif", opacity_out=syn / "cloudy_opacity.tif", seed=7,
                         bands=cfg.bands, overwrite=True)
    held_out = DecloudOptions(device=args.device, overwrite=True, window=HELD_OUT)
    s = decloud(syn / "cloudy.tif", CLEAR_S1, model, syn / "reconstruction.tif", reference=CLEAR_S2, options=held_out)
    decloud_figure(syn / "figure.png", cloudy=syn / "cloudy.tif", output=s.output, bands=cfg.bands, sar=CLEAR_S1,
                   sar_channels=cfg.sar_channels, reference=CLEAR_S2, rmse_map=s.maps["rmse"],
                   sam_map=s.maps["sam"], metrics=s.metrics,
                   title="Synthetic clouds on held-out rows of a clear scene (SSL4EO-S12 0000200): errors vs truth")
    from sarclear.evaluation import evaluate

    base = evaluate(syn / "cloudy.tif", CLEAR_S2, cfg.bands, window=HELD_OUT)  # the cloudy input, same rows
    _report(f"Synthetic clouds ({100 * stats['thick_cloud_fraction']:.0f} % of the scene under thick cloud), rows "
            "168-263 (held out from training) declouded and scored against the clear truth:", s, syn)
    print(f"  the cloudy input itself: RMSE {base['rmse']:.4f}  SAM {base['sam_deg']:.2f} deg")
    if "mask" in s.maps:  # the simple fills an analyst could use instead, with the same detected mask
        for name, m in _baselines(syn / "cloudy.tif", s.maps["mask"], cfg.bands).items():
            print(f"  {name} (same mask): RMSE {m['rmse']:.4f}  SAM {m['sam_deg']:.2f} deg")


def _baselines(cloudy: Path, mask: Path, bands) -> dict[str, dict]:
    """Mean fill and normalized-convolution fill of the held-out rows' masked pixels, scored
    against the clear truth like the reconstruction."""
    import torch
    from osgeo import gdal

    from sarclear.fill import mean_fill, normalized_convolution
    from sarclear.io import open_optical
    from sarclear.metrics import compare

    x = torch.from_numpy(open_optical(cloudy, bands).open().read(HELD_OUT)[0] / 10_000)[None]
    truth, ok = open_optical(CLEAR_S2, bands).open().read(HELD_OUT)
    clear = torch.from_numpy(gdal.Open(str(mask)).ReadAsArray() == 0).double()[None, None]  # the run's window
    ref = torch.from_numpy(truth / 10_000)
    out = {}
    for name, fill in (("mean fill", mean_fill), ("normalized-convolution fill", normalized_convolution)):
        pred = torch.where(clear > 0, x, fill(x, clear))[0]
        out[name] = compare(pred, ref, tuple(bands), torch.from_numpy(ok))
    return out


if __name__ == "__main__":
    main()
