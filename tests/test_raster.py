"""GDAL I/O on the real Sentinel samples: band identification and stacking, resampling to
10 m, SAR warping across CRSs, windowed reads, atomic GeoTIFF writes."""

import logging

import numpy as np
import pytest
from conftest import (
    BEN_S1,
    BEN_S2,
    CR_CLOUDY_S1,
    CR_CLOUDY_S2,
    FLOODS_S1,
    FLOODS_S2,
    SEA,
    SSL4EO_CLEAR,
)
from osgeo import gdal

from sarclear import raster
from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.errors import BandMismatchError, NoOverlapError, OutputError
from sarclear.tiling import Window


def test_unlabelled_13_band_sen12ms_file_is_read_in_the_documented_order():
    stack = raster.open_optical(CR_CLOUDY_S2, S2_PAPER10)
    assert [b.index for b in stack.bands] == [S2_BANDS.index(b) + 1 for b in S2_PAPER10]
    data, valid = stack.open().read(Window(0, 0, 256, 256))
    ds = gdal.Open(str(CR_CLOUDY_S2))
    direct = ds.GetRasterBand(13).ReadAsArray()  # B12
    assert np.array_equal(data[-1], direct.astype(np.float32)) and valid.all()


def test_per_band_ssl4eo_files_are_stacked_with_20m_bands_resampled_to_10m():
    stack = raster.open_optical(SSL4EO_CLEAR, S2_PAPER10)
    assert (stack.grid.width, stack.grid.height) == (264, 264)  # the 10 m grid
    data, valid = stack.open().read(stack.grid.window)
    assert valid.all() and np.isfinite(data).all()
    # B5 (20 m) on the 10 m grid keeps the band's radiometry: block means match the 20 m pixels
    b5 = gdal.Open(str(SSL4EO_CLEAR / "B5.tif")).ReadAsArray().astype(np.float64)
    resampled = data[S2_PAPER10.index("B5")].astype(np.float64)
    assert abs(resampled.mean() - b5.mean()) / b5.mean() < 0.01
    # the 10 m bands are read unchanged
    b2 = gdal.Open(str(SSL4EO_CLEAR / "B2.tif")).ReadAsArray()
    assert np.array_equal(data[0], b2.astype(np.float32))


def test_bigearthnet_l2a_file_names_with_leading_zeros_are_recognised():
    stack = raster.open_optical(BEN_S2, S2_PAPER10)
    assert [p.path.rsplit("_", 1)[-1] for p in stack.bands][:3] == ["B02.tif", "B03.tif", "B04.tif"]
    assert stack.grid.pixel_size == 10.0


def test_missing_band_is_an_error_that_names_it():
    with pytest.raises(BandMismatchError, match=r"B10 is missing.*found: B1, B2"):
        raster.open_optical(BEN_S2, S2_BANDS)  # L2A has no cirrus band


def test_wrong_band_count_without_names_is_explained():
    with pytest.raises(BandMismatchError, match="2 unnamed bands match no default order"):
        raster.open_optical(CR_CLOUDY_S1, S2_PAPER10)


def test_explicit_band_order_overrides_and_must_match_the_count():
    stack = raster.open_optical(FLOODS_S2, ["B2", "B3"], order=list(S2_BANDS))
    assert [b.index for b in stack.bands] == [2, 3]
    with pytest.raises(BandMismatchError, match="one name per band"):
        raster.open_optical(FLOODS_S2, ["B2"], order=["B2", "B3"])


def test_epsg4326_int16_sample_keeps_its_nodata_and_descriptions():
    stack = raster.open_optical(FLOODS_S2, S2_PAPER10)
    assert stack.nodata == (0.0,) * 10 and gdal.GetDataTypeName(stack.dtype) == "Int16"
    assert stack.descriptions[0] == "B2" and "4326" in stack.grid.crs_wkt


def test_sar_in_epsg4326_is_warped_onto_a_utm_optical_grid(tmp_path):
    utm = tmp_path / "s2_utm.tif"
    gdal.Warp(str(utm), str(FLOODS_S2), dstSRS="EPSG:32630", xRes=10, yRes=10, resampleAlg="near")
    ms = raster.open_optical(utm, S2_PAPER10)
    sar = raster.open_sar(FLOODS_S1, ("VV", "VH"), ms.grid)
    assert not sar.linear_power and sar.names == ("VV", "VH")  # named by band description
    data, valid = sar.open().read(ms.grid.window)
    assert data.shape == (2, ms.grid.height, ms.grid.width)
    # the centre of the UTM grid reads the same backscatter as the geographic original there
    direct = gdal.Warp("", str(FLOODS_S1), format="MEM", dstSRS="EPSG:32630", outputBounds=ms.grid.bounds(),
                       width=ms.grid.width, height=ms.grid.height, resampleAlg="bilinear").ReadAsArray()
    c = (slice(100, 300), slice(100, 300))
    diff = np.abs(data[0][c] - direct[0][c])  # both warps approximate the transform to 1/8 pixel
    assert diff.mean() < 0.1 and np.percentile(diff, 99) < 0.8
    assert valid[c].all()


