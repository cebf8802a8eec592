"""Python versions: the library and PyTorch 2.13 need Python 3.10 or later, which QGIS's
metadata cannot express (QGIS 3.22 runs Python 3.8 on macOS, 3.11 on Debian 12). The
plugin itself still imports on Python 3.8, and says why it cannot run there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qgis_plugin.environment import MIN_PYTHON, dependencies_found, missing_dependencies, python_problem

ROOT = Path(__file__).resolve().parent.parent
PYTHON38 = next(iter(sorted(Path("/root/.pyenv/versions").glob("3.8*/bin/python3.8"))), None) \
    if Path("/root/.pyenv/versions").is_dir() else None


def test_an_old_python_is_explained_not_a_traceback(monkeypatch):
    assert python_problem() is None and MIN_PYTHON == (3, 10)
    text = python_problem((3, 8))
    assert text.startswith("sarclear needs Python 3.10 or later (its library and PyTorch 2.13 do), but this QGIS "
                           "runs Python 3.8.")
    monkeypatch.setattr("sys.version_info", (3, 8, 18, "final", 0))
    assert dependencies_found() == missing_dependencies() == text  # the dialog and Processing say it


def test_metadata_declares_qgis_4_and_qt6():
    meta = dict(line.split("=", 1) for line in (ROOT / "metadata.txt").read_text().splitlines()
                if "=" in line and not line.startswith((";", " ")))
    assert meta["supportsQt6"] == "True" and meta["qgisMaximumVersion"] == "4.99"
    assert meta["qgisMinimumVersion"] == "3.22"


STUB = r'''
import sys, types, importlib.abc, importlib.machinery
class Anything(types.ModuleType):
    """A module whose every attribute is a class usable as base, decorator, enum, call."""
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {"__getattr__": lambda s, n: s, "__call__": lambda s, *a, **k: s,
                                "__init__": lambda s, *a, **k: None, "__or__": lambda s, o: s,
                                "__class_getitem__": classmethod(lambda c, k: c)})
        value.__getattr__ = lambda s, n: value
        setattr(self, name, value)
        return value
class Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("qgis", "osgeo", "numpy", "torch", "safetensors"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        return Anything(spec.name)
    def exec_module(self, module):
        module.__path__ = []
sys.meta_path.insert(0, Stubs())
import qgis_plugin
from qgis_plugin import plugin, dialog, task, layers, provider, algorithms, environment, install, messages, models
print(environment.python_problem())
'''


@pytest.mark.skipif(PYTHON38 is None, reason="no Python 3.8 here")
def test_the_plugin_imports_on_python_38_and_says_it_needs_310():
    """Only the plugin (QGIS, numpy, torch stubbed: Python 3.8 has none of them here): no
    3.9+ construct at import time, so QGIS 3.22 on macOS shows the message, not a traceback."""
    done = subprocess.run([str(PYTHON38), "-c", STUB], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("sarclear needs Python 3.10 or later") and "runs Python 3.8" in done.stdout
