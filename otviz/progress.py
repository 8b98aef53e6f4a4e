"""Progress of long library computations, for any front end.

A long function takes ``progress=`` one of: ``None``/``False`` (silent), ``True`` (a
``tqdm.auto`` bar on stderr, so terminals and notebooks both get one), or a callable
``progress(done, total, message)`` called after each unit of work — the app turns that into a
progress indicator, the CLI into a tqdm bar. ``message`` names the current step in words.
"""
from __future__ import annotations

import sys
from typing import Callable

ProgressFn = Callable[[int, int, str], None]


def _silent(done: int, total: int, message: str) -> None:
    return None


def tqdm_progress(desc: str = "", unit: str = "step") -> ProgressFn:
    """A ``progress(done, total, message)`` callable drawing one ``tqdm.auto`` bar."""
    from tqdm.auto import tqdm

    state: dict = {}

    def update(done: int, total: int, message: str) -> None:
        bar = state.get("bar")
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
        bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            state.pop("bar")

    return update


def as_progress(progress, desc: str = "") -> ProgressFn:
    """The callable behind a ``progress=`` argument (see the module docstring)."""
    if progress is None or progress is False:
        return _silent
    if progress is True:
        return tqdm_progress(desc)
    if callable(progress):
        return progress
    raise TypeError(f"progress: expected None, a bool or a callable(done, total, message), got {progress!r}")


class Steps:
    """Counts finished units of work out of ``total`` and reports each to ``progress``."""

    def __init__(self, progress, total: int, desc: str = ""):
        self.fn = as_progress(progress, desc)
        self.total = int(total)
        self.done = 0

    def __call__(self, message: str = "", n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        self.fn(self.done, self.total, message)
