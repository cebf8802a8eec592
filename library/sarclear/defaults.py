"""Default buffers around a cloud mask, in pixels of the optical grid, defined once and light
to import (the QGIS plugin shows them without loading torch or GDAL)."""

#: Detected cloud and shadow grow by this much: 90 m at 10 m (Fmask's buffer); see sarclear.masks.
MASK_BUFFER_PX = 9
#: Clear pixels this close to a cloud's edge are kept but do not feed the fill (90 m, as far as a
#: detected mask grows: real clouds' haze reaches past any mask); see sarclear.fill.
FILL_BUFFER_PX = MASK_BUFFER_PX


def fill_buffer_px(detected: bool, mask_buffer: int = MASK_BUFFER_PX) -> int:
    """The fill buffer when none is given: the fill's sources start ``FILL_BUFFER_PX`` (90 m) past
    the cloud's edge, counting the growth a detected mask already has (``mask_buffer``). So 0 with
    automatic detection at the default mask buffer (9 px), and 9 for a mask file, used as it is:
    whichever mask, the fill draws from the ground 90 m or more from what was called cloud.

    Measured (classic card): on top of the detected mask's 90-m growth a buffer costs (held-out
    places: guided thick cloud 0.0517 without one, 0.0520 with 2 px). A mask file is rarely as
    wide as a real cloud's haze: on the real cloudy scene under the detectors' masks without growth
    (``benchmarks/mask_files.py``), the 9 px lower the default's RMSE under the mask by up
    to 19 % against 2 px (the classic default's by 36 %), where on synthetic clouds under their own
    exact masks they cost 1-4 % on the train split, 4-5 % held out (classic 3-10 % and 9-14 %;
    2026-12-04, classic card). Nor does a wider one help under the detected mask on that real
    scene, though the ground beyond it is hazy: the guided fill's RMSE there is 0.0285 at 0,
    0.0291 at 5 px and 0.0296 at 20 px (2026-12-05, guided card)."""
    return max(0, FILL_BUFFER_PX - mask_buffer) if detected else FILL_BUFFER_PX
