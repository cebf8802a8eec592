"""The two callbacks a long library call takes, defined once: ``progress(done, total, what)``
reports a stage's steps (the CLI draws a bar, QGIS a QgsFeedback), and ``cancel()`` returns
True to stop (the call then raises :class:`sarclear.errors.Cancelled`, leaving no output)."""

from __future__ import annotations

from collections.abc import Callable

#: progress(done, total, what): ``done`` of ``total`` steps of the stage named by ``what``
#: ("tiles", "cloud mask windows", ...); a new ``what`` starts a new stage.
ProgressFn = Callable[[int, int, str], None]
#: cancel() -> True to stop
CancelFn = Callable[[], bool]
