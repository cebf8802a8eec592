"""Seamless tiled inference on real rasters: exact stitching, no seams, nodata, AOI, masks,
cancellation, determinism, mixed CRSs."""

import numpy as np
import pytest
import torch
from conftest import (
    BEN_S1,
    BEN_S2,
    CR_CLOUDY_S1,
    CR_CLOUDY_S2,
    CR_MASK_FILES,
    FLOODS_S1,
    FLOODS_S2,
    read_raster,
    write_raster,
)
from osgeo import gdal

from sarclear import checkpoint, inference, raster
from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.errors import BandMismatchError, Cancelled, DeviceError, InputError, NoOverlapError


def _mosaic(src, dst, reps=(3, 3), nodata=None, cut=(slice(0, -37), slice(0, -11))):
    """A raster several tiles wide made of the real sample (mirrored copies, so the texture
    stays continuous), with the sample's georeference and data type."""
    data = read_raster(src)[0]
    row = np.concatenate([data if c % 2 == 0 else data[:, :, ::-1] for c in range(reps[1])], axis=2)
    big = np.concatenate([row if r % 2 == 0 else row[:, ::-1] for r in range(reps[0])], axis=1)
    big = big[:, cut[0], cut[1]]  # by default odd sizes: the last tiles are shifted
    write_raster(dst, big, like=src, nodata=nodata)
    return big


_read = read_raster


def test_tiled_decloud_with_an_identity_model_reproduces_the_input_exactly(tmp_path, identity_model):
    ms = tmp_path / "ms.tif"
    big = _mosaic(CR_CLOUDY_S2, ms)
    sar = tmp_path / "sar.tif"
    _mosaic(CR_CLOUDY_S1, sar)
    assert big.shape[1] > 2 * 256 and big.shape[2] > 2 * 256
    result = inference.decloud(ms, sar, identity_model, tmp_path / "out.tif", maps=False,
                               options=inference.DecloudOptions(batch_size=3))
    out, ds = _read(result.output)
    expected = np.clip(big[[S2_BANDS.index(b) for b in S2_PAPER10]], 1, 10000)  # network range clips at 10000
    assert result.tiles == 16 and out.dtype == np.uint16
    assert np.array_equal(out, expected)
    assert ds.GetGeoTransform() == gdal.Open(str(ms)).GetGeoTransform()


class BlurGenerator(torch.nn.Module):
    """A context-dependent model with zero padding, like a CNN: a 9 x 9 box blur of the
    optical input. Pasted tile by tile, its darkened tile edges would make seams."""

    def forward(self, cloudy, sar=None):
        c = cloudy.shape[1]
        kernel = torch.full((c, 1, 9, 9), 1 / 81, dtype=cloudy.dtype)
        return torch.nn.functional.conv2d(cloudy + 1, kernel, padding=4, groups=c) - 1


def test_tiled_decloud_has_no_seams(tmp_path):
    import dataclasses

    from sarclear import networks

    ms, sar = tmp_path / "ms.tif", tmp_path / "sar.tif"
    cut = (slice(0, 512), slice(100, 612))  # 512 x 512, mirror lines away from tile edges
    _mosaic(CR_CLOUDY_S2, ms, (2, 3), cut=cut)
    _mosaic(CR_CLOUDY_S1, sar, (2, 3), cut=cut)
    cfg = networks.preset("lite")
    # the truth: the whole raster as one 512 x 512 tile
    one_tile = checkpoint.Model(BlurGenerator(), dataclasses.replace(cfg, tile_size=512))
    truth = _read(inference.decloud(ms, sar, one_tile, tmp_path / "whole.tif", maps=False).output)[0]
    model = checkpoint.Model(BlurGenerator(), cfg)

    def column_error(path):
        err = np.abs(_read(path)[0].astype(np.float64) - truth).mean(axis=(0, 1))
        return err[8:-8]  # the raster's own border is padded alike in both

    # tiles pasted side by side (no overlap): a seam at the tile edge, column 256
    hard = column_error(inference.decloud(ms, sar, model, tmp_path / "hard.tif", maps=False,
                                          options=inference.DecloudOptions(overlap=0)).output)
    assert hard.max() > 50 and abs(int(hard.argmax()) + 8 - 256) <= 4
    # overlapping tiles blended with smooth weights: no column stands out
    soft = column_error(inference.decloud(ms, sar, model, tmp_path / "soft.tif", maps=False).output)
    assert soft.max() < hard.max() / 20 and soft.max() < 5  # DN, on values of ~1000-5000


