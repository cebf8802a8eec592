"""Default buffers around a cloud mask, in pixels of the optical grid, defined once and light
to import (the QGIS plugin shows them without loading torch or GDAL)."""

#: Detected cloud and shadow grow by this much: 90 m at 10 m (Fmask's buffer); see sarclear.masks.
MASK_BUFFER_PX = 9
#: Clear pixels this close to the mask are kept but do not feed the fill; see sarclear.fill.
FILL_BUFFER_PX = 2
