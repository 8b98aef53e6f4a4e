"""A browser tab closed while the server was writing to it is not an error.

Panel schedules websocket writes as tasks; when a tab closes between the scheduling and the
write, Tornado raises ``WebSocketClosedError`` inside a task nobody awaits any more, and asyncio
prints "Task exception was never retrieved" with a traceback in the server's console — on every
tab closed during a training run. :func:`quiet_closed_sockets` installs an event-loop exception
handler that logs those as one line and hands every other exception to the previous handler.
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
