"""Decloud with a cloud mask: clear pixels are kept exactly, a mask-aware model fills only
the hidden ones and writes its uncertainty. Real Sentinel-2 scene, synthetic thick cloud."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import SEA, read_raster, write_raster
from osgeo import gdal

from sarclear import checkpoint, inference, networks
from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.errors import InputError
from sarclear.fill import mean_fill
from sarclear.mask_detectors import dilate

CLEAR_S2 = SEA / "s2_cloudfree" / "ROIs1158_spring_101_31.tif"
CLEAR_S1 = SEA / "s1" / "ROIs1158_spring_101_31.tif"


class PriorGenerator(torch.nn.Module):
    """A mask-aware generator that returns its prior (the normalized-convolution fill) and a
    variance that grows with the distance into the hole (how far the prior extrapolates)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, observed, clear, prior, sar):
        hidden = 1 - clear
        log_var = torch.log(1e-6 + 1e-3 * torch.nn.functional.avg_pool2d(hidden, 31, 1, 15)).expand_as(prior)
        return prior + 0 * self.dummy, log_var


def _prior_model() -> checkpoint.Model:
    config = dataclasses.replace(networks.preset("lite"), kind="gapfill")
    return checkpoint.Model(PriorGenerator(), config)


def _cloudy_scene(tmp_path):
    """The clear sea/coast scene with a thick synthetic cloud (reflectance 0.6) and its mask."""
    clear = read_raster(CLEAR_S2)[0]
    cloudy = clear.copy()
    mask = np.zeros(clear.shape[1:], np.uint8)
    mask[70:150, 90:190] = 1
    cloudy[:, mask == 1] = 6000
    write_raster(tmp_path / "cloudy.tif", cloudy, like=CLEAR_S2)
    write_raster(tmp_path / "mask.tif", mask[None], like=CLEAR_S2, dtype=1)  # GDT_Byte
    return clear, mask


def test_a_mask_aware_model_fills_only_the_hidden_pixels_and_writes_its_uncertainty(tmp_path):
    clear, mask = _cloudy_scene(tmp_path)
    model = _prior_model()
    # the mask is exact (the cloud has no haze beyond it): no fill buffer, as the README says for such a mask
    res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, model, tmp_path / "out.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif"), fill_buffer=0))
    out = read_raster(res.output)[0].astype(np.float64)
    idx = [S2_BANDS.index(b) for b in S2_PAPER10]
    truth, cloudy = clear[idx].astype(np.float64), read_raster(tmp_path / "cloudy.tif")[0][idx].astype(np.float64)
    kept = mask == 0
    assert np.array_equal(out[:, kept], np.clip(cloudy[:, kept], 1, None))  # clear pixels exactly as they were
    hidden = mask == 1
    rmse = np.sqrt(((out[:, hidden] - truth[:, hidden]) ** 2).mean()) / 1e4
    m = mean_fill(torch.from_numpy(cloudy[None] / 1e4), torch.from_numpy(kept[None, None].astype(np.float64)))
    rmse_mean = np.sqrt(((m[0].numpy()[:, hidden] - truth[:, hidden] / 1e4) ** 2).mean())
    rmse_input = np.sqrt(((cloudy[:, hidden] - truth[:, hidden]) ** 2).mean()) / 1e4
    assert rmse < rmse_mean < rmse_input  # the normalized-convolution prior beats the mean fill here
    sigma = read_raster(res.maps["uncertainty"])[0]
    assert sigma.shape == mask.shape and (sigma[kept] == 0).all()
    assert sigma[110, 140] > sigma[72, 140] > 0  # deeper inside the hole: less sure


