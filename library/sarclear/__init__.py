"""sarclear: remove clouds and haze from Sentinel-2 images by fusing them with Sentinel-1 SAR.

A standalone library (no QGIS import): networks (SAR-Opt-cGAN and its MS-only twin), GDAL
raster I/O, seamless tiled inference, synthetic clouds, metrics, a trainer and a command line.
Heavy modules (torch, GDAL) are imported by the submodules that need them, not here.
"""

__version__ = "0.1.0"
