"""Fine-tune the two bundled gap-fill models on a lent GPU (DEVELOPERS.md, GPU; issue 14).

The shared training data do not travel to the GPU machine, and only 64 MiB of files do; so
``pack`` reads the training and validation scenes of the data folder here (every reader,
split by place, exactly as ``sarclear train`` reads them) and the real cloud layers, and
writes them losslessly into one folder: the reflectance as its 1e-4 steps (uint16, 65535 =
no data), as 2-D differences with their bytes split by significance, LZMA-compressed (about
53 MB for ../shared/data/train, against 85 MB as a compressed npz); the SAR in dB and the
layers as float32. ``pack`` checks that what it wrote reads back bit for bit. The shipped
models, which the fine-tunes start from, are copied beside them.

``train`` (on the GPU machine) runs both fine-tunes at once, each as its own
``*_level_train.yaml`` says (the last stage of scripts/train_fill_models.py), started from
the shipped file, with the batch, time and loader workers given here, and packs each run's
model, curves and history into OUT/gpu_train.tgz.

    python scripts/gpu_train.py pack --data ../shared/data/train --out .gpu_data     # here
    python scripts/gpu_train.py train --pack .gpu_data --out $OUT --seconds 240        # there
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "library"))

from sarclear.cloud_layers import CloudLayer  # noqa: E402
from sarclear.fill_data import SceneArrays  # noqa: E402
from sarclear.fill_training import (  # noqa: E402
    load_training_layers,
    load_training_scenes,
    train_fill,
)
from sarclear.networks import preset  # noqa: E402
from sarclear.radiometry import OpticalScaling  # noqa: E402
from sarclear.train_config import TrainConfig  # noqa: E402

#: run name -> the shipped file it starts from and becomes
RUNS = {"fill-ms_level": "sarclear-fill-ms.safetensors", "fill_level": "sarclear-fill.safetensors"}
NODATA_DN = 65535
STEPS = OpticalScaling()  # the library's one rule: reflectance = DN / 10000


def _encode(a: np.ndarray) -> bytes:
    """uint16 planes: each value less its left and upper neighbours plus the upper-left one
    (mod 2^16, an exact 2-D difference), zigzag-mapped so that small residuals of either sign
    are small numbers; then the bytes of every value split by significance (all low bytes,
    then all high bytes), which LZMA compresses far better than the raw values."""
    if a.dtype == np.uint16:
        a = np.diff(np.diff(a, axis=-1, prepend=np.uint16(0)), axis=-2, prepend=np.uint16(0))
        s = a.view(np.int16).astype(np.int32)
        a = ((s << 1) ^ (s >> 31)).astype(np.uint16)
    return np.frombuffer(a.tobytes(), np.uint8).reshape(-1, a.itemsize).T.tobytes()


def _decode(raw: bytes, dtype: str, shape: list[int]) -> np.ndarray:
    """The inverse of :func:`_encode`."""
    item = np.dtype(dtype).itemsize
    a = np.frombuffer(raw, np.uint8).reshape(item, -1).T.copy().view(dtype).reshape(shape)
    if a.dtype == np.uint16:
        z = a.astype(np.int32)
        a = ((z >> 1) ^ -(z & 1)).astype(np.int16).view(np.uint16)
        a = np.cumsum(np.cumsum(a, axis=-2, dtype=np.uint16), axis=-1, dtype=np.uint16)
    return a


def pack(data: str, out: Path) -> None:
    """The train/val scenes and real layers of ``data`` into ``out`` (module docstring)."""
    cfg = preset("fill")
    scenes = [s for s in load_training_scenes(data, cfg.bands, cfg.sar_channels) if s.split != "test"]
    layers = load_training_layers(data, cfg.bands)
    arrays: dict[str, np.ndarray] = {}
    index = {"bands": list(cfg.bands), "scenes": [], "layers": []}
    for i, s in enumerate(scenes):
        ms = s.ms.numpy()
        dn = np.where(np.isfinite(ms), np.rint(STEPS.from_reflectance(ms)), NODATA_DN)
        if dn.min() < 0 or dn.max() > NODATA_DN:
            raise SystemExit(f"{s.name}: reflectance outside 0..6.5534; it cannot be packed as uint16 steps")
        arrays[f"ms{i}"] = dn.astype(np.uint16)
        if s.sar is not None:
            arrays[f"sar{i}"] = s.sar.numpy().astype(np.float32)
        index["scenes"].append({"name": s.name, "split": s.split, "sar": s.sar is not None})
    for i, layer in enumerate(layers):
        for field in ("alpha", "colour", "shadow"):
            arrays[f"layer{i}.{field}"] = getattr(layer, field).numpy().astype(np.float32)
        index["layers"].append({"bands": list(layer.bands), "source": layer.source,
                                "sun_azimuth_deg": layer.sun_azimuth_deg})
    out.mkdir(parents=True, exist_ok=True)
    blobs, offset = [], 0
    for key, a in arrays.items():
        b = _encode(a)
        index.setdefault("arrays", []).append({"key": key, "dtype": str(a.dtype), "shape": list(a.shape),
                                               "offset": offset, "nbytes": len(b)})
        blobs.append(b)
        offset += len(b)
    (out / "scenes.xz").write_bytes(lzma.compress(b"".join(blobs), preset=6))
    (out / "index.json").write_text(json.dumps(index, indent=1))
    for name in RUNS.values():
        shutil.copyfile(ROOT / "resources" / "models" / name, out / name)
    back, back_layers = load_pack(out)
    for s, r in zip(scenes, back):
        if not (torch.equal(s.ms.nan_to_num(-1), r.ms.nan_to_num(-1)) and s.name == r.name and s.split == r.split
                and (s.sar is None) == (r.sar is None) and (s.sar is None or torch.equal(s.sar, r.sar))):
            raise SystemExit(f"{s.name}: the pack does not read back bit for bit")
    if len(back_layers) != len(layers) or not all(torch.equal(a.alpha, b.alpha) for a, b in zip(layers, back_layers)):
        raise SystemExit("the real cloud layers do not read back bit for bit")
    size = sum(f.stat().st_size for f in out.iterdir())
    logging.info("packed %d scenes and %d layers into %s: %.1f MB, read back bit for bit",
                 len(scenes), len(layers), out, size / 1e6)


def load_pack(folder: Path) -> tuple[list[SceneArrays], list[CloudLayer]]:
    """What :func:`pack` wrote, as ``train_fill`` takes it."""
    index = json.loads((folder / "index.json").read_text())
    raw = lzma.decompress((folder / "scenes.xz").read_bytes())
    arrays = {e["key"]: _decode(raw[e["offset"]:e["offset"] + e["nbytes"]], e["dtype"], e["shape"])
              for e in index["arrays"]}
    scenes = []
    for i, s in enumerate(index["scenes"]):
        dn = arrays[f"ms{i}"]
        ms = torch.from_numpy(np.where(dn == NODATA_DN, np.float32("nan"), STEPS.to_reflectance(dn.astype(np.float32))))
        sar = torch.from_numpy(arrays[f"sar{i}"]) if s["sar"] else None
        scenes.append(SceneArrays(s["name"], ms, sar, s["split"]))
    layers = [CloudLayer(*(torch.from_numpy(arrays[f"layer{i}.{f}"]) for f in ("alpha", "colour", "shadow")),
                         bands=tuple(e["bands"]), source=e["source"], sun_azimuth_deg=e["sun_azimuth_deg"])
              for i, e in enumerate(index["layers"])]
    return scenes, layers


def train_one(run: str, pack_dir: Path, out: Path, seconds: float, batch: int, workers: int, device: str) -> None:
    """One fine-tune, as its yaml says but started from the shipped file, on ``device``."""
    scenes, layers = load_pack(pack_dir)
    config = TrainConfig.from_file(
        ROOT / "resources" / "models" / f"{run}_train.yaml", data=str(pack_dir), out=str(out / run),
        init=str(pack_dir / RUNS[run]), device=device, batch_size=batch, workers=workers,
        samples_per_epoch=batch * 100, epochs=100_000, max_minutes=seconds / 60)
    summary = train_fill(config, scenes=scenes, layers=layers)
    steps = summary["steps_done_now"]
    logging.info("%s: %d steps of %d in %.0f s (%.0f samples/s); last validation %s", run, steps, batch,
                 summary["seconds"], steps * batch / summary["seconds"], summary["history"][-1])


def train_both(pack_dir: Path, out: Path, seconds: float, batch: int, workers: int, device: str) -> None:
    """Both fine-tunes at once (one process each), then their results packed for the way back."""
    work = Path("/tmp/sarclear-gpu-train")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    procs = {run: subprocess.Popen([sys.executable, __file__, "train-one", "--run", run, "--pack", str(pack_dir),
                                    "--out", str(work), "--seconds", str(seconds), "--batch", str(batch),
                                    "--workers", str(workers), "--device", device],
                                   stdout=(work / f"{run}.log").open("w"), stderr=subprocess.STDOUT)
             for run in RUNS}
    codes = {run: p.wait() for run, p in procs.items()}
    logging.info("both runs ended in %.0f s: exit codes %s", time.time() - t0, codes)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "gpu_train.tgz", "w:gz") as tar:
        for run in RUNS:
            tar.add(work / f"{run}.log", arcname=f"{run}.log")
            for name in ("model.safetensors", "best.safetensors", "history.csv", "losses.csv", "curves.png"):
                if (work / run / name).is_file():
                    tar.add(work / run / name, arcname=f"{run}/{name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("pack", "train", "train-one"))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"), help="pack: the data folder")
    p.add_argument("--pack", default=str(ROOT / ".gpu_data"), help="train: the packed folder")
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=240, help="train: each run's time")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=7, help="train: loader processes per run")
    p.add_argument("--device", default="auto")
    p.add_argument("--run", choices=tuple(RUNS))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.what == "pack":
        pack(args.data, Path(args.out))
    elif args.what == "train":
        train_both(Path(args.pack), Path(args.out), args.seconds, args.batch, args.workers, args.device)
    else:
        train_one(args.run, Path(args.pack), Path(args.out), args.seconds, args.batch, args.workers, args.device)


if __name__ == "__main__":
    main()
