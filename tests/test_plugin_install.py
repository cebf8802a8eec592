"""The "Install dependencies" button: the pip commands (QGIS's own Python, PyTorch CPU or
CUDA from PyTorch's index, numpy held at the installed version, user site on an externally
managed Python) and a failing pip reported clearly. No real download: a fake interpreter."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy
import pytest
from plugin_helpers import *  # noqa: F403 (fixtures)
from plugin_helpers import wait_until
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QMessageBox

from qgis_plugin import install
from qgis_plugin.install import InstallTask, install_plan, qgis_python

pytestmark = pytest.mark.qgis


def test_pip_commands_pin_torch_and_hold_numpy(tmp_path):
    plan = install_plan("/usr/bin/python3", "cpu", numpy_version="1.24.2", user=True, break_system=True,
                        folder=tmp_path)
    base = ["/usr/bin/python3", "-m", "pip", "install", "--upgrade-strategy", "only-if-needed", "--user",
            "--break-system-packages", "--constraint", str(tmp_path / "constraints.txt")]
    assert plan.commands == [
        [*base, "torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"],
        [*base, "safetensors>=0.4", "ukis-csmask[cpu]"],
    ]
    assert (tmp_path / "constraints.txt").read_text() == "numpy==1.24.2\n"
    assert "numpy stays at 1.24.2" in plan.notes[0]
    # a CUDA build; a Python pip may write to (OSGeo4W as administrator): no --user, no flag
    cuda = install_plan("C:/OSGeo4W/bin/python.exe", "cuda", user=False, break_system=False, folder=tmp_path)
    assert cuda.commands[0][4:] == ["--upgrade-strategy", "only-if-needed", "--constraint",
                                    str(tmp_path / "constraints.txt"), "torch==2.13.0", "--index-url",
                                    "https://download.pytorch.org/whl/cu128"]
    assert (tmp_path / "constraints.txt").read_text() == f"numpy=={numpy.__version__}\n"  # the installed one
    with pytest.raises(ValueError, match="unknown PyTorch build 'rocm'"):
        install_plan("python", "rocm", folder=tmp_path)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def test_the_python_of_qgis_is_the_one_it_embeds_not_one_on_the_path(tmp_path):
    # Linux: QGIS's sys.executable is whatever "python3" the PATH gives (here a pyenv shim,
    # found in the real QGIS under Xvfb); the interpreter QGIS embeds is under sys.exec_prefix
    usr = tmp_path / "usr"
    python = _touch(usr / "bin" / "python3.11")
    assert qgis_python("/root/.pyenv/shims/python3", "linux", (3, 11), str(usr)) == str(python)
    # OSGeo4W: exec_prefix is apps/Python312; sys.executable is bin/qgis-ltr-bin.exe
    win = tmp_path / "OSGeo4W"
    python = _touch(win / "apps" / "Python312" / "python.exe")
    assert qgis_python(str(win / "bin" / "qgis-ltr-bin.exe"), "win32", (3, 12), str(win / "apps" / "Python312")) \
        == str(python)
    assert qgis_python(str(win / "bin" / "qgis-ltr-bin.exe"), "win32", (3, 12), str(tmp_path / "x")) == str(python)
    # macOS: the app bundle's Python framework
    framework = tmp_path / "QGIS.app" / "Contents" / "Frameworks" / "Python.framework" / "Versions" / "3.12"
    python = _touch(framework / "bin" / "python3.12")
    assert qgis_python(str(tmp_path / "QGIS.app" / "Contents" / "MacOS" / "QGIS"), "darwin", (3, 12),
                       str(framework)) == str(python)
    assert qgis_python(str(tmp_path / "nowhere" / "qgis.exe"), "win32", (3, 12), str(tmp_path / "none")) is None
    # this Python: the interpreter under its own exec_prefix
    assert Path(qgis_python()).parent == Path(sys.exec_prefix) / "bin"


def test_an_externally_managed_python_always_installs_to_the_user_site(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "externally_managed", lambda: True)
    monkeypatch.setattr(install, "needs_user_site", lambda: False)  # root may write /usr/local: still not
    plan = install_plan("/usr/bin/python3.11", "cpu", numpy_version="1.24.2", folder=tmp_path)
    assert all("--user" in cmd and "--break-system-packages" in cmd for cmd in plan.commands)


def _fake_python(tmp_path, script: str):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return str(fake)


def _run_task(plan) -> InstallTask:
    ended = []
    task = InstallTask(plan, ended.append)
    QgsApplication.taskManager().addTask(task)
    wait_until(lambda: ended, 60)
    return task


def test_a_failing_pip_is_reported_with_its_error_and_the_commands(qgis_app, tmp_path):
    fake = _fake_python(tmp_path, 'echo "Collecting torch==2.13.0"\n'
                                  'echo "ERROR: No matching distribution found for torch==2.13.0" >&2\nexit 1\n')
    task = _run_task(install_plan(fake, "cpu", user=True, break_system=True, folder=tmp_path))
    assert task.error.startswith("pip failed with exit status 1 at step 1 of 2 (PyTorch): ")
    assert "ERROR: No matching distribution found for torch==2.13.0" in task.error
    assert "To install them by hand, close QGIS and run:" in task.error and "--break-system-packages" in task.error
    assert task.log == ["Collecting torch==2.13.0", "ERROR: No matching distribution found for torch==2.13.0"]


def test_a_successful_install_runs_both_steps(qgis_app, tmp_path):
    calls = tmp_path / "calls.txt"
    fake = _fake_python(tmp_path, f'echo "$@" >> {calls}\necho "Successfully installed x"\nexit 0\n')
    task = _run_task(install_plan(fake, "cpu", user=False, break_system=False, folder=tmp_path))
    assert task.error is None and task.progress() == pytest.approx(100)
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 and "torch==2.13.0" in lines[0] and "ukis-csmask[cpu]" in lines[1]


def test_the_dialog_button_shows_the_commands_and_reports_the_failure(no_torch, plugin_iface, sample_project,
                                                                     tmp_path, monkeypatch):
    import qgis_plugin

    plugin = qgis_plugin.classFactory(plugin_iface)
    plugin.initGui()
    try:
        dialog = plugin.show_dialog()
        assert dialog.install_box.isVisibleTo(dialog)
        fake = _fake_python(tmp_path, 'echo "ERROR: Could not install packages: disk full" >&2\nexit 1\n')
        monkeypatch.setattr("qgis_plugin.install.qgis_python", lambda: fake)
        asked = []

        def question(parent, title, text, *args):
            asked.append(text)
            return QMessageBox.StandardButton.Yes

        monkeypatch.setattr(QMessageBox, "question", question)
        dialog.install_button.click()
        assert fake in asked[0] and "numpy stays at" in asked[0]
        wait_until(lambda: dialog.install_task is None, 60)
        status = dialog.status_label.text()
        assert status.startswith("Installing the dependencies failed: pip failed with exit status 1"), status
        assert "disk full" in status and dialog.install_button.isEnabled()
    finally:
        plugin.unload()
