"""sarclear QGIS plugin: a thin shell over the sarclear library (cloud removal from
Sentinel-2 with Sentinel-1 SAR). Every computation is a library call; this package only
gathers the user's choices, runs the library in a background task and styles the results.

In the installed plugin (``sarclear_qgis/`` built by ``scripts/build_plugin.py``) the library
is vendored in ``libs/``; it is put on ``sys.path`` only when no ``sarclear`` package is
importable already. Nothing here imports torch: heavy imports happen when a run starts, so
the plugin loads (and explains how to install torch) in a QGIS without it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _use_bundled_library() -> None:
    """Make ``import sarclear`` work from the plugin zip's ``libs/`` folder if needed."""
    libs = Path(__file__).resolve().parent / "libs"
    if importlib.util.find_spec("sarclear") is None and (libs / "sarclear").is_dir():
        sys.path.insert(0, str(libs))


_use_bundled_library()


def classFactory(iface):
    """QGIS entry point: the plugin instance for ``iface``."""
    from .plugin import SarclearPlugin

    return SarclearPlugin(iface)