def test_decloud_is_deterministic(tmp_path, lite_model_path):
    a = inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "a.tif", maps=False)
    b = inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "b.tif", maps=False)
    assert np.array_equal(_read(a.output)[0], _read(b.output)[0])


def test_nodata_in_the_input_stays_nodata_and_sar_gaps_become_nodata(tmp_path, identity_model):
    data, src = _read(FLOODS_S2)
    assert (data == 0).all(axis=0).sum() == 0  # the sample has none: carve a hole
    ms = tmp_path / "ms.tif"
    hole = gdal.GetDriverByName("GTiff").CreateCopy(str(ms), src)
    for i in range(13):
        band = hole.GetRasterBand(i + 1)
        arr = band.ReadAsArray()
        arr[100:180, 200:300] = 0
        band.WriteArray(arr)
    hole = None
    res = inference.decloud(ms, FLOODS_S1, identity_model, tmp_path / "out.tif", maps=False)
    out, ds = _read(res.output)
    assert ds.GetRasterBand(1).GetNoDataValue() == 0 and out.dtype == np.int16
    assert (out[:, 100:180, 200:300] == 0).all()
    assert (out[:, :100] != 0).all()


def test_area_of_interest_is_snapped_to_the_pixel_grid(tmp_path, identity_model):
    grid = raster.open_optical(CR_CLOUDY_S2, S2_PAPER10).grid
    x0, y0 = grid.geotransform[0], grid.geotransform[3]
    aoi = (x0 + 505.0, y0 - 1503.0, x0 + 1001.0, y0 - 997.0)  # not on pixel edges
    res = inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "aoi.tif", maps=False,
                            options=inference.DecloudOptions(aoi=aoi))
    out, ds = _read(res.output)
    assert res.window == raster.Window(50, 99, 51, 52)
    assert ds.GetGeoTransform()[0] == x0 + 500 and ds.GetGeoTransform()[3] == y0 - 990
    full = _read(CR_CLOUDY_S2)[0][[S2_BANDS.index(b) for b in S2_PAPER10]]
    assert np.array_equal(out, np.clip(full[:, 99:151, 50:101], 1, 10000))
    with pytest.raises(NoOverlapError, match="does not overlap"):
        inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "x.tif",
                          options=inference.DecloudOptions(aoi=(0, 0, 10, 10)))


def test_rasters_smaller_than_a_tile_and_one_pixel_wide_areas(tmp_path, lite_model_path, identity_model):
    res = inference.decloud(BEN_S2, BEN_S1, lite_model_path, tmp_path / "small.tif", maps=False)
    out, _ = _read(res.output)
    assert out.shape == (10, 120, 120) and (out > 0).all()
    res = inference.decloud(BEN_S2, BEN_S1, lite_model_path, tmp_path / "line.tif", maps=False,
                            options=inference.DecloudOptions(window=raster.Window(5, 0, 1, 120)))
    line = _read(res.output)[0]
    assert line.shape == (10, 120, 1) and (line > 0).all() and line.std() > 0
    # the identity model returns the input exactly, also on a one-pixel-wide area
    res = inference.decloud(BEN_S2, BEN_S1, identity_model, tmp_path / "line_id.tif", maps=False,
                            options=inference.DecloudOptions(window=raster.Window(5, 0, 1, 120)))
    stack = raster.open_optical(BEN_S2, S2_PAPER10)
    expected, _ = stack.open().read(raster.Window(5, 0, 1, 120))
    assert np.array_equal(_read(res.output)[0], expected.astype(np.uint16))


