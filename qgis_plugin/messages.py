"""The library's errors in the plugin's words: each typed error (:mod:`sarclear.errors`)
carries the input and the option concerned; here, and only here, they become the names of
the widgets (dialog) or parameters (Processing) that fix them. The library's message itself
is neutral (it never names a command-line flag)."""

from __future__ import annotations

#: input or option -> the dialog widget that sets it
DIALOG = {
    "ms": "Cloudy Sentinel-2 (MS)",
    "sar": "Sentinel-1 SAR (tick the layers)",
    "reference": "Reference (optional)",
    "mask": "Cloud mask (optional)",
    "model": "Model",
    "out": "Output: Run name and Save to",
    "aoi": "Area",
    "window": "Area",
    "ms_bands": "Band matching: the Name column of the Sentinel-2 rows",
    "sar_channels": "Band matching: the Name column of the Sentinel-1 rows",
    "ms_offset": "Band matching: L2A offset",
    "ms_scale": "Band matching: L2A offset (values are read as reflectance x 10000)",
    "device": "Device",
    "overwrite": "Output: Run name and Save to",
    "acquisition": "Cloudy Sentinel-2 (MS): pick the band files of one acquisition",
    "sar_units": "Sentinel-1 SAR (dB or linear power: give the layer in dB)",
    "product_level": "Product level",
    "sun_azimuth": "Sun azimuth",
}

#: input or option -> the Processing parameter that sets it ("Remove clouds")
PROCESSING = {
    "ms": "Cloudy Sentinel-2 (MS) layer",
    "sar": "Sentinel-1 SAR layer(s)",
    "reference": "Cloud-free reference",
    "mask": "Cloud mask",
    "model": "Model file",
    "out": "Reconstruction",
    "aoi": "Area",
    "window": "Area",
    "ms_bands": "MS band names (advanced parameters)",
    "sar_channels": "SAR channel names (advanced parameters)",
    "ms_offset": "Offset added to MS digital numbers (advanced parameters)",
    "ms_scale": "MS digital numbers per unit reflectance (advanced parameters)",
    "device": "Device",
    "overwrite": "Reconstruction",
    "acquisition": "Cloudy Sentinel-2 (MS) layer",
    "sar_units": "SAR units (advanced parameters)",
    "product_level": "Product level of the cloudy image (advanced parameters)",
    "sun_azimuth": "Sun azimuth (advanced parameters)",
}


def widget_for(exc: BaseException, names: dict[str, str]) -> str | None:
    """The widget (or parameter) that fixes ``exc``: its option's, else its input's; for
    an input with widgets of its own (reference, mask, model, output) the input's."""
    option, source = getattr(exc, "option", None), getattr(exc, "input", None)
    keys = (source, option) if source in ("reference", "mask", "model", "out") else (option, source)
    for key in keys:
        if key and key in names:
            return names[key]
    return None


def describe(exc: BaseException, where: str = "dialog") -> str:
    """``exc``'s message, followed by the widget (``where``: "dialog") or Processing
    parameter ("processing") to change."""
    text = str(exc).rstrip()
    widget = widget_for(exc, DIALOG if where == "dialog" else PROCESSING)
    if widget is None or widget in text:
        return text
    return f"{text.rstrip('.')}. Change: {widget}."
