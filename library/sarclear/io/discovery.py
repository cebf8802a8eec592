"""Band discovery: expand files and folders, name each band (description, file name,
explicit order, default order) and pick the bands a model reads."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from osgeo import gdal

from ..bands import S1_CHANNELS, S2_PAPER10, default_s2_order, normalise_s1_name, normalise_s2_name
from ..errors import AcquisitionError, BandMismatchError, InputError
from .gdalio import RASTER_SUFFIXES, open_raster
from .grid import Grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandRef:
    """One band of one file, the name it was identified as, and how (``description``,
    ``file name``, ``VRT source``, ``given``, ``default order``)."""

    path: str
    index: int  # 1-based GDAL band index
    name: str
    how: str = ""


#: Sensing time in Sentinel product and file names (S2A_MSIL2A_20200223T032739_..., T33UUP_20230101T100311_B02).
SENSING_TIME = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)")


def _acquisition(relative: Path) -> str | None:
    """The acquisition a file in a folder belongs to: the first sensing time in its path
    below the folder (product folder or file name), None if it names none."""
    m = SENSING_TIME.search(relative.as_posix())
    return m.group(1) if m else None


def _pick_acquisition(folder: Path, found: list[str], acquisition: str | None,
                      input_name: str | None = None) -> list[str]:
    """The files of one acquisition: all of ``found`` when they hold one, else those whose
    path names ``acquisition`` (a date, a sensing time or a product id); several
    acquisitions and no choice is an :class:`AcquisitionError` that lists them."""
    groups: dict[str, list[str]] = {}
    for f in found:
        key = _acquisition(Path(f).relative_to(folder))
        if key is not None:
            groups.setdefault(key, []).append(f)
    if acquisition:
        token = acquisition.upper()
        chosen = [f for f in found if token in Path(f).relative_to(folder).as_posix().upper()]
        if not chosen:
            raise AcquisitionError(
                f"{folder}: no file of the acquisition {acquisition!r}; acquisitions found: "
                f"{', '.join(sorted(groups)) or 'none'}", input=input_name, option="acquisition", expected=acquisition,
                found=sorted(groups), path=str(folder))
        return chosen
    if len(groups) > 1:
        listing = "; ".join(f"{k} ({Path(v[0]).relative_to(folder).parts[0]})" for k, v in sorted(groups.items()))
        raise AcquisitionError(
            f"{folder} holds {len(groups)} acquisitions: {listing}. Choose one by its date, sensing time or "
            "product id, or give its folder", input=input_name, option="acquisition", found=sorted(groups),
            path=str(folder))
    return found


def _raster_files(inputs: str | os.PathLike | Sequence[str | os.PathLike], acquisition: str | None = None,
                  input_name: str | None = None) -> list[str]:
    """Expand the user's inputs (file, folder, or list of them) into raster file paths; a
    folder must hold one acquisition, or ``acquisition`` picks one (see
    :func:`_pick_acquisition`)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InputError("no input raster given")
    files: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES
                           and not f.name.endswith(".aux.xml"))
            if not found:
                raise InputError(f"{p}: folder holds no raster files ({', '.join(RASTER_SUFFIXES)})",
                                 path=str(p))
            files.extend(_pick_acquisition(p, found, acquisition, input_name))
        else:
            files.append(str(item))
    return files


def raster_files(inputs: str | os.PathLike | Sequence[str | os.PathLike], acquisition: str | None = None,
                 input_name: str | None = None) -> list[str]:
    """The raster files ``inputs`` stand for (folders expanded, one acquisition chosen)."""
    return _raster_files(inputs, acquisition, input_name)


def vrt_source_names(ds: gdal.Dataset, index: int) -> list[str]:
    """The files a VRT band reads (empty for other formats)."""
    if ds.GetDriver().ShortName != "VRT":
        return []
    sources = ds.GetRasterBand(index).GetMetadata("vrt_sources") or {}
    names = []
    for xml in sources.values():
        m = re.search(r"<SourceFilename[^>]*>([^<]+)</SourceFilename>", xml)
        if m:
            names.append(m.group(1))
    return names


