"""The sun's azimuth for the shadow check, as the dialog offers it (Processing has the same as
the advanced parameter SUN_AZIMUTH).

The cloud detector keeps a shadow only on the far side of a cloud from the sun. The library
finds the sun itself from the product's metadata (a mean solar azimuth), else from its sensing
time and place (Sentinel-2 names carry both), else it skips the check and says so in the log
(``sarclear.sun``). A file renamed or exported without either (a clipped stack, a chip of a
data set) has no sun: here the analyst can give it, from the product's metadata
(MEAN_SOLAR_AZIMUTH_ANGLE) or a sun calculator. It applies to automatic detection only: a
cloud mask layer is used as it is.
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QDoubleSpinBox

from .buffer_option import NOT_WITH_A_MASK

FROM_PRODUCT = -1.0  # the spin box's lowest value, shown as text: the library finds the sun

_HELP = ("With automatic cloud detection (no cloud mask layer chosen): the sun's azimuth, in degrees clockwise "
         "from true north (the product's mean solar azimuth, MEAN_SOLAR_AZIMUTH_ANGLE in its metadata). A "
         "detected shadow is kept only on the far side of its cloud from the sun. \"From the product\" finds it in "
         "the file's metadata, else from the sensing time and place in Sentinel-2 file names, else skips the "
         "check (the log says which).")


class SunOption:
    """The sun azimuth spin box (the dialog lays it out); :meth:`options` gives the
    DecloudOptions field it sets."""

    def __init__(self):
        self.spin = QDoubleSpinBox()
        self.spin.setRange(FROM_PRODUCT, 360.0)
        self.spin.setDecimals(1)
        self.spin.setSingleStep(1.0)
        self.spin.setSuffix(" °")
        self.spin.setSpecialValueText("From the product")  # shown at the lowest value
        self.spin.setValue(FROM_PRODUCT)
        self.spin.setToolTip(_HELP)
        self.detecting = True  # no mask layer: the library detects the clouds (set_detecting)

    def set_detecting(self, detecting: bool) -> None:
        """Grey the box out unless the clouds are detected automatically (``detecting``: no mask
        layer chosen): the shadow check is part of the detection."""
        self.detecting = detecting
        self.spin.setEnabled(detecting)
        self.spin.setToolTip(_HELP if detecting else NOT_WITH_A_MASK)

    def options(self) -> dict:
        """``{"sun_azimuth": degrees}`` when one is given and the clouds are detected, else
        nothing (the library finds the sun)."""
        value = self.spin.value()
        return {"sun_azimuth": value % 360.0} if self.detecting and value > FROM_PRODUCT else {}
