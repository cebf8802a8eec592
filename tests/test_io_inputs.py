"""Reading real Sentinel-2 products right: offsets (declared, detected, explicit), band order
(VRT sources, alphabetical stacks), acquisitions in folders, model/band-set compatibility,
and errors that carry the option that fixes them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, CR_MASK_FILES, SSL4EO, SSL4EO_CLEAR, read_raster, write_raster
from osgeo import gdal

from sarclear import checkpoint, networks
from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.errors import AcquisitionError, BandMismatchError, BandOrderError
from sarclear.inference import DecloudOptions, decloud
from sarclear.io import InputOptions, open_inputs, open_optical, optical_scaling
from sarclear.tiling import Window

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MAJORTOM = SHARED / "train" / "s2-only" / "majortom"
OFFSET_CELL = MAJORTOM / "0U" / "0U_199R" / "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
EUROSAT = SHARED / "train" / "s2-only" / "eurosat"
WINDOW = Window(0, 0, 128, 128)


@pytest.fixture(scope="module")
def ms_only_model():
    """A random (hence strongly non-linear) MS-only lite generator: any change of its input
    scaling changes its output."""
    torch.manual_seed(1)
    cfg = networks.preset("lite-ms")
    g, _ = networks.build(cfg)
    return checkpoint.Model(g.eval(), cfg)


def _decloud(ms, sar, model, out, **options):
    """Decloud without a cloud mask (the network's path: these tests are about what it reads)."""
    opts = DecloudOptions(window=options.pop("window", WINDOW), cloud_mask=options.pop("cloud_mask", None), **options)
    return decloud(ms, sar, model, out, maps=False, options=opts)


# ---------------------------------------------------------------- offsets


@pytest.mark.skipif(not OFFSET_CELL.is_dir(), reason="shared Major TOM data not present")
def test_major_tom_offset_cell_needs_no_flag(tmp_path, ms_only_model, caplog):
    """Baseline N0400 in the product id declares the +1000 offset: no flag gives the same
    output as the explicit offset, and a different one from reading it without offset."""
    stack = open_optical(OFFSET_CELL, S2_PAPER10)
    decision = optical_scaling(stack)
    assert (decision.rule, decision.offset, decision.dn_per_reflectance) == ("declared", -1000.0, 10_000.0)
    assert "N0400" in decision.source and decision.warning is None
    auto = read_raster(_decloud(OFFSET_CELL, None, ms_only_model, tmp_path / "auto.tif").output)
    explicit = read_raster(_decloud(OFFSET_CELL, None, ms_only_model, tmp_path / "explicit.tif",
                                    ms_offset=-1000.0).output)
    wrong = read_raster(_decloud(OFFSET_CELL, None, ms_only_model, tmp_path / "zero.tif", ms_offset=0.0).output)
    assert np.array_equal(auto[0], explicit[0])
    assert np.abs(auto[0].astype(int) - wrong[0].astype(int)).mean() > 20  # the offset matters to the network
    # the output keeps the input's DN convention and declares it, so it is read back right
    band = auto[1].GetRasterBand(1)
    assert band.GetScale() == pytest.approx(1e-4) and band.GetOffset() == pytest.approx(-0.1)
    assert optical_scaling(open_optical(tmp_path / "auto.tif", S2_PAPER10)).offset == pytest.approx(-1000)


@pytest.mark.skipif(not OFFSET_CELL.is_dir(), reason="shared Major TOM data not present")
def test_offset_product_without_declaration_warns_naming_the_fix(tmp_path, ms_only_model):
    """The same cell under an anonymous name declares nothing: read without offset, with a
    warning (and a run note) that names the offset to give."""
    anon = tmp_path / "cell"
    anon.mkdir()
    for f in OFFSET_CELL.glob("B*.tif"):
        shutil.copy(f, anon / f.name)
    decision = optical_scaling(open_optical(anon, S2_PAPER10))
    assert decision.rule == "dtype" and decision.offset == 0
    assert decision.suggested_offset == -1000 and "baseline 04.00" in decision.warning
    res = _decloud(anon, None, ms_only_model, tmp_path / "o.tif")
    assert any("-1000" in n for n in res.notes)


def test_gdal_band_offset_and_scale_equal_the_preshifted_file(tmp_path, lite_model_path):
    """A GeoTIFF holding DN + 1000 with band scale 1e-4 and offset -0.1 (reflectance =
    value x scale + offset) gives the output of the pre-shifted file, plus 1000."""
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray().astype(np.int32)
    plain = write_raster(tmp_path / "plain.tif", raw.astype(np.uint16), like=CR_CLOUDY_S2)
    shifted = write_raster(tmp_path / "shifted.tif", (raw + 1000).astype(np.uint16), like=CR_CLOUDY_S2)
    ds = gdal.Open(str(shifted), gdal.GA_Update)
    for i in range(1, ds.RasterCount + 1):
        ds.GetRasterBand(i).SetScale(1e-4)
        ds.GetRasterBand(i).SetOffset(-0.1)
    ds = None
    decision = optical_scaling(open_optical(shifted, S2_PAPER10))
    assert (decision.rule, decision.source) == ("declared", "GDAL band offset/scale")
    assert decision.offset == pytest.approx(-1000) and decision.dn_per_reflectance == pytest.approx(10_000)
    a = read_raster(_decloud(plain, CR_CLOUDY_S1, lite_model_path, tmp_path / "a.tif").output)[0].astype(int)
    b = read_raster(_decloud(shifted, CR_CLOUDY_S1, lite_model_path, tmp_path / "b.tif").output)[0].astype(int)
    assert a.std() > 50  # a real, varied output
    assert np.abs(b - 1000 - a).max() <= 1  # float32 rounding of DN + 1000 at most


def test_safe_metadata_declares_the_offset(tmp_path):
    """A .SAFE whose MTD_MSIL2A.xml says BOA_ADD_OFFSET -1000: read with that offset."""
    safe = tmp_path / "S2B_MSIL2A_20230101T100311_N9999_R122_T33UUP_20230101T135012.SAFE"
    img = safe / "GRANULE" / "L2A_T33UUP_A030000_20230101T100311" / "IMG_DATA" / "R10m"
    img.mkdir(parents=True)
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    for b in ("B2", "B3", "B4", "B8"):
        write_raster(img / f"T33UUP_20230101T100311_B{b[1:].zfill(2)}_10m.tif", raw[[S2_BANDS.index(b)]],
                     like=CR_CLOUDY_S2)
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    (safe / "MTD_MSIL2A.xml").write_text(
        "<n1:Level-2A_User_Product><General_Info><Product_Info><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>"
        "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST></Product_Info></General_Info>"
        "</n1:Level-2A_User_Product>")
    stack = open_optical(safe, ("B2", "B3", "B4", "B8"))
    assert [Path(b.path).name[23:26] for b in stack.bands] == ["B02", "B03", "B04", "B08"]
    d = optical_scaling(stack)
    assert (d.rule, d.offset, Path(d.source).name) == ("declared", -1000.0, "MTD_MSIL2A.xml")
    # an explicit offset still wins over the declaration
    assert optical_scaling(stack, offset=0.0).offset == 0.0


def test_scale_must_be_positive():
    from sarclear.errors import ScalingError
    from sarclear.radiometry import decide_optical_scaling

    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(ScalingError) as exc:
            decide_optical_scaling(np.dtype("uint16"), scale=bad)
        assert exc.value.option == "ms_scale"


# ---------------------------------------------------------------- band order


def _per_band_files(folder: Path, raw: np.ndarray, names) -> list[Path]:
    folder.mkdir()
    return [write_raster(folder / f"{b}.tif", raw[[i]], like=CR_CLOUDY_S2) for i, b in enumerate(names)]


def test_alphabetical_vrt_reads_like_the_standard_stack(tmp_path, lite_model_path):
    """`gdalbuildvrt -separate` over B1.tif, B10.tif, B11.tif, ... (a sorted listing) takes
    each band's name from its source file: same result as the correctly ordered stack."""
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    files = sorted(_per_band_files(tmp_path / "bands", raw, S2_BANDS), key=lambda p: p.name)
    assert [f.stem for f in files[:4]] == ["B1", "B10", "B11", "B12"]
    vrt = tmp_path / "alpha.vrt"
    subprocess.run(["gdalbuildvrt", "-q", "-separate", str(vrt), *map(str, files)], check=True)
    stack = open_optical(vrt, S2_PAPER10)
    assert [b.how for b in stack.bands] == ["VRT source"] * 10
    assert [b.index for b in stack.bands] == [5, 6, 7, 8, 9, 10, 11, 12, 3, 4]  # B2..B8A, B11, B12
    a = read_raster(_decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "a.tif").output)[0]
    b = read_raster(_decloud(vrt, CR_CLOUDY_S1, lite_model_path, tmp_path / "b.tif").output)[0]
    assert np.array_equal(a, b)