def _band_label(ds: gdal.Dataset, index: int, path: str, single: bool) -> tuple[str, str]:
    """The text that may name a band, and where it came from: its description; else, for a
    VRT band read from one file, that file's band description or name; else (one-band
    files) the file name."""
    desc = ds.GetRasterBand(index).GetDescription() or ""
    if desc.strip():
        return desc, "description"
    sources = vrt_source_names(ds, index)
    if len(set(sources)) == 1:
        return Path(sources[0]).stem, "VRT source"
    return (Path(path).stem, "file name") if single else ("", "")


def identify_bands(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    wanted: Sequence[str],
    *,
    sensor: str,
    order: Sequence[str] | None = None,
    acquisition: str | None = None,
) -> list[BandRef]:
    """Find each band of ``wanted`` in ``inputs`` and return them in ``wanted``'s order.

    ``sensor`` is "optical" (Sentinel-2 names) or "sar" (polarisations). Bands are named
    by description or file name; failing that, by ``order`` (the user's explicit band list,
    in file order), else by the default order for the file's band count (optical) or the
    model's channel order (SAR). Where the same band appears at several resolutions (SAFE
    L2A ``R10m``/``R20m``/``R60m``), the finest wins.
    """
    all_refs, files = named_bands(inputs, sensor=sensor, order=order, wanted=wanted, acquisition=acquisition)
    chosen: dict[str, BandRef] = {}
    for ref in all_refs:
        if ref.name in wanted:
            prev = chosen.get(ref.name)
            if prev is None or _pixel_size(ref.path) < _pixel_size(prev.path):
                chosen[ref.name] = ref
    missing = [b for b in wanted if b not in chosen]
    if missing:
        found = sorted({r.name for r in all_refs if r.name}, key=_band_sort_key)
        what = "bands" if sensor == "optical" else "SAR channels"
        raise BandMismatchError(
            f"{', '.join(files) if len(files) < 4 else str(len(files)) + ' files'}: the model "
            f"needs {what} {', '.join(wanted)}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (found: {', '.join(found) or 'none'}). "
            "Supply the missing bands, name the bands in file order, or use a model trained on the bands "
            "you have", input="ms" if sensor == "optical" else "sar",
            option="ms_bands" if sensor == "optical" else "sar_channels", expected=tuple(wanted), found=tuple(found))
    return [chosen[b] for b in wanted]


