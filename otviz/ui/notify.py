"""Errors of dashboard callbacks shown in the page instead of as server tracebacks."""
from __future__ import annotations

import functools
import logging

import panel as pn

log = logging.getLogger("otviz.ui")


class Notices:
    """Per-session messages: a visible alert at the top of the page (also a toast where the app
    enabled ``pn.state.notifications``) and a log of what was shown (``messages``). A message
    shown for a ``source`` (a callback, an input) is taken down by ``resolve(source)`` when that
    source next succeeds, so the page never shows an error that no longer holds."""

    def __init__(self):
        self.messages: list[tuple[str, str]] = []
        self.source: str | None = None
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["otviz-notice"],
                                   sizing_mode="stretch_width", margin=(0, 10))
        self.close_button = pn.widgets.Button(name="✕", width=40, visible=False, button_type="light")
        self.close_button.on_click(lambda _: self.clear())

    def show(self, message: str, level: str = "error", source: str | None = None):
        self.messages.append((level, message))
        self.source = source
        del self.messages[:-50]
        self.alert.param.update(object=message, alert_type={"error": "danger"}.get(level, level), visible=True)
        self.close_button.visible = True
        area = getattr(pn.state, "notifications", None)
        if area is not None:
            try:
                getattr(area, level if level in ("error", "warning", "info", "success") else "info")(
                    message, duration=8000)
            except Exception:  # pragma: no cover - a toast is a convenience, the alert is shown
                pass

    def error(self, message: str, source: str | None = None):
        self.show(message, "error", source)

    def warning(self, message: str, source: str | None = None):
        self.show(message, "warning", source)

    def resolve(self, source: str):
        """Take the shown message down if it came from ``source`` (which has now succeeded)."""
        if self.source == source and self.alert.visible:
            self.clear()

    def clear(self):
        self.alert.param.update(object="", visible=False)
        self.close_button.visible = False
        self.source = None

    def panel(self):
        return pn.Row(self.alert, self.close_button, sizing_mode="stretch_width")


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def guarded(what: str, fallback=None):
    """Decorator for a view method used as a callback: an exception is logged, shown through the
    view's ``state.notices`` and ``fallback(self, exc)`` (or ``None``) is returned instead of
    raising into Bokeh/Tornado; a later success of the same callback takes its message down."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            notices = getattr(getattr(self, "state", None), "notices", None) or getattr(self, "notices", None)
            try:
                out = fn(self, *args, **kwargs)
            except Exception as exc:
                log.warning("%s failed: %s", what, describe(exc), exc_info=True)
                if notices is not None:
                    notices.error(f"{what}: {describe(exc)}", source=what)
                return fallback(self, exc) if fallback is not None else None
            if notices is not None:
                notices.resolve(what)
            return out

        return wrapper

    return deco


def error_pane(what: str):
    """A ``fallback`` for :func:`guarded` on methods that return a pane: an alert in place."""
    return lambda self, exc: pn.pane.Alert(f"**{what}**: {describe(exc)}", alert_type="danger")