def test_alphabetical_stack_without_names_is_refused(tmp_path):
    """The same stack flattened to a GeoTIFF has no names left: read in the default order
    it would be wrong, and the spectral check refuses it, naming the order it fits."""
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    alpha = sorted(S2_BANDS)
    write_raster(tmp_path / "alpha.tif", raw[[S2_BANDS.index(b) for b in alpha]], like=CR_CLOUDY_S2)
    with pytest.raises(BandOrderError, match="alphabetical") as exc:
        open_optical(tmp_path / "alpha.tif", S2_PAPER10)
    assert exc.value.option == "ms_bands" and exc.value.expected == S2_BANDS
    assert "--" not in str(exc.value)
    ok = open_optical(CR_CLOUDY_S2, S2_PAPER10)  # the standard order passes the same check
    assert ok.order_check.verdict == "plausible" and ok.order_check.likely == "assumed"
    # naming the bands explicitly reads it right, without the check
    named = open_optical(tmp_path / "alpha.tif", S2_PAPER10, order=alpha)
    assert [b.index for b in named.bands] == [alpha.index(b) + 1 for b in S2_PAPER10]


@pytest.mark.skipif(not EUROSAT.is_dir(), reason="shared EuroSAT data not present")
def test_eurosat_band_order_is_caught():
    """EuroSAT's 13-band GeoTIFFs are stored B01..B12, B8A (zero-padded alphabetical) without
    band names: the check refuses the standard reading and names the order they fit."""
    for tif in sorted(EUROSAT.glob("*/*.tif")):
        with pytest.raises(BandOrderError, match="zero-padded alphabetical"):
            open_optical(tif, S2_PAPER10)


