"""Errors the user can act on. Each message names the problem and the way out; the CLI
prints it without a traceback and the QGIS plugin shows it in its message bar."""

from __future__ import annotations


class SarclearError(Exception):
    """Base class: a problem with the user's inputs, files or environment.

    Besides the neutral message, errors carry structured fields so that each front end can
    name its own control: ``input`` is the input concerned ("ms", "sar", "reference",
    "mask", "model", "out", "aoi"...), ``option`` the library option that fixes it (a field
    of :class:`~sarclear.inference.DecloudOptions` or a parameter name: "ms_bands",
    "ms_offset", "overwrite"...), ``expected``/``found`` what was needed and what was there.
    """

    def __init__(self, message: str = "", *, input: str | None = None, option: str | None = None,
                 expected: object = None, found: object = None, path: str | None = None):
        super().__init__(message)
        self.input, self.option, self.expected, self.found, self.path = input, option, expected, found, path


class InputError(SarclearError, ValueError):
    """A raster, band list or option that cannot be used as given."""


class BandMismatchError(InputError):
    """The raster's bands do not match the bands the model reads."""


class ScalingError(InputError):
    """Optical values whose mapping to reflectance is ambiguous or invalid."""


class AcquisitionError(InputError):
    """A folder holds several acquisitions and none was chosen (``found`` lists them)."""


class BandOrderError(BandMismatchError):
    """Bands without names whose values do not fit the order they were assumed to be in."""


class NoOverlapError(InputError):
    """Two rasters (or a raster and an area of interest) share no ground."""


class GeoreferenceError(InputError):
    """A raster lacks the georeference needed to align it with another."""


class ReadError(InputError, OSError):
    """A file that exists but cannot be read to the end (truncated, damaged, unreadable)."""


class CheckpointError(SarclearError):
    """A model file that is missing, corrupt, unsafe, or for another sarclear version."""


class OutputError(SarclearError, OSError):
    """An output that cannot be written (exists, unwritable folder, disk full)."""


class Cancelled(SarclearError):
    """The run was cancelled by the user; nothing was left half-written."""


class DeviceError(SarclearError):
    """The requested compute device is not available, or ran out of memory."""
