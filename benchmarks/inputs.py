"""Large synthetic-but-realistic inputs, generated from the real samples and cached.

A *scene* of size N is what a user feeds to ``sarclear decloud``:

* ``s2_<N>.tif``: N x N pixels, the paper's 10 Sentinel-2 bands (B2..B12, named in the band
  descriptions), uint16 DN, UTM zone 31N at 10 m; tiled 512 x 512, DEFLATE with the
  horizontal predictor, one band after the other (as the per-band JPEG 2000 files of a
  SAFE product are), BigTIFF when needed. Its pixels are the real cloudy SEN12MS-CR
  sample (256 x 256) repeated with mirroring, so texture and clouds stay continuous, plus
  a few DN of noise, so that compression and decoding cost what they cost on real data
  (a pure mirror mosaic would compress many times better than a real image).
* ``s1_<N>.tif``: VV and VH backscatter in dB, float32, on ANOTHER grid: EPSG:4326 at
  about 10 m, covering the optical extent plus a margin (so decloud warps it on the fly);
  the real SAR sample mirrored likewise, with about 0.5 dB of speckle-like noise; DEFLATE
  with the floating-point predictor.

Files are written strip by strip (never the whole raster in memory), into a temporary
name renamed into place, so an interrupted generation is never mistaken for a cache hit.

``huge_scene(20000)`` is a virtual raster: a VRT that references the 2048 scene 10 x 10
times (and a VRT of its SAR likewise, in EPSG:4326), for the memory benchmark of a
decloud larger than the host's memory would allow whole; it costs no disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from common import SAMPLES
from osgeo import gdal, osr

from sarclear.bands import S2_BANDS, S2_PAPER10

SAMPLE_S2 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s2_cloudy_19_p30.tif"
SAMPLE_S1 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s1_19_p30.tif"
VERSION = 1  # bump when the generated content changes: cached files get new names
VRT_VERSION = 2  # likewise for the virtual scenes (2: the SAR VRT's axis order fixed)
BLOCK = 512
S2_OPTIONS = ("TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "COMPRESS=DEFLATE", "PREDICTOR=2",
              "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS")
S1_OPTIONS = ("TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "COMPRESS=DEFLATE", "PREDICTOR=3",
              "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS")
S2_NOISE_DN = 12       # +- DN of uniform noise on the optical mosaic
S1_NOISE_DB = 0.5      # standard deviation of the SAR noise, dB
SAR_MARGIN = 0.03      # SAR extent beyond the optical one, fraction of its size per side
M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)


@dataclass(frozen=True)
class Scene:
    """A generated optical raster and its SAR on another grid."""

    s2: Path
    s1: Path
    width: int
    height: int
    virtual: bool = False

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def s2_decoded_bytes(self) -> int:
        """Bytes of optical pixels once decoded: 10 bands of uint16."""
        return self.width * self.height * len(S2_PAPER10) * 2

    def s1_decoded_bytes(self) -> int:
        ds = gdal.Open(str(self.s1))
        return ds.RasterXSize * ds.RasterYSize * ds.RasterCount * 4

    def disk_bytes(self) -> int:
        """Bytes on disk of both inputs (for a VRT: of the files it references, once)."""
        if self.virtual:
            return 0
        return self.s2.stat().st_size + self.s1.stat().st_size


def mirror_index(n: int, period: int, start: int = 0) -> np.ndarray:
    """Indices ``start..start+n`` folded into ``[0, period)`` by mirroring: 0 1 .. p-1 p-1 .. 1 0 0 1 .."""
    i = np.arange(start, start + n) % (2 * period)
    return np.where(i < period, i, 2 * period - 1 - i)


def _sample_s2() -> tuple[np.ndarray, gdal.Dataset]:
    ds = gdal.Open(str(SAMPLE_S2))
    data = ds.ReadAsArray()  # (13, 256, 256), B1..B12
    return data[[S2_BANDS.index(b) for b in S2_PAPER10]], ds


def _create(path: Path, width: int, height: int, count: int, dtype: int, options: tuple[str, ...],
            geotransform: tuple[float, ...], wkt: str, descriptions: tuple[str, ...]) -> gdal.Dataset:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, count, dtype, list(options))
    if ds is None:
        raise OSError(f"cannot create {path}: {gdal.GetLastErrorMsg()}")
    ds.SetGeoTransform(geotransform)
    ds.SetProjection(wkt)
    for i, d in enumerate(descriptions):
        ds.GetRasterBand(i + 1).SetDescription(d)
    return ds


def _write_strips(ds: gdal.Dataset, make_strip) -> None:
    """Fill ``ds`` strip by strip: ``make_strip(row0, rows)`` -> (bands, rows, width)."""
    for r0 in range(0, ds.RasterYSize, BLOCK):
        rows = min(BLOCK, ds.RasterYSize - r0)
        strip = make_strip(r0, rows)
        for i in range(ds.RasterCount):
            if ds.GetRasterBand(i + 1).WriteArray(strip[i], 0, r0) != 0:
                raise OSError(f"writing {ds.GetDescription()}: {gdal.GetLastErrorMsg()}")


def _publish(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def make_s2(path: Path, width: int, height: int, *, seed: int = 0) -> Path:
    """The optical mosaic (see the module docstring), written strip by strip."""
    unit, src = _sample_s2()
    cols = mirror_index(width, unit.shape[2])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    ds = _create(tmp, width, height, unit.shape[0], gdal.GDT_UInt16, S2_OPTIONS, src.GetGeoTransform(),
                 src.GetProjection(), S2_PAPER10)

    def strip(r0: int, rows: int) -> np.ndarray:
        block = unit[:, mirror_index(rows, unit.shape[1], r0)][:, :, cols].astype(np.int32)
        rng = np.random.default_rng([seed, r0])
        block += rng.integers(-S2_NOISE_DN, S2_NOISE_DN + 1, size=block.shape, dtype=np.int32)
        return np.clip(block, 1, 65535).astype(np.uint16)

    try:
        _write_strips(ds, strip)
        ds = None  # close: flush and finish compression
    except BaseException:
        ds = None
        tmp.unlink(missing_ok=True)
        raise
    return _publish(tmp, path)


def sar_grid_for(s2_path: Path, margin: float = SAR_MARGIN) -> tuple[int, int, tuple[float, ...], str]:
    """(width, height, geotransform, WKT) of an EPSG:4326 grid at about the optical pixel
    size that covers the optical raster plus ``margin`` of its size on every side."""
    ds = gdal.Open(str(s2_path))
    gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    src = osr.SpatialReference(wkt=ds.GetProjection())
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    xmin, xmax = gt[0], gt[0] + w * gt[1]
    ymax, ymin = gt[3], gt[3] + h * gt[5]
    lon0, lat0, lon1, lat1 = osr.CoordinateTransformation(src, dst).TransformBounds(xmin, ymin, xmax, ymax, 21)
    dlon, dlat = lon1 - lon0, lat1 - lat0
    lon0, lon1 = lon0 - margin * dlon, lon1 + margin * dlon
    lat0, lat1 = lat0 - margin * dlat, lat1 + margin * dlat
    py = abs(gt[5]) / M_PER_DEG
    px = abs(gt[1]) / (M_PER_DEG * math.cos(math.radians(0.5 * (lat0 + lat1))))
    width, height = math.ceil((lon1 - lon0) / px), math.ceil((lat1 - lat0) / py)
    return width, height, (lon0, px, 0.0, lat1, 0.0, -py), dst.ExportToWkt()


def make_s1(path: Path, s2_path: Path, *, seed: int = 1) -> Path:
    """The SAR mosaic in EPSG:4326 around ``s2_path`` (see the module docstring)."""
    unit = gdal.Open(str(SAMPLE_S1)).ReadAsArray().astype(np.float32)  # (2, 256, 256) dB: VV, VH
    width, height, gt, wkt = sar_grid_for(s2_path)
    cols = mirror_index(width, unit.shape[2])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    ds = _create(tmp, width, height, unit.shape[0], gdal.GDT_Float32, S1_OPTIONS, gt, wkt, ("VV", "VH"))

    def strip(r0: int, rows: int) -> np.ndarray:
        block = unit[:, mirror_index(rows, unit.shape[1], r0)][:, :, cols]
        rng = np.random.default_rng([seed, r0])
        return block + rng.standard_normal(block.shape, dtype=np.float32) * np.float32(S1_NOISE_DB)

    try:
        _write_strips(ds, strip)
        ds = None
    except BaseException:
        ds = None
        tmp.unlink(missing_ok=True)
        raise
    return _publish(tmp, path)


def scene(size: int, workdir: Path) -> Scene:
    """The size x size scene, generated on first use and cached in ``workdir/inputs``."""
    folder = workdir / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    s2 = folder / f"s2_{size}_v{VERSION}.tif"
    s1 = folder / f"s1_{size}_v{VERSION}.tif"
    if not s2.exists():
        make_s2(s2, size, size)
    if not s1.exists():
        make_s1(s1, s2)
    return Scene(s2, s1, size, size)


# --------------------------------------------------------------------------- virtual rasters


def _tiled_vrt(path: Path, source: Path, width: int, height: int, geotransform: tuple[float, ...], wkt: str,
               descriptions: tuple[str, ...]) -> Path:
    """A VRT of ``width`` x ``height`` on the given grid whose every band is ``source``'s
    band, repeated side by side (edge copies clipped)."""
    ds = gdal.Open(str(source))
    sw, sh, count = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
    band = ds.GetRasterBand(1)
    dtype = gdal.GetDataTypeName(band.DataType)
    bx, by = band.GetBlockSize()
    # the source's own axis order (GeoTIFFs are longitude, latitude; EPSG:4326 itself says
    # latitude first): a wrong mapping puts a geographic VRT on the other side of the globe
    srs = ds.GetSpatialRef()
    mapping = ",".join(map(str, srs.GetDataAxisToSRSAxisMapping())) if srs is not None else "1,2"
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f'  <SRS dataAxisToSRSAxisMapping="{mapping}">{escape(wkt)}</SRS>',
             "  <GeoTransform>" + ", ".join(repr(float(v)) for v in geotransform) + "</GeoTransform>"]
    for b in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{dtype}" band="{b}">')
        if b <= len(descriptions):
            lines.append(f"    <Description>{escape(descriptions[b - 1])}</Description>")
        for r0 in range(0, height, sh):
            for c0 in range(0, width, sw):
                w, h = min(sw, width - c0), min(sh, height - r0)
                lines += ["    <SimpleSource>",
                          f'      <SourceFilename relativeToVRT="0">{escape(str(source))}</SourceFilename>',
                          f"      <SourceBand>{b}</SourceBand>",
                          f'      <SourceProperties RasterXSize="{sw}" RasterYSize="{sh}" DataType="{dtype}" '
                          f'BlockXSize="{bx}" BlockYSize="{by}"/>',
                          f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
                          f'      <DstRect xOff="{c0}" yOff="{r0}" xSize="{w}" ySize="{h}"/>',
                          "    </SimpleSource>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text("\n".join(lines) + "\n")
    return _publish(tmp, path)


def huge_scene(size: int, workdir: Path, *, source_size: int = 2048) -> Scene:
    """A size x size optical VRT made of the ``source_size`` scene repeated, and a SAR VRT
    in EPSG:4326 covering it, made of that scene's SAR file repeated."""
    base = scene(source_size, workdir)
    folder = workdir / "inputs"
    s2 = folder / f"s2_{size}_vrt{source_size}_v{VERSION}.{VRT_VERSION}.vrt"
    s1 = folder / f"s1_{size}_vrt{source_size}_v{VERSION}.{VRT_VERSION}.vrt"
    src = gdal.Open(str(base.s2))
    if not s2.exists():
        _tiled_vrt(s2, base.s2, size, size, src.GetGeoTransform(), src.GetProjection(), S2_PAPER10)
    if not s1.exists():
        width, height, gt, wkt = sar_grid_for(s2)
        _tiled_vrt(s1, base.s1, width, height, gt, wkt, ("VV", "VH"))
    return Scene(s2, s1, size, size, virtual=True)


