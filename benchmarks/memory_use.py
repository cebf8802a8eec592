"""How the benchmark scripts measure memory. Peak host memory is the kernel's high-water mark
of resident memory (``VmHWM``), per process: jobs whose peak matters run in a child process
(:func:`run_child`), whose own peak :func:`os.wait4` returns. CUDA memory is what tensors
allocated (``torch.cuda.max_memory_allocated``)."""

from __future__ import annotations

import os
import subprocess  # nosec B404 - runs the benchmark's own child commands
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import child_env


def _proc_status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (VmHWM; ru_maxrss where /proc is missing)."""
    value = _proc_status_bytes("VmHWM")
    if value is None:
        import resource

        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return value


def rss_bytes() -> int | None:
    """This process's resident memory now (VmRSS)."""
    return _proc_status_bytes("VmRSS")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False if
    the kernel does not allow it, in which case the peak stays monotone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def reset_cuda_peak(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak_bytes(device: Any) -> int | None:
    """Peak CUDA memory allocated by tensors since the last reset; None off CUDA."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def free_device_memory(device: Any) -> None:
    import gc

    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def run_child(cmd: Sequence[str], *, timeout: float | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a child process and wait for it. Returns ``returncode``,
    ``peak_rss_bytes`` (the child's own high-water mark, from :func:`os.wait4`),
    ``seconds`` (wall clock) and ``output`` (stdout and stderr, last 20,000 characters)."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=cwd)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        log.seek(0)
        output = log.read().decode(errors="replace")
    return {"returncode": proc.returncode, "peak_rss_bytes": usage.ru_maxrss * 1024, "seconds": seconds,
            "output": output[-20_000:]}


def evict_from_page_cache(path: str | os.PathLike) -> bool:
    """Ask the kernel to drop ``path``'s cached pages (after flushing them), so the next
    read comes from the disk; needs no privileges. False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
