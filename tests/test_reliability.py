"""Bad inputs, faults and concurrency: each case gives a clear error or a documented correct
result, and never leaves a half-written output (docs/RELIABILITY.md lists them)."""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BEN_S1, BEN_S2, CR_CLOUDY_S1, CR_CLOUDY_S2, ROOT, IdentityGenerator, read_raster, write_raster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal

from sarclear import checkpoint, networks, raster
from sarclear.bands import S2_BANDS, S2_PAPER10
from sarclear.errors import BandMismatchError, GeoreferenceError, InputError, OutputError
from sarclear.inference import DecloudOptions, decloud

PAPER_IDX = [S2_BANDS.index(b) for b in S2_PAPER10]


def _write(path, arrays, **kw):
    return write_raster(path, arrays, **{"dtype": gdal.GDT_UInt16, **kw})


def _read(path):
    return read_raster(path)[0]


@pytest.fixture()
def identity():
    return checkpoint.Model(IdentityGenerator(), networks.preset("lite"))


@pytest.fixture(scope="module")
def cloudy():
    return gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()


# ---------------------------------------------------------------- optical data types and scales


def test_uint8_optical_data_needs_a_declared_scale(tmp_path, identity, cloudy):
    ms = _write(tmp_path / "ms8.tif", np.clip(cloudy / 40, 0, 255).astype(np.uint8), like=CR_CLOUDY_S2,
                dtype=gdal.GDT_Byte)
    with pytest.raises(InputError, match=r"8-bit.*DN per unit reflectance") as exc:
        decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o.tif")
    assert exc.value.option == "ms_scale"
    res = decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o.tif", maps=False, options=DecloudOptions(ms_scale=250))
    out = _read(res.output)
    assert out.dtype == np.uint8
    assert np.array_equal(out, np.clip(_read(ms)[PAPER_IDX], 1, 250))  # identity, in the input's own scale