def scene_for(token: str, workdir: Path) -> Scene:
    """``"1024"`` -> the 1024 scene (GeoTIFF); ``"vrt20000"`` -> the 20000 virtual scene
    (referencing the 2048 scene; smaller virtual scenes reference a quarter-size one)."""
    token = token.strip().lower()
    if token.startswith("vrt"):
        size = int(token[3:])
        return huge_scene(size, workdir, source_size=2048 if size >= 8192 else max(256, size // 4))
    return scene(int(token), workdir)


# --------------------------------------------------------------------------- training pairs


def window_manifest(path: Path, sc: Scene, count: int, size: int) -> Path:
    """A training manifest of ``count`` windows of ``size`` pixels of scene ``sc`` (all in
    the train split): the trainer reads each window and warps its SAR once."""
    per_row = max(1, sc.width // size)
    if count > per_row * max(1, sc.height // size):
        raise ValueError(f"{count} windows of {size} px do not fit a {sc.width} x {sc.height} scene")
    rows = ["s1,s2_clear,split,window"]
    for i in range(count):
        c, r = (i % per_row) * size, (i // per_row) * size
        rows.append(f'{sc.s1},{sc.s2},train,"{c},{r},{size},{size}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path


def pair_files(folder: Path, sc: Scene, count: int, size: int = 256) -> Path:
    """``count`` SEN12MS-CR-like pair files (``size`` px S2 and its SAR warped onto the same
    grid, one GeoTIFF each) cut from scene ``sc``, and a manifest listing them; cached."""
    manifest = folder / f"pairs_{count}_{size}.csv"
    if manifest.exists():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    per_row = max(1, sc.width // size)
    if count > per_row * max(1, sc.height // size):
        raise ValueError(f"{count} pairs of {size} px do not fit a {sc.width} x {sc.height} scene")
    src = gdal.Open(str(sc.s2))
    gt = src.GetGeoTransform()
    rows = ["s1,s2_clear,split"]
    for i in range(count):
        c, r = (i % per_row) * size, (i // per_row) * size
        s2, s1 = folder / f"p{i:05d}_s2.tif", folder / f"p{i:05d}_s1.tif"
        gdal.Translate(str(s2), src, srcWin=[c, r, size, size], creationOptions=["COMPRESS=DEFLATE", "PREDICTOR=2"])
        x0, y0 = gt[0] + c * gt[1], gt[3] + r * gt[5]
        gdal.Warp(str(s1), str(sc.s1), dstSRS=src.GetProjection(), outputBounds=(x0, y0 + size * gt[5],
                                                                                   x0 + size * gt[1], y0),
                  width=size, height=size, resampleAlg="bilinear", creationOptions=["COMPRESS=DEFLATE"])
        rows.append(f"{s1.name},{s2.name},train")
    tmp = manifest.with_name(f".{manifest.name}.part")
    tmp.write_text("\n".join(rows) + "\n")
    return _publish(tmp, manifest)