# ---------------------------------------------------------------- acquisitions, band sets


def test_folder_with_two_acquisitions_is_refused_or_resolved():
    folder = SSL4EO_CLEAR.parent
    with pytest.raises(AcquisitionError, match="2 acquisitions") as exc:
        open_optical(folder, S2_PAPER10)
    assert exc.value.found == ["20200604T054639", "20200823T054639"] and exc.value.input == "ms"
    stack = open_optical(folder, S2_PAPER10, acquisition="20200604")
    assert {Path(b.path).parent for b in stack.bands} == {SSL4EO_CLEAR}
    with pytest.raises(AcquisitionError, match="no file of the acquisition"):
        open_optical(folder, S2_PAPER10, acquisition="20211231")


def test_folder_of_whole_unnamed_stacks_is_refused_as_several_scenes(tmp_path):
    """A folder of patches, each a whole 13-band stack without names (SEN12MS-CR's layout), is
    several scenes, not one scene's 26 bands: the error says to give one file, and names the
    input (not band names) as the fix. One of those files reads as before."""
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    for name in ("p30.tif", "p31.tif"):
        write_raster(tmp_path / name, raw, like=CR_CLOUDY_S2)
    with pytest.raises(BandMismatchError, match="2 separate scenes") as exc:
        open_optical(tmp_path, S2_PAPER10)
    assert exc.value.option == "ms" and "Give one of them" in str(exc.value)
    assert len(open_optical(tmp_path / "p30.tif", S2_PAPER10).bands) == len(S2_PAPER10)


def test_band_sets_work_or_name_what_the_model_expects(tmp_path):
    """13-band L1C and 12-band L2A feed a paper10 model; a 12-band L2A cannot feed an all13
    model (no B10) and a VV-only SAR cannot feed a VV+VH model: both errors say what the
    model expects."""
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    l2a = [b for b in S2_BANDS if b != "B10"]
    write_raster(tmp_path / "l2a.tif", raw[[S2_BANDS.index(b) for b in l2a]], like=CR_CLOUDY_S2)
    run = open_inputs(tmp_path / "l2a.tif", CR_CLOUDY_S1, S2_PAPER10, ("VV", "VH"))
    assert run.ms.names == S2_PAPER10 and [b.index for b in run.ms.bands][-2:] == [11, 12]
    assert open_inputs(CR_CLOUDY_S2, CR_CLOUDY_S1, S2_PAPER10, ("VV", "VH")).ms.bands[-1].index == 13
    with pytest.raises(BandMismatchError, match="B10 is missing") as exc:
        open_inputs(tmp_path / "l2a.tif", None, S2_BANDS)
    assert (exc.value.input, exc.value.option, exc.value.expected) == ("ms", "ms_bands", S2_BANDS)
    vv = write_raster(tmp_path / "s1_vv.tif", gdal.Open(str(CR_CLOUDY_S1)).ReadAsArray()[:1], like=CR_CLOUDY_S1,
                      dtype=gdal.GDT_Float32)
    with pytest.raises(BandMismatchError, match="VH is missing") as exc:
        open_inputs(CR_CLOUDY_S2, vv, S2_PAPER10, ("VV", "VH"))
    assert (exc.value.input, exc.value.option) == ("sar", "sar_channels")
    # and a VV-only model takes it
    assert open_inputs(CR_CLOUDY_S2, vv, S2_PAPER10, ("VV",)).sar.names == ("VV",)


