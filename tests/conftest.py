"""Shared fixtures: the real Sentinel samples committed in the repository, small models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # no .aux.xml files beside the samples
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import torch
from torch import nn

from sarclear.mask_detectors import csmask_available

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"
TEST_DATA = ROOT / "tests" / "data"

SSL4EO = SAMPLES / "ssl4eo-s12"
SSL4EO_CLEAR = SSL4EO / "s2c" / "0000200" / "20200604T054639_20200604T054831_T43RCP"
SSL4EO_CLOUDY = SSL4EO / "s2c" / "0000200" / "20200823T054639_20200823T055618_T43RCP"
SSL4EO_S1 = SSL4EO / "s1" / "0000200" / "S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457"
BEN = SAMPLES / "bigearthnet"
BEN_S2 = BEN / "s2-tiny" / "S2A_MSIL2A_20170617T113321_4_55"
BEN_S1 = BEN / "s1-tiny" / "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"
CR_CLOUDY_S2 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s2_cloudy_19_p30.tif"
CR_CLOUDY_S1 = SAMPLES / "sen12ms-cr-cloudy" / "ROIs1868_summer_s1_19_p30.tif"
#: What ``--mask auto`` writes beside a decloud of the whole CR sample to ``o.tif``: at 2.56 km
#: across it runs the CNN detector where that is installed, which adds its cloud probability
CR_MASK_FILES = ("o_mask.tif", "o_mask_probability.tif") if csmask_available() else ("o_mask.tif",)
SEA = SAMPLES / "sen12ms-cr-sea"
FLOODS_S2 = TEST_DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
FLOODS_S1 = TEST_DATA / "sen1floods11" / "Spain_7370579_S1Hand.tif"


def write_raster(path, arrays, like=None, gt=None, srs=None, dtype=None, names=None, nodata=None):
    """Write (bands, rows, cols) ``arrays`` as a GeoTIFF, georeferenced like the raster
    ``like`` and/or by ``gt``/``srs``; returns ``path``."""
    import numpy as np
    from osgeo import gdal

    arrays = np.asarray(arrays)
    src = gdal.Open(str(like)) if like is not None else None
    if dtype is None:
        dtype = src.GetRasterBand(1).DataType if src is not None else gdal.GDT_UInt16
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arrays.shape[2], arrays.shape[1], arrays.shape[0], dtype)
    if src is not None:
        ds.SetGeoTransform(src.GetGeoTransform())
        ds.SetProjection(src.GetProjection())
    if gt is not None:
        ds.SetGeoTransform(gt)
    if srs is not None:
        ds.SetProjection(srs)
    for i, a in enumerate(arrays):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(a)
        if names:
            band.SetDescription(names[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return path


def read_raster(path):
    """(all bands as an array, the open dataset)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.ReadAsArray(), ds


class IdentityGenerator(nn.Module):
    """Returns its optical input: decloud with it must reproduce the input exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, cloudy: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        return cloudy + 0 * self.dummy


@pytest.fixture(scope="session")
def lite_model_path(tmp_path_factory) -> Path:
    """A randomly initialised lite SAR-Opt-cGAN saved as a model file."""
    from sarclear import checkpoint, networks

    torch.manual_seed(0)
    cfg = networks.preset("lite")
    g, _ = networks.build(cfg)
    return checkpoint.save_model(tmp_path_factory.mktemp("models") / "lite.safetensors", g, cfg)


@pytest.fixture()
def identity_model():
    from sarclear import checkpoint, networks

    return checkpoint.Model(IdentityGenerator(), networks.preset("lite"))


@pytest.fixture(scope="module")
def provider(qgis_processing):
    """The plugin's Processing provider, registered for a module's tests (QGIS tests only)."""
    from qgis.core import QgsApplication

    from qgis_plugin.provider import SarclearProvider

    registry = QgsApplication.processingRegistry()
    instance = SarclearProvider()
    assert registry.addProvider(instance)
    yield instance
    registry.removeProvider(instance)


_EXIT_STATUS: dict[str, int] = {}


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Leave with pytest's own exit status once everything is reported, without running the
    native libraries' destructors at interpreter exit: with QGIS, PyQt, torch, GDAL and
    onnxruntime in one process, glibc sometimes aborts there ("corrupted size vs. prev_size"),
    after every test has run and passed, which would turn a green run red."""
    if "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