def test_the_default_model_is_less_sure_where_the_fill_drew_from_varied_ground(tmp_path):
    """sarclear-fill-classic: its uncertainty is the calibrated spread of what the fill averaged
    (sarclear.fill.fill_variance), so a hole in a uniform field is surer than one in varied land."""
    from sarclear.resources import bundled_models

    path = next(p for p in bundled_models() if p.name == "sarclear-fill-classic.safetensors")
    gain, floor, _ = checkpoint.load_model(path).config.fill_sigma
    assert gain > 0 and floor > 0
    scene = np.full((13, 96, 192), 800, np.uint16)  # left: a uniform field; right: 20 m stripes
    scene[:, :, 96::4] = 2400
    scene[:, :, 97::4] = 2400
    mask = np.zeros((96, 192), np.uint8)
    mask[36:60, 36:60] = 1
    mask[36:60, 132:156] = 1
    scene[:, mask == 1] = 6000
    write_raster(tmp_path / "scene.tif", scene, like=CLEAR_S2)
    write_raster(tmp_path / "mask.tif", mask[None], like=CLEAR_S2, dtype=1)
    res = inference.decloud(tmp_path / "scene.tif", None, path, tmp_path / "out.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif"),
                                                             fill_buffer=0))  # an exact mask (no haze past it)
    sigma = read_raster(res.maps["uncertainty"])[0]
    assert res.product_level == "l1c" and res.haze == 0  # 13 bands; ground no bluer than clear L1C's darkest
    assert (sigma[mask == 0] == 0).all()
    assert np.float32(floor) <= sigma[48, 48] < 1.5 * floor          # uniform sources: about the floor
    assert sigma[48, 144] == pytest.approx(np.hypot(gain * 0.08, floor), rel=0.1)  # stripes: +-0.08 around 0.16