def test_sar_on_a_half_overlapping_grid_is_partly_nodata(caplog):
    """Half the area has SAR; the warning says what becomes of the other half with this model:
    nodata, or (a model whose SAR is optional, the SAR-guided fill) a fill without SAR."""
    ms = raster.open_optical(SEA / "s2_cloudfree" / "ROIs1158_spring_101_30.tif", S2_PAPER10)
    sar = raster.open_sar(SEA / "s1" / "ROIs1158_spring_101_31.tif", ("VV", "VH"), ms.grid)
    _, valid = sar.open().read(ms.grid.window)
    assert 0.3 < valid.mean() < 0.7
    assert not valid[:, :100].any() and valid[:, -50:].all()
    assert "beyond it the output is nodata" in caplog.text and "without SAR's guide" not in caplog.text
    caplog.clear()
    raster.open_sar(SEA / "s1" / "ROIs1158_spring_101_31.tif", ("VV", "VH"), ms.grid, optional=True)
    assert "filled without SAR's guide" in caplog.text and "nodata" not in caplog.text


def test_sar_that_does_not_overlap_is_a_clear_error():
    ms = raster.open_optical(CR_CLOUDY_S2, S2_PAPER10)
    with pytest.raises(NoOverlapError, match="does not overlap"):
        raster.open_sar(SEA / "s1" / "ROIs1158_spring_101_30.tif", ("VV", "VH"), ms.grid)


def test_sar_in_linear_power_is_detected_and_read_as_db(tmp_path):
    src = gdal.Open(str(BEN_S1 / (BEN_S1.name + "_VV.tif")))
    db = src.ReadAsArray().astype(np.float32)
    lin = tmp_path / "vv_linear.tif"
    ds = gdal.GetDriverByName("GTiff").CreateCopy(str(lin), src)
    ds.GetRasterBand(1).WriteArray(10 ** (db / 10))
    ds = None
    ms = raster.open_optical(BEN_S2, S2_PAPER10)
    sar = raster.open_sar([lin], ("VV",), ms.grid)
    assert sar.linear_power
    data, _ = sar.open().read(ms.grid.window)
    np.testing.assert_allclose(data[0], db, atol=1e-3)


def test_reads_beyond_the_raster_are_mirrored_and_invalid():
    stack = raster.open_optical(BEN_S2, S2_PAPER10)
    data, valid = stack.open().read(Window(-8, 100, 40, 40))
    assert data.shape == (10, 40, 40)
    assert valid[:20, 8:].all() and not valid[20:].any() and not valid[:, :8].any()
    assert np.array_equal(data[:, :20, 7], data[:, :20, 8])  # symmetric padding at the edge


def test_writer_keeps_georeference_nodata_descriptions_and_dtype(tmp_path):
    stack = raster.open_optical(FLOODS_S2, S2_PAPER10)
    data, valid = stack.open().read(stack.grid.window)
    out = tmp_path / "copy.tif"
    with raster.GeoTiffWriter(out, stack.grid, 10, stack.dtype, nodata=stack.nodata[0],
                              descriptions=stack.descriptions) as w:
        w.write(stack.grid.window, raster.to_dtype(data, stack.dtype, valid, 0.0))
    a, b = gdal.Open(str(out)), gdal.Open(str(FLOODS_S2))
    assert a.GetGeoTransform() == b.GetGeoTransform() and a.GetProjection() == b.GetProjection()
    assert a.GetRasterBand(1).DataType == gdal.GDT_Int16 and a.GetRasterBand(1).GetNoDataValue() == 0
    assert [a.GetRasterBand(i + 1).GetDescription() for i in range(10)] == list(S2_PAPER10)
    original = np.stack([b.GetRasterBand(S2_BANDS.index(n) + 1).ReadAsArray() for n in S2_PAPER10])
    assert np.array_equal(a.ReadAsArray(), original)
    assert a.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    with raster.GeoTiffWriter(tmp_path / "z.tif", stack.grid, 10, stack.dtype, compress="zstd") as w:
        w.write(stack.grid.window, raster.to_dtype(data, stack.dtype, valid, 0.0))
    assert gdal.Open(str(tmp_path / "z.tif")).GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"


