"""The product level the cloud detector reads the cloudy image as, as the dialog offers it and
Processing lists it.

Sentinel-2 comes as L1C (top-of-atmosphere reflectance) or L2A (surface reflectance), and
both detectors (ukis-csmask's CNN, the spectral rules) have a model or rules for each. By
default the library takes the level from the file names (MSIL1C / MSIL2A, SAFE folders
included), else guesses it from the bands (only L1C has the cirrus band B10) and says so; a
10-band stack exported from an L1C product is then read as L2A. Here the analyst can say which
(``DecloudOptions.product_level``). Like the mask buffer, it applies to automatic detection only.
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox

#: (label, DecloudOptions.product_level), in the order of the combo box and the Processing enum.
LEVELS = (("From the product (file names, else guessed from the bands)", None),
          ("L1C (top of atmosphere)", "l1c"),
          ("L2A (surface reflectance)", "l2a"))

_HELP = ("The processing level of the cloudy image, for cloud detection: L1C (top of atmosphere) or L2A "
         "(surface reflectance). By default it is read from the file names (MSIL1C / MSIL2A), else guessed "
         "from the bands: only L1C has the cirrus band B10, so a 10-band stack made from an L1C product is "
         "read as L2A; choose L1C then.")
_OFF = "Not used with a cloud mask layer: that mask is used as it is. Clear the Cloud mask to detect clouds."


class LevelOption:
    """The product level combo box (the dialog lays it out); :meth:`options` gives the
    DecloudOptions field it sets."""

    def __init__(self):
        self.combo = QComboBox()
        for label, _ in LEVELS:
            self.combo.addItem(label)
        self.combo.setToolTip(_HELP)
        self.detecting = True

    def set_detecting(self, detecting: bool) -> None:
        """Grey the combo out unless the clouds are detected automatically (no mask layer)."""
        self.detecting = detecting
        self.combo.setEnabled(detecting)
        self.combo.setToolTip(_HELP if detecting else _OFF)

    def options(self) -> dict:
        """``{"product_level": "l1c" | "l2a"}`` when one is chosen and clouds are detected, else
        nothing (the library's rule)."""
        level = LEVELS[self.combo.currentIndex()][1]
        return {"product_level": level} if self.detecting and level else {}
