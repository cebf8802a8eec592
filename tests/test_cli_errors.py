"""Errors speak the caller's language: the library's text names no command-line flag, its
errors carry the option that fixes them, and the command line maps that option to its flag.
Also the io flags of `clouds` and `evaluate`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CR_CLOUDY_S1, CR_CLOUDY_S2, SSL4EO_CLEAR, SSL4EO_S1
from osgeo import gdal

from sarclear.bands import S2_BANDS
from sarclear.cli import main

LIBRARY = Path(__file__).resolve().parents[1] / "library" / "sarclear"
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _message_strings(tree: ast.AST):
    """String constants of a module that are not docstrings (messages, log formats)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_library_message_names_a_command_line_flag():
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.name.startswith("cli") or path.name == "__main__.py":  # the command line names its flags
            continue
        for line, text in _message_strings(ast.parse(path.read_text())):
            if _FLAG.search(text) or "sarclear export" in text:
                offenders.append(f"{path.relative_to(LIBRARY)}:{line}: {text!r}")
    assert offenders == []


def test_cli_names_the_flag_for_each_typed_error(tmp_path, lite_model_path, capsys):
    folder = SSL4EO_CLEAR.parent  # two acquisitions
    args = ["-q", "decloud", "--sar", str(SSL4EO_S1), "--model", str(lite_model_path)]
    assert main([*args, "--ms", str(folder), "--out", str(tmp_path / "a.tif")]) == 2
    err = capsys.readouterr().err
    assert "2 acquisitions" in err and "20200604T054639" in err and "--ms-acquisition" in err
    assert main([*args, "--ms", str(folder), "--ms-acquisition", "20200604", "--out", str(tmp_path / "a.tif"),
                 "--figure", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a_change_metrics.json").exists() and (tmp_path / "a.png").exists()
    capsys.readouterr()
    assert main([*args, "--ms", str(folder), "--ms-acquisition", "20200604", "--out", str(tmp_path / "a.tif")]) == 2
    assert "(command line: --overwrite)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # refused by the argument parser, before any work
        main([*args, "--ms", str(SSL4EO_CLEAR), "--ms-scale", "0", "--out", str(tmp_path / "b.tif")])
    assert stop.value.code == 2 and "argument --ms-scale: 0 is too small" in capsys.readouterr().err


def _alphabetical_copy(tmp_path: Path) -> tuple[Path, list[str]]:
    raw = gdal.Open(str(CR_CLOUDY_S2)).ReadAsArray()
    alpha = sorted(S2_BANDS)
    path = tmp_path / "alpha.tif"
    from conftest import write_raster

    write_raster(path, raw[[S2_BANDS.index(b) for b in alpha]], like=CR_CLOUDY_S2)
    return path, alpha


def test_clouds_honours_ms_bands_and_offset(tmp_path, capsys):
    alpha_tif, alpha = _alphabetical_copy(tmp_path)
    assert main(["-q", "clouds", "--in", str(alpha_tif), "--out", str(tmp_path / "x.tif")]) == 2
    assert "--ms-bands" in capsys.readouterr().err
    assert main(["-q", "clouds", "--in", str(alpha_tif), "--out", str(tmp_path / "named.tif"), "--seed", "2",
                 "--ms-bands", ",".join(alpha)]) == 0
    assert main(["-q", "clouds", "--in", str(CR_CLOUDY_S2), "--out", str(tmp_path / "std.tif"), "--seed", "2"]) == 0
    named, std = gdal.Open(str(tmp_path / "named.tif")), gdal.Open(str(tmp_path / "std.tif"))
    # bands named explicitly are written in the standard order: the same raster as from the standard file
    assert [named.GetRasterBand(i).GetDescription() for i in (1, 2, 13)] == ["B1", "B2", "B12"]
    assert np.array_equal(named.ReadAsArray(), std.ReadAsArray())
    assert main(["-q", "clouds", "--in", str(CR_CLOUDY_S2), "--out", str(tmp_path / "off.tif"), "--seed", "2",
                 "--ms-offset", "-1000"]) == 0
    off = gdal.Open(str(tmp_path / "off.tif"))
    assert off.GetRasterBand(1).GetOffset() == -0.1  # the output declares the offset it carries
    assert np.abs(off.ReadAsArray().astype(int) - std.ReadAsArray().astype(int)).mean() > 10


def test_evaluate_takes_offset_without_scale_and_finds_sar_channels(tmp_path, capsys):
    prefix = tmp_path / "e"
    assert main(["-q", "evaluate", "--prediction", str(CR_CLOUDY_S2), "--reference", str(CR_CLOUDY_S2),
                 "--out-prefix", str(prefix), "--ms-offset", "-1000", "--sar", str(CR_CLOUDY_S1),
                 "--figure", str(tmp_path / "f.png")]) == 0
    metrics = json.loads((tmp_path / "e_metrics.json").read_text())
    assert metrics["provenance"]["prediction_scaling"]["offset"] == -1000
    assert metrics["provenance"]["reference_scaling"]["rule"] == "user"
    assert (tmp_path / "f.png").stat().st_size > 1000
