"""Deprecated import path: the scaling functions live in :mod:`sarclear.radiometry`."""

from .radiometry import (  # noqa: F401
    S1_DB_RANGE,
    S2_DN_PER_REFLECTANCE,
    OpticalScaling,
    SarScaling,
    db_to_linear,
    linear_to_db,
    network_to_reflectance,
    reflectance_to_network,
)
