"""The buffers around the cloud mask, as the dialog offers them and Processing defaults them.

Two distances, in pixels of the cloudy image's (MS) grid (10 m for the Sentinel-2 10 m
bands): how far automatically detected clouds and shadows are grown, since real clouds are
wider than what a detector calls cloud (``DecloudOptions.mask_buffer``), and how far from
the mask clear pixels stop feeding the fill, since those next to a cloud are often hazy
(``DecloudOptions.fill_buffer``). The mask buffer only applies to automatic detection: a
mask layer is used as it is. The fill buffer starts at "auto": 9 px (90 m) past the cloud's
edge, counting the growth a detected mask already has (0 with detection at the default 9 px, 9
with a mask layer; ``sarclear.defaults.fill_buffer_px``).

Their defaults come from :mod:`sarclear.defaults`, a light import (no torch, no GDAL), so
the dialog and the toolbox can show them before the library's engine is loaded.
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QSpinBox

MAX_BUFFER_PX = 64  # as the Processing parameters MASK_BUFFER and FILL_BUFFER

_MASK_HELP = ("With automatic cloud detection (no cloud mask layer chosen): grow the detected clouds and shadows "
              "by this many pixels, so their hazy edges are replaced too; real clouds are wider than what the "
              "detector calls cloud. 0 keeps the detection as it is. Pixels of the cloudy image's grid: 10 m each "
              "for the Sentinel-2 10 m bands, so 9 px is 90 m.")
#: the tooltip of an option of automatic detection while a cloud mask layer is chosen (sun_option too)
NOT_WITH_A_MASK = "Not used with a cloud mask layer: that mask is used as it is. Clear the Cloud mask to detect clouds."
_FILL_HELP = ("Clear pixels this close to the cloud mask keep their values but are not used to fill the clouds: "
              "next to a cloud they are often brighter (haze) or darker (shadow) than the ground. 0 uses every "
              "clear pixel. Auto: 9 px (90 m) past the cloud's edge, counting how far detected clouds were grown "
              "(so 0 with automatic detection and its default 9 px, 9 with a cloud mask layer). Pixels of the cloudy "
              "image's grid: 10 m each for the Sentinel-2 10 m bands.")
#: the fill buffer spin box's "auto" (the library's default for the mask in use)
AUTO = -1


def buffer_defaults() -> tuple[int | None, int | None]:
    """The library's mask and fill buffers (pixels; a light import: no torch, no GDAL); (None,
    None) while it is missing (the toolbox still lists the algorithm; an empty value means the
    library's default)."""
    try:
        from sarclear.defaults import FILL_BUFFER_PX, MASK_BUFFER_PX
    except ImportError:
        return None, None
    return MASK_BUFFER_PX, FILL_BUFFER_PX


def _spin(value: int | None, tooltip: str, auto: bool = False) -> QSpinBox:
    """A 0..64 px spin box at ``value``; disabled while the library (its default) is missing.
    With ``auto``, it starts below 0 at "auto" (the library's default for the mask in use)."""
    spin = QSpinBox()
    spin.setRange(AUTO if auto else 0, MAX_BUFFER_PX)
    spin.setSuffix(" px")
    if auto:
        spin.setSpecialValueText("auto")
    spin.setValue(AUTO if auto else value or 0)
    spin.setEnabled(value is not None)
    spin.setToolTip(tooltip)
    return spin


class BufferOptions:
    """The mask buffer and fill buffer spin boxes (the dialog lays them out, one form row
    each); :meth:`options` gives the DecloudOptions fields they set."""

    def __init__(self):
        self.defaults = buffer_defaults()
        self.mask_spin = _spin(self.defaults[0], _MASK_HELP)
        self.fill_spin = _spin(self.defaults[1], _FILL_HELP, auto=True)
        self.detecting = True  # no mask layer: the library detects the clouds (set_detecting)

    def set_detecting(self, detecting: bool) -> None:
        """Grey out the mask buffer unless the clouds are detected automatically (``detecting``:
        no mask layer chosen): it applies to nothing else."""
        self.detecting = detecting
        known = self.defaults[0] is not None
        self.mask_spin.setEnabled(detecting and known)
        self.mask_spin.setToolTip(_MASK_HELP if detecting else NOT_WITH_A_MASK)

    def options(self) -> dict:
        """The DecloudOptions fields of the spin boxes in use (none while the library, and so
        its default, is missing: the run cannot start then anyway)."""
        chosen = {}
        if self.detecting and self.defaults[0] is not None:
            chosen["mask_buffer"] = self.mask_spin.value()
        if self.defaults[1] is not None and self.fill_spin.value() != AUTO:
            chosen["fill_buffer"] = self.fill_spin.value()
        return chosen
