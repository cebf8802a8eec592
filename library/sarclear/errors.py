"""Errors the user can act on. Each message names the problem and the way out; the CLI
prints it without a traceback and the QGIS plugin shows it in its message bar."""

from __future__ import annotations


class SarclearError(Exception):
    """Base class: a problem with the user's inputs, files or environment."""


class InputError(SarclearError, ValueError):
    """A raster, band list or option that cannot be used as given."""


class BandMismatchError(InputError):
    """The raster's bands do not match the bands the model reads."""


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
