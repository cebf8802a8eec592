"""Argument types and the progress bar of the ``sarclear`` command line: values are checked
when they are parsed, so a bad one is refused before any work, naming its flag."""

from __future__ import annotations

import argparse
import math
import sys


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _number(kind: type, *, low: float | None = None, above: float | None = None, high: float | None = None):
    """An argparse type: a finite ``kind`` (int or float) >= ``low`` or > ``above``, and
    <= ``high``; bad values are refused by argparse with a one-line message, before any work."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{text} is too small: it must be {low:g} or more")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{text} is too small: it must be more than {above:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is too large: it must be {high:g} or less")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE_INT = _number(int, low=1)
_NONNEG_INT = _number(int, low=0)
_POSITIVE = _number(float, above=0)
_NONNEG = _number(float, low=0)
_FINITE = _number(float)
_FRACTION = _number(float, low=0, high=1)
_HAZE_POWER = _number(float, low=0, high=4)
_AZIMUTH = _number(float, low=0, high=360)


class _Progress:
    """Maps the library's progress callback onto a tqdm bar; a new stage (another unit, as when
    decloud goes from cloud mask windows to tiles) closes the bar and starts its own."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc, self.bar, self.unit = enabled, desc, None, ""

    def __call__(self, done: int, total: int, what: str) -> None:
        self.update(done, total, what)

    def update(self, done: int, total: int, unit: str, **postfix: object) -> None:
        """Move the bar to ``done`` of ``total``; ``postfix``: figures shown after it."""
        if not self.enabled:
            return
        if self.bar is not None and (unit != self.unit or total != self.bar.total):
            self.close()
        if self.bar is None:
            self.unit = unit
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True)
        self.bar.n = done
        if postfix:
            self.bar.set_postfix(postfix)  # refreshes the bar
        else:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