def test_open_inputs_validates_everything_once(tmp_path):
    mask = write_raster(tmp_path / "m.tif", np.zeros((1, 256, 256), np.uint8), like=CR_CLOUDY_S2,
                        dtype=gdal.GDT_Byte)
    run = open_inputs(CR_CLOUDY_S2, CR_CLOUDY_S1, S2_PAPER10, ("VV", "VH"), reference=CR_CLOUDY_S2,
                      options=InputOptions(window=Window(10, 20, 100, 50), cloud_mask=mask))
    assert set(run.stacks) == {"ms", "sar", "mask"} and run.area == Window(10, 20, 100, 50)
    prov = run.provenance()
    assert prov["ms_scaling"]["rule"] == "dtype" and prov["mask"] == str(mask)
    assert [m["band"] for m in prov["ms_bands"]] == list(S2_PAPER10)
    assert [m["band"] for m in prov["sar_channels"]] == ["VV", "VH"]
    assert prov["ms_band_order_check"]["verdict"] == "plausible"
    json.dumps(prov)  # JSON-ready


def test_metrics_json_records_provenance(tmp_path, lite_model_path):
    res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, lite_model_path, tmp_path / "o.tif",
                  options=DecloudOptions(window=WINDOW))
    prov = json.loads(res.metrics_path.read_text())["provenance"]
    assert prov["model"]["sha256"] == hashlib.sha256(Path(lite_model_path).read_bytes()).hexdigest()
    assert prov["model"]["file"] == str(lite_model_path)
    assert prov["ms_scaling"] == {"rule": "dtype", "dn_per_reflectance": 10000.0, "offset": 0.0,
                                  "reason": "integer data: DN = reflectance x 10000", "source": "", "warning": None}
    assert [m["band"] for m in prov["ms_bands"]] == list(S2_PAPER10)
    assert prov["options"]["window"] is not None
    detector = "ukis-csmask " if len(CR_MASK_FILES) > 1 else "spectral rules"  # 2.56 km: the CNN where installed
    assert prov["mask"].startswith(f"detected ({detector}")  # detected by default
    assert prov["mask"].endswith(f"): {res.maps['mask']}")
    assert prov["sarclear_version"] and prov["inputs"]["ms"] == str(CR_CLOUDY_S2)


def test_ssl4eo_sample_declares_nothing_and_reads_plainly():
    """L1C per-band files of baseline < 04.00 (2020): no offset, no warning."""
    d = optical_scaling(open_optical(SSL4EO_CLEAR, S2_PAPER10))
    assert (d.rule, d.offset, d.warning) == ("dtype", 0.0, None)
    assert SSL4EO.is_dir()


@pytest.mark.skipif(not OFFSET_CELL.is_dir(), reason="shared Major TOM data not present")
def test_training_reader_applies_the_declared_offset():
    """Training pairs go through the same rule: the N0400 cell trains on (DN - 1000) / 10000."""
    from sarclear import data

    loaded = data.load_pair(data.Pair((), (str(OFFSET_CELL),)), ("B4",), ())
    raw = gdal.Open(str(OFFSET_CELL / "B04.tif")).ReadAsArray().astype(np.float64)
    np.testing.assert_allclose(loaded.clear[0].numpy(), (raw - 1000) / 10_000, atol=1e-6)


def test_gdal_connection_strings_open_like_files():
    """GDAL dataset names that are not paths (the SENTINEL2 driver's subdatasets, here the
    GTiff driver's GTIFF_DIR:) reach GDAL instead of failing as a missing file."""
    stack = open_optical(f"GTIFF_DIR:1:{CR_CLOUDY_S2}", S2_PAPER10)
    plain = open_optical(CR_CLOUDY_S2, S2_PAPER10)
    assert stack.grid == plain.grid
    assert np.array_equal(stack.open().read(WINDOW)[0], plain.open().read(WINDOW)[0])


def test_sar_folder_with_two_acquisitions_is_refused_or_resolved():
    from conftest import SSL4EO_S1

    folder = SSL4EO_S1.parent  # two Sentinel-1 products
    with pytest.raises(AcquisitionError, match="2 acquisitions") as exc:
        open_inputs(SSL4EO_CLEAR, folder, S2_PAPER10, ("VV", "VH"))
    assert exc.value.input == "sar" and exc.value.found == ["20200607T010800", "20200903T131212"]
    run = open_inputs(SSL4EO_CLEAR, folder, S2_PAPER10, ("VV", "VH"), options=InputOptions(sar_acquisition="20200903"))
    assert {Path(b.path).parent.name[17:32] for b in run.sar.bands} == {"20200903T131212"}
