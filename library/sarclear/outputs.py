"""A run's outputs as one set: all of them appear, or none.

A command that writes several files (the reconstruction, its RMSE and SAM maps, the
metrics JSON, a figure; later a mask or an uncertainty raster) registers each target with
an :class:`OutputSet` before any work. Registering checks the target: it must not be one of
the run's inputs (same file by inode or by resolved path, whatever the overwrite setting:
an output never destroys an input), not be named twice, have a known format, and be
writable (:func:`sarclear.raster.check_output_path`). It returns a hidden *staging* path
beside the target, into which any writer writes (``GeoTiffWriter(staged, ...,
overwrite=True)``, ``json``, ``savefig``). When the ``with`` block ends normally every staged
file is renamed onto its target, with SIGINT/SIGTERM held back for those few renames; when it
ends with an error, a cancel or Ctrl-C, every staged file is removed and the error says that
nothing was kept. A SIGKILL leaves only hidden staging files, which the next run on the same
target removes (they carry the dead process's id, see :mod:`sarclear.atomic`).

Usage::

    outputs = OutputSet(inputs=[ms, sar, model_path], overwrite=False)
    tif = outputs.add("clear.tif", formats=GEOTIFF)
    js = outputs.add("clear_metrics.json", formats=JSON)
    with outputs:
        with GeoTiffWriter(tif, grid, ..., overwrite=True) as w: ...
        js.write_text(...)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from .atomic import commit, final_name, part_path, remove_stale_parts, stale_parts_in
from .errors import Cancelled, OutputError, SarclearError

log = logging.getLogger(__name__)

#: file-name suffixes each output format may carry (the format is never guessed from a
#: suffix it cannot write: ``--out x.png`` is refused, not written as a GeoTIFF)
GEOTIFF: tuple[str, ...] = (".tif", ".tiff")
JSON: tuple[str, ...] = (".json",)
PNG: tuple[str, ...] = (".png",)

_FORMAT_NAMES = {GEOTIFF: "a GeoTIFF", JSON: "JSON", PNG: "a PNG image"}

Inputs = str | os.PathLike | Sequence[str | os.PathLike] | None


def _files_of(item: str | os.PathLike) -> Iterator[Path]:
    """The files an input stands for: itself, everything under a folder, and for a raster
    every file GDAL reads with it (the sources of a VRT, sidecar files)."""
    p = Path(item)
    if p.is_dir():
        yield from (f for f in p.rglob("*") if f.is_file())
        return
    if not p.exists():
        return
    yield p
    from osgeo import gdal

    from .raster import _CollectErrors

    with _CollectErrors():  # not a raster (a model file, say): nothing more to list
        try:
            ds = gdal.OpenEx(str(p), gdal.OF_RASTER | gdal.OF_READONLY)
        except RuntimeError:
            ds = None
    if ds is not None:
        yield from (Path(f) for f in (ds.GetFileList() or []) if not f.startswith("/vsi"))


def _key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def input_files(inputs: Iterable[Inputs]) -> dict[object, Path]:
    """Identities (``(device, inode)`` and resolved path) of every file behind ``inputs``
    (each a path, a list of paths or None), mapped to the path as the user gave it."""
    found: dict[object, Path] = {}
    for group in inputs:
        if group is None:
            continue
        items = [group] if isinstance(group, (str, os.PathLike)) else list(group)
        for item in items:
            if not str(item):
                continue
            for f in _files_of(item):
                key = _key(f)
                if key is not None:
                    found.setdefault(key, f)
                found.setdefault(os.path.realpath(f), f)
    return found


def refuse_inputs_as_outputs(inputs: Iterable[Inputs], outputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`OutputError` if any output is one of the inputs' files."""
    known = input_files(inputs)
    for out in outputs:
        _refuse_input(Path(out), known)


def _refuse_input(target: Path, known: dict[object, Path]) -> None:
    hit = known.get(_key(target)) if target.exists() else None
    hit = hit or known.get(os.path.realpath(target))
    if hit is not None:
        raise OutputError(f"{target} is also an input of this run ({hit}); writing it would destroy that "
                          "input. Give the output another name")


