"""What the plugin needs from its surroundings: its icon, and PyTorch + safetensors in the
Python that QGIS runs (with instructions to install them when they are missing).

Nothing here imports torch at module level: :func:`missing_dependencies` tries the import
only when asked (dialog opened, algorithm run), so the plugin always loads.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from qgis.PyQt.QtGui import QIcon

_HERE = Path(__file__).resolve().parent

#: The packages a run needs beyond what QGIS ships (numpy and GDAL come with QGIS).
REQUIRED = ("torch", "safetensors")
#: The oldest Python the library and its PyTorch (2.13) run on. QGIS's metadata cannot say
#: this (QGIS 3.22 runs Python 3.8 on macOS but 3.10/3.11 on Ubuntu 22.04/Debian 12), so
#: the plugin loads everywhere and says so here instead of failing on import.
MIN_PYTHON = (3, 10)


def python_problem(version: tuple[int, int] | None = None) -> str | None:
    """None on a Python the library runs on; otherwise why not and what to do."""
    major, minor = version or sys.version_info[:2]
    if (major, minor) >= MIN_PYTHON:
        return None
    return (f"sarclear needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or later (its library and PyTorch 2.13 do), "
            f"but this QGIS runs Python {major}.{minor}. Use a QGIS build whose Python is "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or later (see its version in Plugins > Python Console: "
            "import sys; print(sys.version)), e.g. a current OSGeo4W QGIS on Windows or the QGIS of Debian 12 or "
            "Ubuntu 22.04 and later.")


def icon_path() -> Path:
    """The plugin's SVG icon: ``resources/icons`` inside the installed plugin, or at the
    repository root when running from a checkout."""
    for root in (_HERE, _HERE.parent):
        candidate = root / "resources" / "icons" / "sarclear.svg"
        if candidate.is_file():
            return candidate
    return _HERE / "resources" / "icons" / "sarclear.svg"


def plugin_icon() -> QIcon:
    return QIcon(str(icon_path()))


def missing_dependencies() -> str | None:
    """None when torch and safetensors import; otherwise a message saying which one is
    missing (or broken) and exactly how to install it into QGIS's Python."""
    too_old = python_problem()
    if too_old:
        return too_old
    problems = []
    for name in REQUIRED:
        try:
            __import__(name)
        except ImportError as exc:
            problems.append(name if isinstance(exc, ModuleNotFoundError) or "No module" in str(exc)
                            else f"{name} (installed but it fails to import: {exc})")
        except Exception as exc:  # a broken binary wheel raises OSError etc. on import
            problems.append(f"{name} (installed but it fails to import: {exc})")
    if not problems:
        return None
    return (f"sarclear needs {' and '.join(problems)} in the Python that QGIS uses "
            f"(Python {sys.version_info.major}.{sys.version_info.minor}). {install_instructions()}")


def dependencies_found() -> str | None:
    """Like :func:`missing_dependencies` but without importing anything (a 4-7 s torch
    import must not freeze the GUI): None when torch and safetensors are installed, else
    the message. Whether they also import is checked in a background task."""
    too_old = python_problem()
    if too_old:
        return too_old
    missing = []
    for name in REQUIRED:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module entry set to None, a broken package
            found = False
        if not found:
            missing.append(name)
    if not missing:
        return None
    return (f"sarclear needs {' and '.join(missing)} in the Python that QGIS uses "
            f"(Python {sys.version_info.major}.{sys.version_info.minor}). {install_instructions()}")


def install_instructions(platform: str | None = None) -> str:
    """How to install the dependencies into QGIS's own Python on this platform, by hand
    (the dialog's "Install dependencies" button runs the same commands). numpy is held at
    the installed version: QGIS's GDAL was built against it."""
    from .install import OTHER_PACKAGES, TORCH_INDEX, TORCH_PIN

    platform = platform or sys.platform
    others = " ".join(f'"{p}"' for p in OTHER_PACKAGES)
    torch = f"{TORCH_PIN} --index-url {TORCH_INDEX['cpu']}"
    pin = "-c \"import numpy; print('numpy==' + numpy.__version__)\""
    if platform.startswith("win"):
        how = ("Close QGIS, open the \"OSGeo4W Shell\" from the Start menu (as administrator for an "
               "all-users install) and run:\n"
               f"    python {pin} > %TEMP%\\numpy.txt\n"
               f"    python -m pip install -c %TEMP%\\numpy.txt {torch}\n"
               f"    python -m pip install -c %TEMP%\\numpy.txt {others}\n")
    elif platform == "darwin":
        py = "/Applications/QGIS.app/Contents/MacOS/bin/python3"
        how = ("Close QGIS, open Terminal and run QGIS's own Python (QGIS-LTR.app if that is the one you "
               "run):\n"
               f"    {py} {pin} > /tmp/numpy.txt\n"
               f"    {py} -m pip install --user -c /tmp/numpy.txt {torch}\n"
               f"    {py} -m pip install --user -c /tmp/numpy.txt {others}\n")
    else:
        how = ("Close QGIS and run, with the Python QGIS uses (the system python3 for distribution "
               "packages; Debian 12 and Ubuntu 23.04+ need --break-system-packages, which writes only "
               "to your ~/.local):\n"
               f"    python3 {pin} > /tmp/numpy.txt\n"
               f"    python3 -m pip install --user --break-system-packages -c /tmp/numpy.txt {torch}\n"
               f"    python3 -m pip install --user --break-system-packages -c /tmp/numpy.txt {others}\n"
               "(for an NVIDIA GPU, use --index-url " + TORCH_INDEX["cuda"] + " for torch).")
    return ("To install them, use the \"Install dependencies\" button of the sarclear dialog (Raster menu > "
            "sarclear), or by hand: " + how +
            " Then restart QGIS. You can check from the QGIS Python console (Plugins > Python Console): "
            "import torch; print(torch.__version__)")