def test_failed_write_leaves_nothing_behind_and_existing_outputs_are_protected(tmp_path):
    grid = raster.Grid(64, 64, (0, 10, 0, 0, 0, -10), "")
    out = tmp_path / "x.tif"
    with pytest.raises(RuntimeError, match="boom"), raster.GeoTiffWriter(out, grid, 1, gdal.GDT_UInt16) as w:
        w.write(Window(0, 0, 64, 32), np.ones((32, 64), np.uint16))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.write_text("precious")
    with pytest.raises(OutputError, match="exists"):
        raster.GeoTiffWriter(out, grid, 1, gdal.GDT_UInt16)
    with pytest.raises(OutputError, match="does not exist"):
        raster.GeoTiffWriter(tmp_path / "nope" / "x.tif", grid, 1, gdal.GDT_UInt16)


def test_stale_part_files_of_dead_processes_are_removed(tmp_path):
    grid = raster.Grid(8, 8, (0, 10, 0, 0, 0, -10), "")
    stale = tmp_path / ".x.tif.sarclear-999999999-abcd.part"
    stale.write_bytes(b"half a raster")
    with raster.GeoTiffWriter(tmp_path / "x.tif", grid, 1, gdal.GDT_Byte) as w:
        w.write(grid.window, np.zeros((8, 8), np.uint8))
    assert not stale.exists() and (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("compress", ["deflate", "zstd", "lzw", "none"])
def test_cog_output_has_overviews(tmp_path, caplog, compress):
    grid = raster.Grid(1024, 1024, (0, 10, 0, 0, 0, -10), "")
    with (caplog.at_level(logging.DEBUG, logger="sarclear.raster"),
          raster.GeoTiffWriter(tmp_path / "c.tif", grid, 1, gdal.GDT_UInt16, cog=True, compress=compress) as w):
        w.write(grid.window, np.arange(1024 * 1024, dtype=np.uint32).reshape(1024, 1024).astype(np.uint16))
    ds = gdal.Open(str(tmp_path / "c.tif"))
    assert ds.GetRasterBand(1).GetOverviewCount() >= 1
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION", "NONE") == compress.upper()
    assert "does not support creation option" not in caplog.text  # every option reached the driver


def test_to_dtype_rounds_clips_and_keeps_valid_pixels_off_nodata():
    v = np.array([[[-5.0, 0.4, 0.6, 70000.0]]])
    out = raster.to_dtype(v, gdal.GDT_UInt16, np.array([[True, True, True, False]]), 0.0)
    assert out.tolist() == [[[1, 1, 1, 0]]]  # -5 -> 0 -> moved off nodata; invalid -> nodata


def test_a_user_set_gdal_num_threads_never_reaches_a_gdal_that_decodes_wrongly_with_it(tmp_path, capfd):
    """GDAL 3.6.0-3.7.2 decode band-separate GeoTIFFs wrongly on several threads; a user's
    GDAL_NUM_THREADS must not switch that on for the library's reads. (The decoder's worker
    threads report through GDAL's default handler, on stderr.)"""
    from sarclear.io.gdalio import open_raster, threaded_decoding_unsafe

    path = tmp_path / "bands.tif"
    data = (np.arange(10 * 512 * 1024, dtype=np.uint32) % 9973).astype(np.uint16).reshape(10, 512, 1024)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 1024, 512, 10, gdal.GDT_UInt16,
                                              ["TILED=YES", "COMPRESS=DEFLATE", "INTERLEAVE=BAND"])
    ds.WriteArray(data)
    ds = None
    previous = gdal.GetConfigOption("GDAL_NUM_THREADS")
    gdal.SetConfigOption("GDAL_NUM_THREADS", "ALL_CPUS")
    try:
        unsafe = threaded_decoding_unsafe()
        capfd.readouterr()
        if unsafe:  # the bug is there: GDAL's own open shows it, so the check below can fail
            gdal.Open(str(path)).ReadAsArray(100, 50, 900, 400)
            assert "ExtraSamples" in capfd.readouterr().err
        got = open_raster(path).ReadAsArray(100, 50, 900, 400)
    finally:
        gdal.SetConfigOption("GDAL_NUM_THREADS", previous)
    assert "ExtraSamples" not in capfd.readouterr().err
    assert np.array_equal(got, data[:, 50:450, 100:1000])
    assert unsafe == (3060000 <= int(gdal.VersionInfo()) < 3070300)