def test_float_reflectance_is_detected_and_kept_as_float(tmp_path, identity, cloudy):
    ms = _write(tmp_path / "refl.tif", (cloudy / 10000).astype(np.float32), like=CR_CLOUDY_S2, dtype=gdal.GDT_Float32)
    out = _read(decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o.tif", maps=False).output)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(cloudy[PAPER_IDX] / 10000, 0, 1), atol=1e-6)


def test_float_digital_numbers_are_scaled_like_integers(tmp_path, identity, cloudy):
    ms = _write(tmp_path / "dn.tif", cloudy.astype(np.float32), like=CR_CLOUDY_S2, dtype=gdal.GDT_Float32)
    out = _read(decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o.tif", maps=False).output)
    np.testing.assert_allclose(out, np.clip(cloudy[PAPER_IDX], 0, 10000), atol=0.01)


# ---------------------------------------------------------------- SAR channels


def test_sar_with_three_unlabelled_channels_is_refused(tmp_path, identity):
    s1 = _read(CR_CLOUDY_S1)
    sar = _write(tmp_path / "s1x3.tif", np.concatenate([s1, s1[:1]]), like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32)
    with pytest.raises(BandMismatchError, match=r"3 unnamed bands.*expected 2 \(VV, VH\)"):
        decloud(CR_CLOUDY_S2, sar, identity, tmp_path / "o.tif")


def test_labelled_extra_sar_channels_are_ignored_and_a_missing_one_is_named(tmp_path, identity):
    s1 = _read(CR_CLOUDY_S1)
    extra = _write(tmp_path / "s1_angle.tif", np.concatenate([s1[1:], s1[:1], s1[:1] * 0 + 35]), like=CR_CLOUDY_S1,
                   dtype=gdal.GDT_Float32, names=["VH", "VV", "incidence angle"])
    res = decloud(CR_CLOUDY_S2, extra, identity, tmp_path / "o.tif", maps=False)
    assert res.output.exists()
    only_vv = _write(tmp_path / "s1_vv.tif", s1[:1], like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32, names=["VV"])
    with pytest.raises(BandMismatchError, match="VH is missing"):
        decloud(CR_CLOUDY_S2, only_vv, identity, tmp_path / "o2.tif")


def test_model_bands_missing_from_the_input_are_named(tmp_path):
    cfg = networks.preset("lite", bands=S2_BANDS)  # an all13 model on a 12-band L2A product
    with pytest.raises(BandMismatchError, match="B10 is missing"):
        decloud(BEN_S2, BEN_S1, checkpoint.Model(IdentityGenerator(), cfg), tmp_path / "o.tif")


# ---------------------------------------------------------------- georeference


def test_rotated_optical_grid_with_sar_elsewhere_is_explained(tmp_path, identity, cloudy):
    gt = gdal.Open(str(CR_CLOUDY_S2)).GetGeoTransform()
    rotated = (gt[0], 9.9, 1.0, gt[3], 1.0, -9.9)
    ms = _write(tmp_path / "rot.tif", cloudy, gt=rotated, srs=gdal.Open(str(CR_CLOUDY_S2)).GetProjection())
    with pytest.raises(GeoreferenceError, match=r"rotated geotransform.*north-up"):
        decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_rotated_sar_is_warped_onto_a_north_up_optical_grid(tmp_path, identity):
    src = gdal.Open(str(CR_CLOUDY_S1))
    gt = src.GetGeoTransform()
    sar = _write(tmp_path / "rot_sar.tif", src.ReadAsArray(), gt=(gt[0] - 300, 9.96, 0.87, gt[3] + 300, 0.87, -9.96),
                 srs=src.GetProjection(), dtype=gdal.GDT_Float32)
    res = decloud(CR_CLOUDY_S2, sar, identity, tmp_path / "o.tif", maps=False)
    out = _read(res.output)
    assert (out[0] == 0).mean() > 0.05 and (out[0] != 0).mean() > 0.5  # partly covered: the rest is nodata


def test_rasters_without_any_georeference(tmp_path, identity, cloudy):
    ms = _write(tmp_path / "plain_ms.tif", cloudy)
    sar = _write(tmp_path / "plain_sar.tif", _read(CR_CLOUDY_S1), dtype=gdal.GDT_Float32)
    out = _read(decloud(ms, sar, identity, tmp_path / "o.tif", maps=False).output)  # same size: pixel-aligned
    assert np.array_equal(out, np.clip(cloudy[PAPER_IDX], 1, 10000))
    with pytest.raises(GeoreferenceError, match="no CRS"):
        decloud(ms, CR_CLOUDY_S1, identity, tmp_path / "o2.tif")
    small = _write(tmp_path / "small_sar.tif", _read(CR_CLOUDY_S1)[:, :100], dtype=gdal.GDT_Float32)
    with pytest.raises(GeoreferenceError, match="sizes differ"):
        decloud(ms, small, identity, tmp_path / "o3.tif")


# ---------------------------------------------------------------- nodata


def test_all_nodata_tiles_and_nan_sar_become_nodata(tmp_path, identity, cloudy):
    data = cloudy.copy()
    data[:, :, :128] = 0
    ms = _write(tmp_path / "half.tif", data, like=CR_CLOUDY_S2, nodata=0)
    s1 = _read(CR_CLOUDY_S1)
    s1[:, 200:, :] = np.nan
    sar = _write(tmp_path / "nan_sar.tif", s1, like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32)
    out = _read(decloud(ms, sar, identity, tmp_path / "o.tif", maps=False,
                        options=DecloudOptions(overlap=0, batch_size=1)).output)
    assert (out[:, :, :128] == 0).all() and (out[:, 200:, :] == 0).all()
    assert np.array_equal(out[:, :200, 128:], np.clip(cloudy[PAPER_IDX][:, :200, 128:], 1, 10000))


# ---------------------------------------------------------------- faults


class _FlakyOnBigBatches(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches over 2 tiles, like a full GPU."""

    def __init__(self):
        super().__init__()
        self.inner = IdentityGenerator()

    def forward(self, cloudy, sar=None):
        if cloudy.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(cloudy, sar)


def test_out_of_memory_retries_with_smaller_batches_and_says_so(tmp_path, cloudy):
    big = np.concatenate([cloudy, cloudy[:, :, ::-1]] * 3, axis=2)  # one strip of 6 tiles
    ms = _write(tmp_path / "wide.tif", big, like=CR_CLOUDY_S2)
    sar = _write(tmp_path / "wide_sar.tif", np.concatenate([_read(CR_CLOUDY_S1)] * 6, axis=2), like=CR_CLOUDY_S1,
                 dtype=gdal.GDT_Float32)
    model = checkpoint.Model(_FlakyOnBigBatches(), networks.preset("lite"))
    res = decloud(ms, sar, model, tmp_path / "o.tif", maps=False, options=DecloudOptions(batch_size=8, overlap=0,
                                                                              cloud_mask=None))
    assert res.batch_size <= 2 and res.notes and all("out of memory" in n and "retrying" in n for n in res.notes)
    assert np.array_equal(_read(res.output), np.clip(big[PAPER_IDX], 1, 10000))


def _cli(*args, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "sarclear", "-q", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _big_pair(tmp_path, reps=4):
    ms = _write(tmp_path / "big.tif", np.concatenate([np.concatenate([_read(CR_CLOUDY_S2)] * reps, axis=2)] * reps,
                                                     axis=1), like=CR_CLOUDY_S2)
    sar = _write(tmp_path / "big_sar.tif", np.concatenate([np.concatenate([_read(CR_CLOUDY_S1)] * reps, axis=2)] * reps,
                                                          axis=1), like=CR_CLOUDY_S1, dtype=gdal.GDT_Float32)
    return ms, sar


@pytest.mark.slow
def test_sigkill_during_decloud_leaves_no_output_and_a_rerun_cleans_up(tmp_path, lite_model_path):
    ms, sar = _big_pair(tmp_path)
    out = tmp_path / "out.tif"
    proc = _cli("decloud", "--ms", ms, "--sar", sar, "--model", lite_model_path, "--out", out, "--batch-size", "1")
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".*out.tif.sarclear-*.part")):
        time.sleep(0.02)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not out.exists() and list(tmp_path.glob(".*out.tif.sarclear-*.part"))  # only the hidden part
    rerun = _cli("decloud", "--ms", ms, "--sar", sar, "--model", lite_model_path, "--out", out, "--no-maps")
    _, err = rerun.communicate()
    assert rerun.returncode == 0, err
    assert out.exists() and not list(tmp_path.glob(".*out.tif*.part*"))
    assert gdal.Open(str(out)).ReadAsArray().shape == (10, 1024, 1024)


def test_full_disk_is_a_clear_error_and_nothing_is_left(tmp_path, lite_model_path):
    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # files stop growing at 150 kB

    out = tmp_path / "out.tif"
    proc = _cli("decloud", "--ms", CR_CLOUDY_S2, "--sar", CR_CLOUDY_S1, "--model", lite_model_path, "--out", out,
                preexec_fn=small_disk)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "disk full or file too large" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_is_refused_before_any_work(tmp_path, identity, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputError, match="MiB free"):
        decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity, tmp_path / "o.tif")
    assert list(tmp_path.iterdir()) == []


def _in_unprivileged_child(fn) -> int:
    """Run ``fn`` (returns an exit code) in a forked child that dropped root to the user
    nobody, so that file permissions apply to it; its exit code (4: could not drop root)."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 3
        try:
            try:
                os.setgid(65534)
                os.setuid(65534)
            except OSError:
                code = 4
            else:
                code = fn()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_unwritable_output_folder_is_refused_before_any_work(identity):
    """A read-only folder is refused before any work. As root, who ignores permissions, the
    run happens in a child process that dropped root, so the check is exercised for real."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="sarclear-ro-"))
    base.chmod(0o755)  # traversable by the unprivileged child
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0o555)

    def attempt() -> int:
        try:
            (locked / "probe").write_text("x")
            return 1  # the folder is writable after all: the test would prove nothing
        except PermissionError:
            pass
        try:
            decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity, locked / "o.tif")
        except OutputError as exc:
            return 0 if "not writable" in str(exc) and exc.input == "out" else 2
        return 2

    try:
        if os.geteuid() == 0:
            code = _in_unprivileged_child(attempt)
            if code == 4:
                pytest.skip("cannot drop root privileges here (no CAP_SETUID)")
        else:
            code = attempt()
        assert code == 0
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
        shutil.rmtree(base)


@pytest.mark.slow
def test_two_runs_on_one_output_path_one_wins_cleanly(tmp_path, lite_model_path):
    ms, sar = _big_pair(tmp_path, reps=2)
    out = tmp_path / "same.tif"
    runs = [_cli("decloud", "--ms", ms, "--sar", sar, "--model", lite_model_path, "--out", out) for _ in range(2)]
    results = [(p.communicate(timeout=600)[1], p.returncode) for p in runs]
    results = [(code, err) for err, code in results]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = next(e for c, e in results if c == 2)
    assert "appeared while this run was writing" in loser or "exists" in loser
    assert gdal.Open(str(out)).ReadAsArray().shape == (10, 512, 512)
    assert not list(tmp_path.glob(".*part*"))


# ---------------------------------------------------------------- property-based round trips


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 300), height=st.integers(1, 300), tile=st.sampled_from([128, 256]),
       overlap=st.integers(0, 100), dtype=st.sampled_from([gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_Float32]),
       hole=st.tuples(st.integers(0, 299), st.integers(0, 299), st.integers(0, 80), st.integers(0, 80)),
       seed=st.integers(0, 2**16))
def test_identity_decloud_reproduces_any_raster_exactly(tmp_path_factory, width, height, tile, overlap, dtype, hole,
                                                      seed):
    import dataclasses

    tmp = tmp_path_factory.mktemp("prop")
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10001, (10, height, width)).astype(np.float64)
    if dtype == gdal.GDT_Float32:
        data = data / 10000  # reflectance
    r, c, h, w = hole
    data[:, r:r + h, c:c + w] = 0  # a nodata region anywhere, of any size
    gt = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)
    srs = gdal.Open(str(CR_CLOUDY_S2)).GetProjection()
    ms = _write(tmp / "ms.tif", data, gt=gt, srs=srs, dtype=dtype, names=list(S2_PAPER10), nodata=0)
    sar = _write(tmp / "sar.tif", rng.uniform(-25, 0, (2, height, width)), gt=gt, srs=srs, dtype=gdal.GDT_Float32,
                 names=["VV", "VH"])
    model = checkpoint.Model(IdentityGenerator(), dataclasses.replace(networks.preset("lite"), tile_size=tile))
    out = _read(decloud(ms, sar, model, tmp / "o.tif", maps=False,
                        options=DecloudOptions(overlap=min(overlap, tile - 1), io_threads=bool(seed % 2),
                                               batch_size=1 + seed % 5, panel_width=256 * (1 + seed % 3))).output)
    expected = _read(ms)
    if dtype == gdal.GDT_Float32:
        np.testing.assert_allclose(out, expected, atol=1e-6)  # a few float32 ulps of reflectance
    else:
        assert np.array_equal(out, expected)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 65535), min_size=1, max_size=64), st.sampled_from(["uint16", "int16", "uint8"]))
def test_to_dtype_round_trips_every_representable_value(values, dtype):
    np_type = np.dtype(dtype)
    info = np.iinfo(np_type)
    v = np.clip(np.array(values, np.int64), info.min, info.max).astype(np_type)
    code = {"uint16": gdal.GDT_UInt16, "int16": gdal.GDT_Int16, "uint8": gdal.GDT_Byte}[dtype]
    back = raster.to_dtype(v.astype(np.float64)[None, None], code, np.ones((1, v.size), bool), None)
    assert np.array_equal(back[0, 0], v)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-40, 10, allow_nan=False), min_size=2, max_size=40))
def test_sar_scaling_round_trips_inside_the_clip_range(values):
    from sarclear.scaling import SarScaling

    s = SarScaling(("VV", "VH"))
    db = np.array(values[: len(values) // 2 * 2], np.float64).reshape(2, -1, 1)
    lo, hi = np.array([[[-25.0]], [[-32.5]]]), np.zeros((2, 1, 1))
    clipped = np.clip(db, lo, hi)
    np.testing.assert_allclose(s.from_network(s.to_network(db)), clipped, atol=1e-9)


def test_safe_inputs_only_write_inside_the_chosen_outputs(tmp_path, identity):
    before = set(ROOT.rglob("*"))
    res = decloud(CR_CLOUDY_S2, CR_CLOUDY_S1, identity, tmp_path / "o.tif")
    assert {p.parent for p in [res.output, *res.maps.values(), res.metrics_path]} == {tmp_path}
    assert set(ROOT.rglob("*")) == before  # nothing written beside the inputs (no .aux.xml, no temp files)


def test_a_malicious_pickle_model_is_refused_without_running_its_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "model.safetensors"  # a pickle disguised by its name
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(checkpoint.CheckpointError, match="pickle"):
        checkpoint.load_model(evil)
    assert not marker.exists()


def test_no_torch_load_without_weights_only_anywhere():
    import re

    offenders = []
    for path in [*ROOT.glob("library/**/*.py"), *ROOT.glob("qgis_plugin/**/*.py"), *ROOT.glob("scripts/*.py"),
                 *ROOT.glob("benchmarks/*.py")]:
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            if "weights_only=True" not in call:
                offenders.append(f"{path}: {call}")
    assert offenders == []
