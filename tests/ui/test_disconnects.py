"""A task that failed writing to a closed websocket logs one line; other task errors still reach asyncio's handler."""
import asyncio
import gc
import logging

from tornado.websocket import WebSocketClosedError

from otviz.ui.disconnects import quiet_closed_sockets


def _drop_failed_task(loop, exc):
    async def write():
        raise exc

    async def main():
        task = asyncio.ensure_future(write())  # nobody awaits it, like a write to a tab that closed
        await asyncio.sleep(0.01)
        assert task.done()

    loop.run_until_complete(main())
    gc.collect()  # the unretrieved exception is reported when the task is collected


def test_closed_socket_is_one_log_line_and_other_errors_still_reported(caplog):
    loop = asyncio.new_event_loop()
    seen = []
    loop.set_exception_handler(lambda loop, context: seen.append(context["exception"]))
    try:
        quiet_closed_sockets(loop)
        quiet_closed_sockets(loop)  # idempotent: one handler, not a chain of them
        with caplog.at_level(logging.INFO, logger="otviz.ui"):
            _drop_failed_task(loop, WebSocketClosedError())
        assert seen == []
        assert [r.getMessage() for r in caplog.records if r.name == "otviz.ui"] == [
            "a browser tab closed while the server was writing to it; message dropped"]
        _drop_failed_task(loop, ValueError("a real bug"))
        assert len(seen) == 1 and isinstance(seen[0], ValueError)  # passed on to the previous handler
    finally:
        loop.close()


def test_a_socket_closing_after_its_session_was_destroyed_is_only_discarded(caplog):
    """Bokeh's WSHandler.on_close on a connection already detached from its (destroyed) session raised
    AssertionError in the server log; guarded, the connection is discarded and one line logged."""
    from bokeh.server.connection import ServerConnection
    from bokeh.server.views.ws import WSHandler

    from otviz.ui.disconnects import guard_ws_close

    guard_ws_close()
    guard_ws_close()
    lost = []

    class Session:
        def subscribe(self, connection):
            pass

        def unsubscribe(self, connection):
            pass

        def notify_connection_lost(self):
            lost.append("notified")

    class Application:
        def client_lost(self, connection):
            lost.append("lost")
            connection.detach_session()

    class Handler:
        application = Application()

    handler = Handler()
    handler.connection = ServerConnection(None, None, None, Session())
    handler.connection.detach_session()  # the session was destroyed first
    with caplog.at_level(logging.INFO, logger="otviz.ui"):
        WSHandler.on_close(handler)
    assert lost == ["lost"]
    assert "closed after its session was destroyed" in caplog.text
    handler.connection = ServerConnection(None, None, None, Session())  # the usual order: Bokeh's own path
    handler.close_code, handler.close_reason = None, None
    WSHandler.on_close(handler)
    assert lost == ["lost", "notified", "lost"]