def test_the_default_model_is_less_sure_when_the_clear_pixels_are_hazy(tmp_path):
    """A veil that the mask does not catch biases the fill, and the fill's own spread cannot see
    it; the default model widens its uncertainty by how far the veil lifts the scene's darkest
    ground (sarclear.fill.haze_excess). Same real scene, same mask, with and without a veil."""
    from sarclear.resources import bundled_models

    path = next(p for p in bundled_models() if p.name == "sarclear-fill-classic.safetensors")
    _, mask = _cloudy_scene(tmp_path)
    cloudy = read_raster(tmp_path / "cloudy.tif")[0].astype(np.float64)
    write_raster(tmp_path / "hazy.tif", np.round(0.7 * cloudy + 0.3 * 3500).astype(np.uint16), like=CLEAR_S2)
    sigmas, hazes = [], []
    for name in ("cloudy", "hazy"):
        res = inference.decloud(tmp_path / f"{name}.tif", None, path, tmp_path / f"{name}_out.tif", maps=False,
                                options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif")))
        assert res.product_level == "l1c"  # a 13-band file
        sigmas.append(read_raster(res.maps["uncertainty"])[0])
        hazes.append(res.haze)
    hidden = mask == 1
    assert hazes[1] > hazes[0] + 0.05  # the veil lifts dark sea by 0.3 x (0.35 - its 0.05-0.1)
    assert (sigmas[1][hidden] > sigmas[0][hidden]).all()
    assert (sigmas[1][~hidden] == 0).all()  # clear pixels are kept: nothing to doubt


def test_without_a_mask_a_mask_aware_model_keeps_the_input(tmp_path):
    _cloudy_scene(tmp_path)
    model = _prior_model()
    res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, model, tmp_path / "out.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=None))
    out = read_raster(res.output)[0]
    cloudy = read_raster(tmp_path / "cloudy.tif")[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
    assert np.array_equal(out, np.clip(cloudy, 1, None)) and any("no cloud mask" in n for n in res.notes)


def test_the_fill_buffer_keeps_a_missed_halo_out_of_the_fill_and_leaves_clear_pixels_alone(tmp_path):
    clear, mask = _cloudy_scene(tmp_path)
    cloudy = read_raster(tmp_path / "cloudy.tif")[0]
    halo = np.zeros_like(mask, bool)
    halo[68:152, 88:192] = True
    halo &= mask == 0
    cloudy[:, halo] = 4000  # bright cloud edge that the mask misses
    write_raster(tmp_path / "halo.tif", cloudy, like=CLEAR_S2)
    idx = [S2_BANDS.index(b) for b in S2_PAPER10]
    truth = clear[idx].astype(np.float64)
    hidden = mask == 1
    errors = {}
    for buffer in (0, 2, 9, None):  # None: the default for a mask file (9 px)
        res = inference.decloud(tmp_path / "halo.tif", CLEAR_S1, _prior_model(), tmp_path / f"out{buffer}.tif",
                                maps=False, options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif"),
                                                                             fill_buffer=buffer))
        out = read_raster(res.output)[0].astype(np.float64)
        assert np.array_equal(out[:, ~hidden], np.clip(cloudy[idx][:, ~hidden], 1, None))  # halo kept as seen
        errors[buffer] = np.sqrt(((out[:, hidden] - truth[:, hidden]) ** 2).mean()) / 1e4
    assert errors[2] < 0.5 * errors[0] and errors[9] < 0.5 * errors[0] and errors[None] == errors[9]
    # a detected mask is grown first: the fill's sources start 9 px past the cloud's edge counting that
    assert [inference.DecloudOptions(mask_buffer=px).fill_buffer_px for px in (9, 1, 0)] == [0, 8, 9]
    assert inference.DecloudOptions(cloud_mask="mask.tif", mask_buffer=0).fill_buffer_px == 9
    with pytest.raises(InputError, match="fill buffer"):
        inference.decloud(tmp_path / "halo.tif", CLEAR_S1, _prior_model(), tmp_path / "bad.tif", maps=False,
                          options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif"), fill_buffer=-1))


def test_the_detected_mask_grows_by_the_mask_buffer_and_a_bad_buffer_is_named(tmp_path):
    """--mask auto: the mask written beside the output is the unbuffered detection grown by
    ``mask_buffer`` pixels (default 9, 90 m at 10 m), and only the masked pixels change."""
    _, mask = _cloudy_scene(tmp_path)
    hidden = {}
    for px in (0, 9):
        res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, _prior_model(), tmp_path / f"auto{px}.tif",
                                maps=False, options=inference.DecloudOptions(mask_method="rules", mask_buffer=px))
        classes = np.squeeze(read_raster(tmp_path / f"auto{px}_mask.tif")[0])
        hidden[px] = np.isin(classes, (1, 2))
        kept = classes == 0
        out = read_raster(res.output)[0]
        cloudy = read_raster(tmp_path / "cloudy.tif")[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
        assert kept.mean() > 0.5 and np.array_equal(out[:, kept], np.clip(cloudy[:, kept], 1, None))
    assert hidden[0][mask == 1].mean() > 0.95
    assert np.array_equal(hidden[9], dilate(hidden[0], 9) & (classes != 255))
    assert inference.DecloudOptions().mask_buffer == 9
    with pytest.raises(InputError, match="mask buffer"):
        inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, _prior_model(), tmp_path / "bad.tif", maps=False,
                          options=inference.DecloudOptions(mask_buffer=65))


def test_the_detector_reads_the_product_level_given_or_named_else_guesses_it_and_says_so(tmp_path):
    """A 10-band stack without B10 and without a product name is guessed L2A, with a note; the
    caller's --product-level wins, and so does MSIL1C in the file name. The mask file records
    the level used; a level that is neither is refused before any work."""
    clear = read_raster(CLEAR_S2)[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
    named = tmp_path / "S2B_MSIL1C_20200101T100000_N0208_R022_T33UUP_20200101T120000.tif"
    for path in (tmp_path / "stack.tif", named):
        write_raster(path, clear, like=CLEAR_S2)
    runs = {"guessed": (tmp_path / "stack.tif", None), "given": (tmp_path / "stack.tif", "L1C"),
            "named": (named, None)}
    for name, (path, level) in runs.items():
        res = inference.decloud(path, CLEAR_S1, _prior_model(), tmp_path / f"{name}.tif", maps=False,
                                options=inference.DecloudOptions(mask_method="rules", product_level=level,
                                                                 ms_bands=list(S2_PAPER10)))
        guessed = [n for n in res.notes if "product level not given" in n]
        recorded = gdal.Open(str(tmp_path / f"{name}_mask.tif")).GetMetadataItem("PRODUCT_LEVEL")
        assert (recorded, bool(guessed)) == {"guessed": ("L2A", True), "given": ("L1C", False),
                                             "named": ("L1C", False)}[name]
    with pytest.raises(InputError, match="product level") as err:
        inference.decloud(tmp_path / "stack.tif", CLEAR_S1, _prior_model(), tmp_path / "bad.tif", maps=False,
                          options=inference.DecloudOptions(product_level="toa"))
    assert err.value.option == "product_level"


def test_the_output_declares_a_known_product_level_and_is_read_back_at_it(tmp_path):
    """decloud's output keeps ten bands, without B10, which alone would be read as L2A: a known
    level (the caller's, or the input's own) is written in its metadata and read back from it,
    so the output of an L1C scene is L1C to the next run. A guessed level is not declared. GDAL's
    SENTINEL2 metadata (PROCESSING_LEVEL) declares the level the same way."""
    from sarclear.product_level import resolve_level
    from sarclear.raster import detect_optical_scaling, open_optical

    clear = read_raster(CLEAR_S2)[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
    write_raster(tmp_path / "stack.tif", clear, like=CLEAR_S2, names=list(S2_PAPER10))

    def level_of(path):
        stack = open_optical(path, S2_PAPER10)
        return resolve_level(stack, detect_optical_scaling(stack))

    assert level_of(tmp_path / "stack.tif")[0] == "l2a" and level_of(tmp_path / "stack.tif")[1]  # guessed
    for name, level in (("given", "L1C"), ("guessed", None)):
        inference.decloud(tmp_path / "stack.tif", CLEAR_S1, _prior_model(), tmp_path / f"{name}.tif", maps=False,
                          options=inference.DecloudOptions(mask_method="rules", product_level=level))
        declared = gdal.Open(str(tmp_path / f"{name}.tif")).GetMetadataItem("PRODUCT_LEVEL")
        assert declared == level, name
    assert level_of(tmp_path / "given.tif") == ("l1c", [])
    assert level_of(tmp_path / "guessed.tif")[1]  # still a guess, and said to be one
    ds = gdal.Open(str(tmp_path / "stack.tif"), gdal.GA_Update)
    ds.SetMetadataItem("PROCESSING_LEVEL", "Level-1C")
    ds = None
    assert level_of(tmp_path / "stack.tif") == ("l1c", [])


def test_a_mask_that_hides_nothing_or_everything_is_named_with_how_masks_are_read(tmp_path):
    """An all-zero mask (the output equals the input) and an all-cloud one (the fill has no clear
    pixel) both run, but not silently: both are what a raster in another encoding gives."""
    _cloudy_scene(tmp_path)
    model = _prior_model()
    shape = read_raster(CLEAR_S2)[0].shape[1:]
    notes = {}
    for name, value in (("none", 0), ("all", 2), ("some", None)):
        mask = read_raster(tmp_path / "mask.tif")[0][None] if value is None else np.full((1, *shape), value, np.uint8)
        write_raster(tmp_path / f"{name}.tif", mask, like=CLEAR_S2, dtype=1)
        res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, model, tmp_path / f"out_{name}.tif", maps=False,
                                options=inference.DecloudOptions(cloud_mask=str(tmp_path / f"{name}.tif")))
        notes[name] = [n for n in res.notes if n.startswith("the cloud mask")]
    assert len(notes["none"]) == 1 and "none.tif marks no cloud (0.00 % of the valid pixels)" in notes["none"][0]
    assert "output will equal the input" in notes["none"][0] and "0 as clear" in notes["none"][0]
    assert len(notes["all"]) == 1 and "all.tif marks 100.0 % of the valid pixels as cloud" in notes["all"][0]
    assert "scene classification (SCL)" in notes["all"][0]
    assert notes["some"] == []  # a mask that hides part of the scene: nothing to say


def test_sentinel2_scene_classification_and_cloud_probability_files_are_read_as_masks(tmp_path):
    """ESA's L2A mask files, given as they come: the scene classification (SCL: cloud, shadow,
    cirrus and defective classes hidden, vegetation, water, snow clear) and the cloud
    probability in percent (MSK_CLDPRB) give the same reconstruction as the 0/1 mask they
    encode, and a note says how they were read."""
    _, mask = _cloudy_scene(tmp_path)
    model = _prior_model()
    scl = np.full(mask.shape, 4, np.uint8)  # vegetation
    scl[:, :40] = 6    # water
    scl[:20] = 11      # snow
    scl[200:, 200:] = 5  # bare soil
    scl[mask == 1] = 9   # cloud, high probability
    scl[70:90, 90:190] = 8   # cloud, medium probability
    scl[140:150, 90:190] = 3   # cloud shadow
    scl[100:110, 100:110] = 10  # cirrus
    write_raster(tmp_path / "T33UUP_20200813T054639_SCL_20m.tif", scl[None], like=CLEAR_S2, dtype=1)
    percent = np.where(mask == 1, 100, 0).astype(np.uint8)
    write_raster(tmp_path / "MSK_CLDPRB_20m.tif", percent[None], like=CLEAR_S2, dtype=1)
    outs, notes = {}, {}
    for name in ("mask.tif", "T33UUP_20200813T054639_SCL_20m.tif", "MSK_CLDPRB_20m.tif"):
        res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, model, tmp_path / f"out_{name}", maps=False,
                                options=inference.DecloudOptions(cloud_mask=str(tmp_path / name)))
        outs[name], notes[name] = read_raster(res.output)[0], res.notes
    assert np.array_equal(outs["T33UUP_20200813T054639_SCL_20m.tif"], outs["mask.tif"])
    assert np.array_equal(outs["MSK_CLDPRB_20m.tif"], outs["mask.tif"])
    scl_notes = notes["T33UUP_20200813T054639_SCL_20m.tif"]
    assert any("scene classification (SCL)" in n and "are hidden" in n for n in scl_notes)
    assert any("cloud probability in percent" in n for n in notes["MSK_CLDPRB_20m.tif"])
    # the same SCL classes under another file name are only an integer mask: nearly all "cloud", and said so
    write_raster(tmp_path / "classes.tif", scl[None], like=CLEAR_S2, dtype=1)
    res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, model, tmp_path / "out_classes.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=str(tmp_path / "classes.tif")))
    assert any("classes.tif marks 100.0 % of the valid pixels as cloud" in n for n in res.notes)


def test_a_mask_that_covers_part_of_the_scene_runs_with_a_mask_aware_model(tmp_path):
    """A user mask over the top-left quarter only: outside it every pixel counts as cloud (and a
    warning says so); the scene's statistics and the mask checks read it decimated all the same
    (they used to refuse it: "a decimated window must lie inside every band")."""
    _cloudy_scene(tmp_path)
    src = gdal.Open(str(tmp_path / "cloudy.tif"))
    gt = src.GetGeoTransform()
    quarter = np.zeros((1, src.RasterYSize // 2, src.RasterXSize // 2), np.uint8)
    write_raster(tmp_path / "quarter.tif", quarter, gt=gt, srs=src.GetProjection(), dtype=gdal.GDT_Byte)
    res = inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, _prior_model(), tmp_path / "out.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=str(tmp_path / "quarter.tif")))
    out = read_raster(res.output)[0]
    cloudy = read_raster(tmp_path / "cloudy.tif")[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
    h, w = quarter.shape[1:]
    assert np.array_equal(out[:, :h, :w], np.clip(cloudy[:, :h, :w], 1, None))  # the clear quarter kept
    assert (out[:, h:, :] != np.clip(cloudy[:, h:, :], 1, None)).any(axis=0).mean() > 0.5  # the rest filled
    assert not any(n.startswith("the cloud mask") for n in res.notes)  # 75 % hidden: nothing to warn of


def test_the_sun_azimuth_given_is_used_for_the_shadow_check_and_a_bad_one_is_named(tmp_path, capsys):
    """cloudy.tif names no sensing time, so the sun is unknown unless given: --sun-azimuth (true
    north) is turned into the grid and recorded in the mask; a value outside 0-360 is refused
    before any work, by the library and by the command line."""
    from sarclear.cli import flag_for, main

    _cloudy_scene(tmp_path)
    for given in (None, 157.0):
        inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, _prior_model(), tmp_path / f"sun{given}.tif",
                          maps=False, options=inference.DecloudOptions(mask_method="rules", sun_azimuth=given))
        meta = gdal.Open(str(tmp_path / f"sun{given}_mask.tif")).GetMetadata()
        if given is None:
            assert "SUN_AZIMUTH_GRID" not in meta
        else:
            assert abs(float(meta["SUN_AZIMUTH_GRID"]) - given) < 1.0  # UTM: grid north within a degree here
    with pytest.raises(InputError, match="sun azimuth is 361") as err:
        inference.decloud(tmp_path / "cloudy.tif", CLEAR_S1, _prior_model(), tmp_path / "bad.tif", maps=False,
                          options=inference.DecloudOptions(sun_azimuth=361.0))
    assert flag_for(err.value) == "--sun-azimuth DEG" and not (tmp_path / "bad.tif").exists()
    with pytest.raises(SystemExit):
        main(["-q", "decloud", "--ms", str(tmp_path / "cloudy.tif"), "--out", str(tmp_path / "c.tif"),
              "--sun-azimuth", "-5"])
    assert "--sun-azimuth: -5 is too small" in capsys.readouterr().err
