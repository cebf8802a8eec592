"""The product level the cloudy image is read as, as the dialog offers it and Processing lists
it: the cloud detector picks its model or rules by it, and the default model its uncertainty's
typical dark ground (so it applies with a cloud mask layer too).

Sentinel-2 comes as L1C (top-of-atmosphere reflectance) or L2A (surface reflectance), and
both detectors (ukis-csmask's CNN, the spectral rules) have a model or rules for each. By
default the library takes the level from the file's metadata (sarclear's own outputs declare
it), else the file names (MSIL1C / MSIL2A, SAFE folders included), else guesses it from the
bands (only L1C has the cirrus band B10) and says so; a 10-band stack exported from an L1C
product is then read as L2A. Here the analyst can say which (``DecloudOptions.product_level``).
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox

#: (label, DecloudOptions.product_level), in the order of the combo box and the Processing enum.
LEVELS = (("From the product (file names, else guessed from the bands)", None),
          ("L1C (top of atmosphere)", "l1c"),
          ("L2A (surface reflectance)", "l2a"))

_HELP = ("The processing level of the cloudy image, for cloud detection and the uncertainty: L1C (top of "
         "atmosphere) or L2A (surface reflectance). By default it is read from the file's metadata (sarclear's "
         "own outputs declare it), else the file names (MSIL1C / MSIL2A), else from the bands: only L1C has "
         "the cirrus band B10 (in the file or beside it), so a 10-band stack made from an L1C product is read "
         "as L2A; choose L1C then.")


class LevelOption:
    """The product level combo box (the dialog lays it out); :meth:`options` gives the
    DecloudOptions field it sets."""

    def __init__(self):
        self.combo = QComboBox()
        for label, _ in LEVELS:
            self.combo.addItem(label)
        self.combo.setToolTip(_HELP)

    def options(self) -> dict:
        """``{"product_level": "l1c" | "l2a"}`` when one is chosen, else nothing (the library's
        rule)."""
        level = LEVELS[self.combo.currentIndex()][1]
        return {"product_level": level} if level else {}
