"""Processing algorithms: one library call each, listed for the provider.

- ``sarclear:removeclouds`` (:mod:`.algorithm_removeclouds`): :func:`sarclear.inference.decloud`
  (SAR-optical cGAN), with its RMSE/SAM maps and metrics;
- ``sarclear:errormaps`` (:mod:`.algorithm_evaluation`): :func:`sarclear.evaluation.evaluate`,
  RMSE and SAM maps of a reconstruction against a cloud-free reference;
- ``sarclear:syntheticclouds`` (:mod:`.algorithm_evaluation`): :func:`sarclear.synthetic.cloud_raster`,
  clouds, haze and shadows added to a clear image, for testing.

What they share (:mod:`.algorithm_base`): library errors become a :class:`QgsProcessingException`
carrying the library's message (the problem and the fix); progress and cancellation go through
the feedback object. Torch and the library's heavy modules are imported in ``processAlgorithm``
only, so the provider loads in a QGIS without torch. As everywhere in Processing, an output file
chosen by the user is replaced (the file dialog asks first); the maps beside the reconstruction too.
"""

from __future__ import annotations

from .algorithm_base import METRIC_OUTPUTS, ResultStyle
from .algorithm_evaluation import ErrorMaps, SyntheticClouds
from .algorithm_removeclouds import DEVICES, SAR_UNITS, RemoveClouds

ALGORITHMS = (RemoveClouds, ErrorMaps, SyntheticClouds)

__all__ = ["ALGORITHMS", "DEVICES", "METRIC_OUTPUTS", "SAR_UNITS", "ErrorMaps", "RemoveClouds", "ResultStyle",
           "SyntheticClouds"]