class OutputSet:
    """The outputs of one run, committed together (see the module docstring)."""

    def __init__(self, inputs: Iterable[Inputs] = (), *, overwrite: bool = False):
        self.overwrite = overwrite
        self._inputs = input_files(inputs)
        self._staged: dict[Path, Path] = {}  # target -> staging path
        self._real: set[str] = set()

    def add(self, target: str | os.PathLike, *, formats: tuple[str, ...] | None = None,
            size_hint: int = 0) -> Path:
        """Register ``target`` (checked now, before any work) and return the staging path
        to write it to. ``formats``: the suffixes its format allows (:data:`GEOTIFF`...)."""
        from .raster import check_output_path

        target = Path(target).absolute()
        _refuse_input(target, self._inputs)
        real = os.path.realpath(target)
        if real in self._real:
            raise OutputError(f"{target} is named for two outputs of this run; give each its own name")
        suffix = Path(final_name(target)).suffix
        if formats is not None and suffix.lower() not in formats:
            kind = _FORMAT_NAMES.get(formats, "/".join(formats))
            raise OutputError(f"{target}: this output is written as {kind}, but the name ends in "
                              f"'{suffix or '(nothing)'}'; name it *{formats[0]}")
        check_output_path(target, self.overwrite, size_hint)
        for stale in remove_stale_parts(target):
            log.warning("removed %s, left by an interrupted run", stale)
        self._real.add(real)
        self._staged[target] = part_path(target)
        return self._staged[target]

    def drop(self, target: str | os.PathLike) -> None:
        """Unregister ``target`` (an optional output this run did not write after all) and
        remove its staging file if there is one."""
        target = Path(target).absolute()
        self._staged.pop(target).unlink(missing_ok=True)
        self._real.discard(os.path.realpath(target))

    def staged(self, target: str | os.PathLike) -> Path:
        """The staging path of a registered ``target``."""
        return self._staged[Path(target).absolute()]

    @property
    def targets(self) -> list[Path]:
        return list(self._staged)

    def __enter__(self) -> OutputSet:
        """Name what interrupted runs left beside the outputs under other names (a run on the
        same outputs has already removed its own)."""
        for folder in dict.fromkeys(t.parent for t in self._staged):
            others = stale_parts_in(folder)
            if others:
                log.warning("%s holds %d temporary file(s) of interrupted sarclear runs on other outputs "
                            "(%s); a run on the same output removes them, or delete them", folder, len(others),
                            ", ".join(p.name for p in others[:3]) + (" ..." if len(others) > 3 else ""))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, SarclearError) and not isinstance(exc, Cancelled) and len(self._staged) > 1 \
                and exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]}; none of this run's outputs were kept",)

    def commit(self) -> list[Path]:
        """Rename every staged file onto its target; on a failure remove what this call
        already placed (when it replaced nothing) and every staged file, then raise."""
        missing = [t for t, s in self._staged.items() if not s.exists()]
        if missing:
            self.discard()
            raise OutputError(f"{missing[0]} was not written; none of this run's outputs were kept")
        placed: list[Path] = []
        with _signals_held():
            try:
                for target, staged in self._staged.items():
                    commit(staged, target, overwrite=self.overwrite)
                    placed.append(target)
            except BaseException as exc:
                if not self.overwrite:  # these were created by this call, never replaced
                    for target in placed:
                        target.unlink(missing_ok=True)
                self.discard()
                if isinstance(exc, OutputError) and exc.args:
                    exc.args = (f"{exc.args[0]}; none of this run's outputs were kept",)
                raise
        for target in placed:
            log.info("wrote %s", target)
        return placed

    def discard(self) -> None:
        """Remove every staging file (and a writer's own temporary files inside them)."""
        for staged in self._staged.values():
            staged.unlink(missing_ok=True)
            for nested in staged.parent.glob(f".{staged.name}.sarclear-*"):
                nested.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered afterwards) so a set is never half renamed."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