def test_cloud_mask_keeps_clear_pixels_exactly(tmp_path, lite_model_path):
    src = gdal.Open(str(CR_CLOUDY_S2))
    mask = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "mask.tif"), 256, 256, 1, gdal.GDT_Byte)
    mask.SetGeoTransform(src.GetGeoTransform())
    mask.SetProjection(src.GetProjection())
    m = np.zeros((256, 256), np.uint8)
    m[60:140, 80:200] = 1
    mask.GetRasterBand(1).WriteArray(m)
    mask = None
    res = inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "out.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=str(tmp_path / "mask.tif"), mask_feather=4))
    out = _read(res.output)[0].astype(np.int64)
    original = np.clip(src.ReadAsArray()[[S2_BANDS.index(b) for b in S2_PAPER10]].astype(np.int64), 1, None)
    clear = m == 0  # every pixel outside the mask, up to its border, is kept exactly
    assert np.array_equal(out[:, clear], original[:, clear])
    assert (out[:, 70:130, 90:190] != original[:, 70:130, 90:190]).mean() > 0.9


def test_cancel_leaves_no_output_and_a_rerun_succeeds(tmp_path, lite_model_path):
    calls = []
    out = tmp_path / "out.tif"
    ms = tmp_path / "ms.tif"
    _mosaic(CR_CLOUDY_S2, ms, (2, 2))
    sar = tmp_path / "sar.tif"
    _mosaic(CR_CLOUDY_S1, sar, (2, 2))
    with pytest.raises(Cancelled):
        inference.decloud(ms, sar, lite_model_path, out, options=inference.DecloudOptions(batch_size=1),
                          progress=lambda d, t, w: calls.append(d) if w == "tiles" else None,
                          cancel=lambda: len(calls) >= 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ms.tif", "sar.tif"]  # no output, no mask
    inference.decloud(ms, sar, lite_model_path, out)
    assert out.exists() and calls == [1, 2]


def test_ms_only_twin_declouds_without_sar(tmp_path):
    from sarclear import networks

    cfg = networks.preset("lite-ms")
    model = checkpoint.Model(networks.build(cfg)[0], cfg)
    res = inference.decloud(CR_CLOUDY_S2, None, model, tmp_path / "ms_only.tif", maps=False,
                            options=inference.DecloudOptions(cloud_mask=None))
    out = _read(res.output)[0].astype(np.float64)
    assert out.shape == (10, 256, 256)
    # one 256-pixel tile: the output is the generator applied to the scaled input, scaled back
    raw = raster.open_optical(CR_CLOUDY_S2, S2_PAPER10).open().read(raster.Window(0, 0, 256, 256))[0]
    with torch.no_grad():
        x = torch.from_numpy((raw / 10_000).clip(0, 1) * 2 - 1)[None]
        y = model.generator(x, x[:, :0])[0].numpy()
    expected = np.clip(np.rint((y + 1) / 2 * 10_000), 0, 65535)
    assert np.abs(out - expected).max() <= 1


def test_inputs_that_cannot_work_fail_before_any_output(tmp_path, lite_model_path):
    with pytest.raises(InputError, match="fuses SAR") as no_sar:
        inference.decloud(CR_CLOUDY_S2, None, lite_model_path, tmp_path / "o.tif")
    assert (no_sar.value.input, no_sar.value.option, no_sar.value.expected) == ("sar", "sar", ("VV", "VH"))
    with pytest.raises(BandMismatchError, match=r"13 unnamed bands.*\(VV, VH\)") as as_sar:  # MS given as SAR
        inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S2, lite_model_path, tmp_path / "o.tif")
    assert (as_sar.value.input, as_sar.value.option) == ("sar", "sar_channels")
    assert "--" not in str(as_sar.value)  # the library's text names no command-line flag
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "o.tif",
                              options=inference.DecloudOptions(device="cuda"))
    assert list(tmp_path.iterdir()) == []


