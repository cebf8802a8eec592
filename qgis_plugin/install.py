"""Installing the plugin's dependencies into the Python that QGIS runs: PyTorch (a CPU or
a CUDA build), safetensors and the cloud-mask extra, with pip, in a background task.

Two rules keep QGIS working: pip runs with QGIS's own interpreter (``sys.executable`` may
be the QGIS binary itself: the interpreter is found next to it), and numpy is held at the
version QGIS's GDAL was built against (a constraint file ``numpy==<installed>``), so pip
never replaces it with an incompatible numpy 2. Where the system Python is "externally
managed" (PEP 668: Debian 12, Ubuntu 23.04 and later), packages go to the user's site
(``--user --break-system-packages``: only ``~/.local`` is written, the system's packages
are untouched).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsTask

#: The PyTorch release the plugin is tested with.
TORCH_PIN = "torch==2.13.0"
#: PyTorch's own package indexes for CPU-only and CUDA builds (PyPI's Linux wheels are CUDA builds).
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu128"}
#: Everything else, from PyPI: model files and the cloud mask (ONNX, CPU).
OTHER_PACKAGES = ("safetensors>=0.4", "ukis-csmask[cpu]")


def qgis_python(executable: str | None = None, platform: str | None = None,
                version: tuple[int, int] | None = None, exec_prefix: str | None = None) -> str | None:
    """The Python interpreter of this QGIS, the one whose standard library QGIS embeds: the
    interpreter under ``exec_prefix`` (default ``sys.exec_prefix``: ``/usr`` on Linux,
    ``apps/PythonXY`` in OSGeo4W, the app bundle's Python framework on macOS), else one
    beside the QGIS binary (``executable``, default ``sys.executable``). Not a ``python3``
    found on the PATH: that may be another Python (pyenv, conda) whose packages QGIS never
    sees. None when none is found."""
    exe = Path(executable or sys.executable or "")
    platform = platform or sys.platform
    major, minor = version or sys.version_info[:2]
    prefix = Path(exec_prefix or sys.exec_prefix)
    if platform.startswith("win"):
        candidates = [prefix / "python.exe", exe.parent / "python.exe", exe.parent / "python3.exe",
                      exe.parent.parent / "apps" / f"Python{major}{minor}" / "python.exe"]
    elif platform == "darwin":
        candidates = [prefix / "bin" / f"python{major}.{minor}", prefix / "bin" / "python3",
                      exe.parent / "bin" / "python3", exe.parent / "bin" / f"python{major}.{minor}"]
    else:
        candidates = [prefix / "bin" / f"python{major}.{minor}", prefix / "bin" / "python3",
                      exe.parent / f"python{major}.{minor}"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def externally_managed() -> bool:
    """True when this Python refuses pip installs outside a virtual environment (PEP 668)."""
    if sys.prefix != sys.base_prefix:
        return False
    return (Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED").is_file()


def needs_user_site() -> bool:
    """True when pip cannot write QGIS's site-packages (a system or admin install)."""
    if sys.prefix != sys.base_prefix:
        return False
    return not os.access(sysconfig.get_path("purelib"), os.W_OK)


@dataclass
class InstallPlan:
    """The pip commands that install the dependencies, in order."""

    commands: list[list[str]]
    constraints: Path
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(" ".join(f'"{a}"' if " " in a else a for a in cmd) for cmd in self.commands)


def install_plan(python: str, build: str = "cpu", numpy_version: str | None = None,
                 user: bool | None = None, break_system: bool | None = None,
                 folder: Path | None = None) -> InstallPlan:
    """pip commands for ``python``: PyTorch (``build`` "cpu" or "cuda") from PyTorch's
    index, then the other packages from PyPI; numpy held at ``numpy_version`` (default:
    the installed one) by a constraint file written into ``folder``."""
    if build not in TORCH_INDEX:
        raise ValueError(f"unknown PyTorch build {build!r}; use cpu or cuda")
    if numpy_version is None:
        import numpy

        numpy_version = numpy.__version__
    break_system = externally_managed() if break_system is None else break_system
    # an externally managed Python: never write the system's folders, only the user's
    user = (needs_user_site() or break_system) if user is None else user
    folder = Path(folder or tempfile.mkdtemp(prefix="sarclear-pip-"))
    constraints = folder / "constraints.txt"
    constraints.write_text(f"numpy=={numpy_version}\n")
    base = [python, "-m", "pip", "install", "--upgrade-strategy", "only-if-needed"]
    if user:
        base.append("--user")
    if break_system:
        base.append("--break-system-packages")
    base += ["--constraint", str(constraints)]
    commands = [[*base, TORCH_PIN, "--index-url", TORCH_INDEX[build]], [*base, *OTHER_PACKAGES]]
    notes = [f"numpy stays at {numpy_version} (the version QGIS's GDAL was built with)"]
    if break_system:
        notes.append("this Python is managed by the system: packages go to your user folder only")
    return InstallPlan(commands, constraints, notes)


class InstallTask(QgsTask):
    """Runs an :class:`InstallPlan` in the background, reporting pip's progress; after it
    ends, ``error`` is None on success or says what failed and what to do."""

    def __init__(self, plan: InstallPlan, on_finished: Callable[[InstallTask], None] | None = None):
        super().__init__("sarclear: installing PyTorch and safetensors")
        self.plan = plan
        self.on_finished = on_finished
        self.error: str | None = None
        self.log: list[str] = []
        self.stage = ""

    def run(self) -> bool:  # worker thread
        steps = len(self.plan.commands)
        for k, command in enumerate(self.plan.commands):
            what = "PyTorch" if TORCH_PIN in command else ", ".join(OTHER_PACKAGES)
            self.stage = f"step {k + 1} of {steps} ({what})"
            try:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           bufsize=1)
            except OSError as exc:
                self.error = f"cannot start {command[0]} ({exc}). {self._by_hand()}"
                return False
            with process.stdout:
                for line in process.stdout:
                    self.log.append(line.rstrip())
                    if line.startswith(("Collecting", "Downloading", "Installing", "Successfully")):
                        self.setProgress(min(99.0, 100.0 * (k + 0.5) / steps))
                    if self.isCanceled():
                        process.kill()
                        process.wait()
                        self.error = "cancelled; packages pip had already installed stay installed"
                        return False
            code = process.wait()
            if code != 0:
                errors = [line for line in self.log if "ERROR" in line or "error:" in line] or self.log[-3:]
                self.error = (f"pip failed with exit status {code} at {self.stage}: "
                              f"{' '.join(errors[-2:]) or 'no output'}. {self._by_hand()}")
                return False
            self.setProgress(100.0 * (k + 1) / steps)
        return True

    def _by_hand(self) -> str:
        return ("Nothing else was changed. To install them by hand, close QGIS and run:\n" + self.plan.text())

    def finished(self, ok: bool) -> None:  # main thread
        if not ok and self.error is None:
            self.error = "the installation was cancelled before it started"
        if self.on_finished is not None:
            try:
                self.on_finished(self)
            except Exception:  # never let an exception out of a Qt virtual
                from qgis.core import Qgis, QgsMessageLog

                QgsMessageLog.logMessage(traceback.format_exc(), "sarclear", Qgis.MessageLevel.Critical)
