"""A browser tab closed while the server was writing to it is not an error.

Panel schedules websocket writes as tasks; when a tab closes between the scheduling and the
write, Tornado raises ``WebSocketClosedError`` inside a task nobody awaits any more, and asyncio
prints "Task exception was never retrieved" with a traceback in the server's console — on every
tab closed during a training run. :func:`quiet_closed_sockets` installs an event-loop exception
handler that logs those as one line and hands every other exception to the previous handler.

A second race of the same kind: when a session is destroyed (Panel's cleanup) before its
websocket's ``on_close`` runs, Bokeh's ``WSHandler.on_close`` reads ``connection.session`` of a
detached connection and Tornado logs "Uncaught exception … AssertionError". :func:`guard_ws_close`
wraps ``on_close`` so that a connection whose session is already gone is only discarded.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("otviz.ui")


def _closed_socket(exc: BaseException | None) -> bool:
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    return isinstance(exc, (WebSocketClosedError, StreamClosedError))


def quiet_closed_sockets(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Install (once per loop) the handler that turns closed-socket task errors into one log line."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not served: nothing writes to sockets
    if getattr(loop, "_otviz_quiet_closed_sockets", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop, context):
        if _closed_socket(context.get("exception")):
            log.info("a browser tab closed while the server was writing to it; message dropped")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._otviz_quiet_closed_sockets = True
    guard_ws_close()


def guard_ws_close() -> None:
    """Make Bokeh's websocket close handler tolerate a connection whose session was destroyed first
    (installed once per process)."""
    from bokeh.server.views.ws import WSHandler

    if getattr(WSHandler.on_close, "_otviz_guarded", False):
        return
    original = WSHandler.on_close

    def on_close(self) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None and getattr(connection, "_session", True) is None:
            log.info("a browser tab closed after its session was destroyed")
            self.application.client_lost(connection)  # forget the connection; its session is gone
            return
        original(self)

    on_close._otviz_guarded = True
    WSHandler.on_close = on_close
