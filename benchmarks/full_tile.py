"""A full Sentinel-2 tile declouded end to end, and how far that is from the I/O floor.

    python benchmarks/full_tile.py                       # CUDA: 10980 x 10980, paper model
    python benchmarks/full_tile.py --identity --size 2048 --device cpu

The input is a generated 10980 x 10980 scene (inputs.py: 10 bands uint16 GeoTIFF, tiled
and DEFLATE-compressed, with VV/VH float32 in EPSG:4326 on a larger extent). The decloud
(read, warp, tiled blended inference with overlap, write) runs in a child process with its
peak RSS, inputs evicted from the page cache first (``--warm`` keeps them cached).

The I/O floor is measured on the same machine and files, each step alone:

* read: GDAL reads the optical and the SAR file whole, in block-aligned strips, native
  type, decode included; from the disk (evicted first) and from the page cache;
* read, library path: the library's readers over the strips decloud reads (overlapping
  tile rows, float32, nodata check, SAR warped onto the optical grid);
* write: the library's GeoTiffWriter (decloud's output format: tiled, DEFLATE, predictor)
  writing an output of the same size from strips of the input.

floor = read + write (sequential), overlapped floor = max(read, write); the table gives
decloud time / floor. Results: ``<out>/full_tile.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import common
import decloud_scaling
import inputs
import memory_use
import numpy as np
from osgeo import gdal

TARGET_SECONDS = 15.0
TARGET_RSS_BYTES = 8e9


def _evict(*paths: Path) -> bool:
    return all(memory_use.evict_from_page_cache(p) for p in paths)


def raw_read(path: Path, *, cold: bool, threads: str | None = None) -> dict[str, Any]:
    """Read every band of ``path`` in block-aligned strips of whole rows (native type);
    ``threads``: GDAL_NUM_THREADS for the read (GDAL >= 3.6 then decodes a window's tiles
    in parallel)."""
    if cold:
        _evict(path)
    previous = gdal.GetConfigOption("GDAL_NUM_THREADS")
    gdal.SetConfigOption("GDAL_NUM_THREADS", threads)
    try:
        return _raw_read(path)
    finally:
        gdal.SetConfigOption("GDAL_NUM_THREADS", previous)


def _raw_read(path: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds = gdal.Open(str(path))
    w, h = ds.RasterXSize, ds.RasterYSize
    step = ds.GetRasterBand(1).GetBlockSize()[1]
    decoded = 0
    for r0 in range(0, h, step):
        arr = ds.ReadAsArray(0, r0, w, min(step, h - r0))
        decoded += arr.nbytes
    ds = None
    dt = time.perf_counter() - t0
    return {"seconds": dt, "disk_bytes": path.stat().st_size, "decoded_bytes": decoded}


def library_read(sc: inputs.Scene, tile: int = 256, overlap: int = 64, *, cold: bool = True) -> dict[str, Any]:
    """The library's readers over decloud's strips (tile rows, full width), optical and SAR."""
    from sarclear.bands import DEFAULT_SAR_CHANNELS, S2_PAPER10
    from sarclear.raster import open_optical, open_sar
    from sarclear.tiling import Window, tile_offsets

    if cold:
        _evict(sc.s2, sc.s1)
    out = {}
    t0 = time.perf_counter()
    ms = open_optical(str(sc.s2), S2_PAPER10)
    sar = open_sar(str(sc.s1), DEFAULT_SAR_CHANNELS, ms.grid)
    out["open_s"] = time.perf_counter() - t0
    for name, stack in (("optical", ms), ("sar", sar)):
        t0 = time.perf_counter()
        reader = stack.open()
        decoded = 0
        for r0 in tile_offsets(sc.height, tile, overlap):
            block, _ = reader.read(Window(0, r0, sc.width, tile))
            decoded += block.nbytes
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_float32_bytes"] = decoded
    out["seconds"] = out["open_s"] + out["optical_s"] + out["sar_s"]
    return out


def write_test(sc: inputs.Scene, path: Path, *, strips: int = 4, rows: int = 256) -> dict[str, Any]:
    """Write a size x size 10-band uint16 GeoTIFF the way decloud writes its output (256-row
    blocks through GeoTiffWriter), cycling ``strips`` strips read from the input."""
    from sarclear.raster import GeoTiffWriter, Grid
    from sarclear.tiling import Window

    src = gdal.Open(str(sc.s2))
    grid = Grid.of(src)
    picks = np.linspace(0, max(0, sc.height - rows), strips).astype(int)
    data = [src.ReadAsArray(0, int(r), sc.width, min(rows, sc.height)) for r in picks]
    src = None
    t0 = time.perf_counter()
    with GeoTiffWriter(path, grid, len(data[0]), gdal.GDT_UInt16, nodata=0, overwrite=True) as writer:
        for i, r0 in enumerate(range(0, sc.height, rows)):
            block = data[i % len(data)][:, :min(rows, sc.height - r0)]
            writer.write(Window(0, r0, sc.width, block.shape[1]), block)
    dt = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return {"seconds": dt, "disk_bytes": size, "decoded_bytes": sc.s2_decoded_bytes}


def _mbps(nbytes: float | None, seconds: float | None) -> float | None:
    return nbytes / seconds / 1e6 if nbytes and seconds else None


def io_floor(sc: inputs.Scene, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each I/O step alone (module docstring): raw reads cold and warm, single- and
    multi-threaded, the library's read path, and the write."""
    io: dict[str, dict[str, Any]] = {}
    print(f"[full tile] {sc.width} x {sc.height}: I/O floor ...", file=sys.stderr, flush=True)
    for cold in (True, False):
        key = "cold" if cold else "warm"
        io[f"read optical ({key})"] = raw_read(sc.s2, cold=cold)
        io[f"read SAR ({key})"] = raw_read(sc.s1, cold=cold)
        io[f"read optical ({key}, GDAL_NUM_THREADS=ALL_CPUS)"] = raw_read(sc.s2, cold=cold, threads="ALL_CPUS")
        io[f"read SAR ({key}, GDAL_NUM_THREADS=ALL_CPUS)"] = raw_read(sc.s1, cold=cold, threads="ALL_CPUS")
    lib = library_read(sc, cold=not args.warm)
    io["library read (optical + SAR warp)"] = {"seconds": lib["seconds"],
                                               "decoded_bytes": lib["optical_float32_bytes"] + lib["sar_float32_bytes"],
                                               **lib}
    io["write output (GeoTiffWriter)"] = write_test(sc, args.workdir / "outputs" / "write_test.tif")
    return io


