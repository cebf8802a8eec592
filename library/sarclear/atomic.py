"""Atomic output files: write to a hidden temporary file beside the target, rename into place
when complete. A crash, a kill or a cancel leaves at most a hidden ``.part`` file (removed by
the next run on the same target), never a half-written file under the target's name.

Temporary names carry the writing process's id and a random token, so they are unique,
unguessable (no symlink planting) and recognisable as stale once that process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError


def part_path(target: str | os.PathLike) -> Path:
    """A fresh hidden temporary path beside ``target``."""
    target = Path(target)
    return target.with_name(f".{target.name}.sarclear-{os.getpid()}-{secrets.token_hex(8)}.part")


_PART_NAME = re.compile(r"\.(.+)\.sarclear-\d+-[0-9a-f]+\.part")


def final_name(path: str | os.PathLike) -> str:
    """The file name ``path`` will have once committed: its own name, or for a temporary
    file from :func:`part_path` (of one, ...) the target's name."""
    name = Path(path).name
    while m := _PART_NAME.fullmatch(name):
        name = m.group(1)
    return name


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_parts(target: str | os.PathLike) -> list[Path]:
    """Delete temporary files of earlier runs on ``target`` whose process has died: its
    own (``.name.sarclear-<pid>-<token>.part``) and those of writers that wrote into them
    (``..name.sarclear-<pid>-...``, one more leading dot per level, see
    :class:`sarclear.outputs.OutputSet`)."""
    target = Path(target)
    own = re.compile(r"\.+" + re.escape(target.name) + r"\.sarclear-(\d+)-[0-9a-f]+\.part")
    removed = []
    for part in target.parent.glob(f".*{glob.escape(target.name)}.sarclear-*.part*"):
        m = own.match(part.name)
        if m and not _pid_alive(int(m.group(1))):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def stale_parts_in(folder: str | os.PathLike) -> list[Path]:
    """Temporary files in ``folder`` left by sarclear processes that have died (whatever
    their target), e.g. by a killed run under another output name."""
    stale = []
    for part in Path(folder).glob(".*.sarclear-*.part*"):
        m = re.search(r"\.sarclear-(\d+)-[0-9a-f]+\.part", part.name)
        if m and not _pid_alive(int(m.group(1))):
            stale.append(part)
    return sorted(stale)


def _umask() -> int:
    """The process's umask, read without changing it (Linux); 022 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def commit(part: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Move the finished ``part`` to ``target`` in one step. Without ``overwrite`` an
    existing target (say, written meanwhile by a concurrent run) is kept and
    :class:`OutputError` raised; the check and the move are one atomic operation."""
    part, target = Path(part), Path(target)
    part.chmod(0o666 & ~_umask())  # as a plain open() would have made it (some writers use 0600)
    if overwrite:
        os.replace(part, target)
        return
    try:
        os.link(part, target)  # fails if target exists: no window between check and move
    except FileExistsError:
        raise OutputError(f"{target} appeared while this run was writing (another run?); it was "
                          "kept. Choose another name or allow overwriting", input="out", option="overwrite",
                          path=str(target)) from None
    except OSError:  # file systems without hard links: fall back to a checked rename
        if target.exists():
            raise OutputError(f"{target} appeared while this run was writing; it was kept") from None
        os.replace(part, target)
        return
    part.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """``with atomic_path(t) as tmp: write(tmp)`` -> ``t`` appears complete, or not at all."""
    tmp = part_path(target)
    try:
        yield tmp
        commit(tmp, target, overwrite=overwrite)
    finally:
        tmp.unlink(missing_ok=True)