def test_reference_gives_error_maps_and_metrics_otherwise_change_maps(tmp_path, identity_model):
    res = inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "o.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "o.tif", "o_change_metrics.json", "o_change_rmse.tif", "o_change_sam.tif", *CR_MASK_FILES]
    # identity: output = input (up to the clip at reflectance 1): changes are ~0
    assert res.metrics["rmse"] < 0.01 and res.metrics["kind"] == "change"
    with pytest.raises(NoOverlapError):  # a reference elsewhere on Earth
        inference.decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity_model, tmp_path / "r.tif", reference=FLOODS_S2)


def test_error_maps_against_a_reference(tmp_path, identity_model):
    res = inference.decloud(BEN_S2, BEN_S1, identity_model, tmp_path / "o.tif", reference=BEN_S2)
    assert res.metrics["kind"] == "error" and res.metrics["rmse"] < 1e-4 and res.metrics["ssim"] > 0.999
    rmse, ds = _read(res.maps["rmse"])
    assert rmse.shape == (120, 120) and ds.GetRasterBand(1).GetUnitType() == "reflectance"
    assert np.nanmax(rmse) < 1e-4


def test_demo_model_shows_no_seams_at_tile_borders(tmp_path):
    from sarclear import tiling
    from sarclear.resources import DEMO_MODEL, resources_dir

    ms, sar = tmp_path / "ms.tif", tmp_path / "sar.tif"
    cut = (slice(0, 512), slice(100, 612))
    _mosaic(CR_CLOUDY_S2, ms, (2, 3), cut=cut)
    _mosaic(CR_CLOUDY_S1, sar, (2, 3), cut=cut)

    def jumps(overlap):
        """Mean jump between neighbouring columns and rows: at tile edges, and elsewhere."""
        res = inference.decloud(ms, sar, resources_dir() / "models" / DEMO_MODEL, tmp_path / f"o{overlap}.tif",
                                maps=False, options=inference.DecloudOptions(overlap=overlap, cloud_mask=None))
        out = _read(res.output)[0].astype(np.float64)
        offs = tiling.tile_offsets(512, 256, overlap)
        edges = sorted({o - 1 for o in offs[1:]} | {o + 255 for o in offs[:-1]})
        result = []
        for axis in (1, 2):
            jump = np.abs(np.diff(out, axis=axis)).mean(axis=(0, 3 - axis))
            inside = np.setdiff1d(np.arange(jump.size), edges)
            result.append((jump[edges], jump[inside]))
        return result

    for at_edges, inside in jumps(0):  # tiles side by side: the edge stands out (the test can see seams)
        assert at_edges.max() > np.percentile(inside, 99)
    for at_edges, inside in jumps(64):  # blended: tile edges are like any other column or row
        assert at_edges.max() <= np.percentile(inside, 99)
        assert at_edges.mean() <= 1.1 * inside.mean()


def test_panels_and_batches_across_strips_give_the_same_output(tmp_path, lite_model_path):
    ms, sar = tmp_path / "ms.tif", tmp_path / "sar.tif"
    _mosaic(CR_CLOUDY_S2, ms, (3, 3))  # 731 x 731: 4 x 4 tiles
    _mosaic(CR_CLOUDY_S1, sar, (3, 3))
    outs = []
    for i, opts in enumerate([inference.DecloudOptions(batch_size=1, io_threads=False),
                              inference.DecloudOptions(batch_size=7, panel_width=256),  # 3 panels, batches span strips
                              inference.DecloudOptions(batch_size=16, panel_width=300)]):
        res = inference.decloud(ms, sar, lite_model_path, tmp_path / f"o{i}.tif", maps=False, options=opts)
        outs.append(_read(res.output)[0])
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    assert inference.panels(731, 300) == [(0, 512), (512, 731)]