def named_bands(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    sensor: str,
    order: Sequence[str] | None = None,
    wanted: Sequence[str] = (),
    acquisition: str | None = None,
) -> tuple[list[BandRef], list[str]]:
    """Every band of ``inputs`` with the name it is identified as (see
    :func:`identify_bands`), and the files they are in."""
    files = _raster_files(inputs, acquisition, "ms" if sensor == "optical" else "sar")
    normalise = normalise_s2_name if sensor == "optical" else normalise_s1_name
    all_refs: list[BandRef] = []
    unnamed: list[tuple[str, int]] = []
    for path in files:
        ds = open_raster(path)
        single = ds.RasterCount == 1
        for i in range(1, ds.RasterCount + 1):
            label, how = _band_label(ds, i, path, single)
            name = normalise(label)
            if name is None:
                unnamed.append((path, i))
            all_refs.append(BandRef(path, i, name or "", how if name else ""))

    if order is not None:  # the user's explicit list overrides names
        if len(order) != len(all_refs):
            raise BandMismatchError(
                f"{len(order)} band names given ({', '.join(order)}) for {len(all_refs)} bands "
                f"in {', '.join(files)}; give one name per band, in file order",
                input="ms" if sensor == "optical" else "sar",
                option="ms_bands" if sensor == "optical" else "sar_channels", expected=len(all_refs), found=len(order))
        canonical = [normalise(o) or o for o in order]
        all_refs = [replace(r, name=n, how="given") for r, n in zip(all_refs, canonical)]
    elif unnamed and not (wanted and set(wanted) <= {r.name for r in all_refs}):
        # unnamed bands matter only when the wanted ones are not all found by name
        default = (default_s2_order(len(all_refs)) if sensor == "optical"
                   else tuple(wanted) if len(all_refs) == len(wanted) else None)
        if default is None or (len(files) > 1 and len(unnamed) < len(all_refs)):
            by_file: dict[str, list[int]] = {}
            for p, i in unnamed:
                by_file.setdefault(Path(p).name, []).append(i)
            where = "; ".join(f"{name} band{'s' if len(ix) > 1 else ''} "
                              f"{ix[0] if len(ix) == 1 else f'{ix[0]}-{ix[-1]}'}" for name, ix in by_file.items())
            expected = (f"13 (B1..B12), 12 (L2A, no B10) or 10 ({', '.join(S2_PAPER10)})"
                        if sensor == "optical" else f"{len(wanted)} ({', '.join(wanted)})")
            _refuse_several_scenes(files, all_refs, unnamed, sensor, wanted)
            raise BandMismatchError(
                f"cannot tell which band is which: {where} carry no band name, and "
                f"{len(all_refs)} unnamed bands match no default order (expected {expected}). "
                "Name the bands in their descriptions or file names, or give their names in file order",
                input="ms" if sensor == "optical" else "sar",
                option="ms_bands" if sensor == "optical" else "sar_channels", expected=expected, found=len(all_refs))
        log.info("bands without names read in the default order: %s", ", ".join(default))
        all_refs = [replace(r, name=n, how="default order") for r, n in zip(all_refs, default)]
    return all_refs, files


def _refuse_several_scenes(files: Sequence[str], refs: Sequence[BandRef], unnamed: Sequence[tuple[str, int]],
                           sensor: str, wanted: Sequence[str]) -> None:
    """Raise when several unnamed files each hold a whole default set of bands (a folder of
    separate patches or scenes, each a 13-band stack): naming 39 bands is not the fix, picking
    one file is."""
    counts = {f: sum(1 for r in refs if r.path == f) for f in files}
    per_file = set(counts.values())
    if len(files) < 2 or len(unnamed) != len(refs) or len(per_file) != 1:
        return
    (n,) = per_file
    whole = default_s2_order(n) is not None if sensor == "optical" else n == len(wanted)
    if whole:
        raise BandMismatchError(
            f"{len(files)} files ({', '.join(Path(f).name for f in files[:3])}{', ...' if len(files) > 3 else ''}) "
            f"each hold {n} unnamed bands, a whole set: they look like {len(files)} separate scenes or patches, "
            "not the bands of one. Give one of them",
            input="ms" if sensor == "optical" else "sar", option="ms" if sensor == "optical" else "sar",
            expected=n, found=len(refs))


def _band_sort_key(name: str) -> tuple[int, str]:
    from ..bands import S2_BANDS

    order = S2_BANDS + S1_CHANNELS
    return (order.index(name) if name in order else len(order), name)


def _pixel_size(path: str) -> float:
    return Grid.of(open_raster(path)).pixel_size


def sar_channel_names(inputs: str | os.PathLike | Sequence[str | os.PathLike], order: Sequence[str] | None = None,
                      acquisition: str | None = None) -> tuple[str, ...]:
    """The SAR channels of ``inputs`` as a run would name them: by description or file name,
    else ``order``, else the conventional order (VV, VH) for one or two unnamed bands."""
    from ..bands import DEFAULT_SAR_CHANNELS

    files = _raster_files(inputs, acquisition, "sar")
    count = sum(open_raster(f).RasterCount for f in files)
    default = DEFAULT_SAR_CHANNELS[:count] if count <= len(DEFAULT_SAR_CHANNELS) else ()
    refs, _ = named_bands(files, sensor="sar", order=order, wanted=default)
    return tuple(r.name for r in refs if r.name)
