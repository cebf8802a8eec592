"""Build the installable QGIS plugin zip: ``dist/sarclear_qgis-<version>.zip``.

One top-level folder, ``sarclear_qgis/`` (not ``sarclear``: QGIS puts the plugins folder on
``sys.path``, where a plugin folder named ``sarclear`` would shadow the library), holding::

    __init__.py, plugin.py, dialog.py, ...   the plugin (qgis_plugin/)
    metadata.txt, LICENSE
    libs/sarclear/                            the library, used when no sarclear is installed
    resources/icons/*.svg
    resources/models/*.safetensors            the bundled models, when they have been trained
    resources/models/*.md                     their model cards (<name>.md or README.md)

No sample data (tests/data has no licence to redistribute), no caches. The build refuses
sources that call ``torch.load`` without ``weights_only=True`` (the plugin repository's
security scan flags it) and a metadata.txt whose version is not the library's.

Usage: ``python scripts/build_plugin.py [--out DIR] [--model FILE ...]``.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import re
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = "sarclear_qgis"
#: metadata.txt fields the QGIS plugin repository requires (plus those the issue asks for).
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version",
                     "author", "email", "repository", "tracker", "icon", "hasProcessingProvider", "tags",
                     "experimental")
_UNSAFE_LOAD = re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)")
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # reproducible archives


def library_version(root: Path = ROOT) -> str:
    """``__version__`` of library/sarclear, read without importing it."""
    tree = ast.parse((root / "library" / "sarclear" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("library/sarclear/__init__.py defines no __version__")


def read_metadata(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep qgisMinimumVersion's case
    parser.read(path, encoding="utf-8")
    return parser["general"]


def check_metadata(path: Path, version: str) -> None:
    meta = read_metadata(path)
    missing = [k for k in REQUIRED_METADATA if not meta.get(k, "").strip()]
    if missing:
        raise SystemExit(f"{path}: missing fields {', '.join(missing)}")
    if meta["version"] != version:
        raise SystemExit(f"{path}: version {meta['version']} but sarclear.__version__ is {version}; make them equal")


def unsafe_loads(files: Iterable[Path]) -> list[str]:
    """``file:line`` of every ``torch.load(`` call without ``weights_only=True``."""
    found = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if _UNSAFE_LOAD.search(line):
                found.append(f"{f}:{n}")
    return found


def plugin_files(root: Path, models: Sequence[Path] | None = None) -> list[tuple[Path, str]]:
    """(source, name in the zip) of every file of the plugin."""

    def sources(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)

    files = [(p, f"{PLUGIN_DIR}/{p.relative_to(root / 'qgis_plugin').as_posix()}")
             for p in sources(root / "qgis_plugin")]
    files += [(p, f"{PLUGIN_DIR}/libs/{p.relative_to(root / 'library').as_posix()}")
              for p in sources(root / "library" / "sarclear")]
    files += [(root / "metadata.txt", f"{PLUGIN_DIR}/metadata.txt"), (root / "LICENSE", f"{PLUGIN_DIR}/LICENSE")]
    icons = sorted((root / "resources" / "icons").glob("*.svg"))
    files += [(p, f"{PLUGIN_DIR}/resources/icons/{p.name}") for p in icons]
    if models is None:
        models = sorted((root / "resources" / "models").glob("*.safetensors"))
    files += [(Path(p), f"{PLUGIN_DIR}/resources/models/{Path(p).name}") for p in models]
    shipped = root / "resources" / "models"
    cards = set()  # each model's card (the dialog links to it): beside it, or of the bundled model of its name
    for p in map(Path, models):
        folders = [p.parent] + ([shipped] if (shipped / p.name).is_file() else [])
        found = [c for f in folders for c in (f / f"{p.stem}.md", f / "README.md") if c.is_file()]
        cards.update(found[:1])
    files += [(card, f"{PLUGIN_DIR}/resources/models/{card.name}") for card in sorted(cards)]
    return files


def build(out_dir: Path = ROOT / "dist", models: Sequence[Path] | None = None, root: Path = ROOT) -> Path:
    """Write the plugin zip into ``out_dir`` and return its path. ``models``: the model files
    to bundle (default: ``resources/models/*.safetensors``)."""
    version = library_version(root)
    check_metadata(root / "metadata.txt", version)
    files = plugin_files(root, models)
    bad = unsafe_loads(p for p, _ in files if p.suffix == ".py")
    if bad:
        raise SystemExit("torch.load without weights_only=True (refused by the plugin repository): " + ", ".join(bad))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN_DIR}-{version}.zip"
    part = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, name in files:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, source.read_bytes())
    part.replace(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--model", type=Path, action="append", default=None,
                        help="model file to bundle (repeatable; default: resources/models/*.safetensors)")
    args = parser.parse_args(argv)
    target = build(args.out, args.model)
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    models = [n for n in names if n.endswith(".safetensors")]
    print(f"{target}: {len(names)} files, {target.stat().st_size / 2**20:.1f} MiB"
          + ("" if models else " (no model bundled: resources/models/ has none)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