def run(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    device = common.resolve(args.device)
    sc = inputs.scene(args.size, args.workdir)
    io: dict[str, dict[str, Any]] = {} if args.no_floor else io_floor(sc, args)

    runs = []
    modes = [] if args.no_decloud else [True, False] if args.compare_unthreaded else [True]
    what = "identity generator" if args.identity else f"{args.model} model"
    for threaded in modes:
        print(f"[full tile] decloud ({what}, io_threads={threaded}) ...", file=sys.stderr, flush=True)
        if not args.warm:
            _evict(sc.s2, sc.s1)
        res = decloud_scaling.run_decloud(sc, args.workdir, model=args.model, identity=args.identity,
                                          device=str(device), batch_size=args.batch_size, io_threads=threaded,
                                          model_only=device.type == "cuda", timeout=args.timeout,
                                          tag=f"full_{sc.width}")
        res["io_threads"] = threaded
        runs.append(res)
        if "failed" in res:
            print(f"[full tile] failed:\n{res['output'][-2000:]}", file=sys.stderr)

    cache = "warm" if args.warm else "cold"
    floor = floor_overlapped = lib_floor = None
    if io:
        read_s = sum(min(io[f"read {f} ({cache})"]["seconds"], io[f"read {f} ({cache}, GDAL_NUM_THREADS=ALL_CPUS)"]
                         ["seconds"]) for f in ("optical", "SAR"))
        write_s = io["write output (GeoTiffWriter)"]["seconds"]
        floor, floor_overlapped = read_s + write_s, max(read_s, write_s)
        lib_floor = io["library read (optical + SAR warp)"]["seconds"] + write_s
    io_rows = [{"step": k, "seconds": v["seconds"], "disk_mb": (v.get("disk_bytes") or 0) / 1e6 or None,
                "decoded_mb": (v.get("decoded_bytes") or 0) / 1e6 or None,
                "disk_mb_s": _mbps(v.get("disk_bytes"), v["seconds"]),
                "decoded_mb_s": _mbps(v.get("decoded_bytes"), v["seconds"])} for k, v in io.items()]
    summary = []
    for res in runs:
        row: dict[str, Any] = {"decloud": what, "io_threads": res["io_threads"], "cache": cache}
        if "failed" in res:
            row["failed"] = res["failed"]
        else:
            row.update(seconds=res["seconds"], tiles=res["tiles"], patches_per_s=res["patches_per_s"],
                       model_only_s=res.get("model_only_seconds"),
                       peak_rss_gb=res["peak_rss_bytes"] / 1e9, peak_cuda_gib=common.gib(res.get("peak_cuda_bytes")),
                       floor_s=floor, vs_floor=res["seconds"] / floor if floor else None,
                       overlapped_floor_s=floor_overlapped,
                       vs_overlapped_floor=res["seconds"] / floor_overlapped if floor_overlapped else None,
                       library_floor_s=lib_floor,
                       meets_seconds=common.target_check(res["seconds"], TARGET_SECONDS, higher_is_better=False)
                       if device.type == "cuda" and sc.width >= 10980 else None,
                       meets_rss=common.target_check(res["peak_rss_bytes"], TARGET_RSS_BYTES, higher_is_better=False))
        summary.append(row)
    name = common.device_name(device)
    tables = {
        f"I/O floor of a {sc.width} x {sc.height} scene on {name}": common.markdown_table(io_rows, [
            ("step", "step"), ("seconds", "seconds"), ("disk_mb", "MB on disk"), ("disk_mb_s", "disk MB/s"),
            ("decoded_mb", "MB decoded"), ("decoded_mb_s", "decoded MB/s")]),
        f"Full tile {sc.width} x {sc.height} end to end on {name}": common.markdown_table(summary, [
            ("decloud", "model"), ("io_threads", "overlapped I/O"), ("cache", "inputs"), ("tiles", "tiles"),
            ("seconds", "seconds (<= 15)"), ("patches_per_s", "patches/s"), ("model_only_s", "model alone s"),
            ("peak_rss_gb", "peak RSS GB (<= 8)"),
            ("peak_cuda_gib", "peak CUDA GiB"), ("floor_s", "I/O floor s (read + write)"),
            ("vs_floor", "x floor"), ("overlapped_floor_s", "max(read, write) s"),
            ("vs_overlapped_floor", "x overlapped floor"), ("library_floor_s", "library read + write s"),
            ("failed", "failed")]),
    }
    notes = [f"inputs: optical {sc.s2.stat().st_size / 1e6:,.0f} MB on disk ({sc.s2_decoded_bytes / 1e6:,.0f} MB "
             f"decoded), SAR {sc.s1.stat().st_size / 1e6:,.0f} MB on disk ({sc.s1_decoded_bytes() / 1e6:,.0f} MB "
             "decoded)",
             "floor: not measured (--no-floor)" if not io else
             f"floor: the faster of the single- and multi-threaded {cache} reads of each input, plus the write; "
             "'library read' is the library's reader path over decloud's overlapping tile rows (float32 conversion "
             "and the SAR warp included), with GDAL's defaults as decloud runs it",
             f"targets: <= {TARGET_SECONDS:.0f} s on the H100 machine, peak RSS <= {TARGET_RSS_BYTES / 1e9:.0f} GB"]
    return {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "scene": {"s2": str(sc.s2), "s1": str(sc.s1), "width": sc.width, "height": sc.height},
            "io": io, "io_rows": io_rows, "floor": {"read_write_s": floor, "overlapped_s": floor_overlapped,
                                                    "library_read_write_s": lib_floor},
            "runs": runs, "summary": summary, "tables": tables, "notes": notes,
            "targets": {"seconds": TARGET_SECONDS, "peak_rss_bytes": TARGET_RSS_BYTES}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p)
    p.add_argument("--size", type=int, default=None, help="scene size (default 10980, quick 512)")
    p.add_argument("--model", default=None, help="lite, paper or a model file (default paper)")
    p.add_argument("--identity", action="store_true", help="a generator that returns its input: I/O path only")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per batch (default: the library's)")
    p.add_argument("--warm", action="store_true", help="leave the inputs in the page cache")
    p.add_argument("--compare-unthreaded", action="store_true",
                   help="also decloud with reads/compute/writes in turn (io_threads off)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per decloud before it is killed")
    p.add_argument("--no-floor", action="store_true",
                   help="decloud only, without the I/O floor's steps (which take longer than the decloud)")
    p.add_argument("--no-decloud", action="store_true",
                   help="the I/O floor's steps only (a lease too short for both keeps what it measured)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    device = common.resolve(args.device)
    args.size = args.size or (512 if args.quick else 10980)
    args.model = args.model or "paper"
    out_dir = args.out or common.default_out_dir(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "outputs").mkdir(parents=True, exist_ok=True)
    result = run(args, out_dir)
    common.publish("full_tile", result, out_dir, device)
    return result


if __name__ == "__main__":
    main()
