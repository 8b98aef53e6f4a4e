"""Which ``Host`` names the dashboard server answers (a defence against DNS rebinding).

A page on ``http://evil.example.com:5006`` whose name an attacker re-points at 127.0.0.1 is, to
the browser, same-origin with its own websocket — so its ``Origin`` equals its ``Host`` and
Tornado (≥ 6.5) skips Bokeh's websocket-origin allowlist. Only the ``Host`` header tells such a
request from a local one, so the server refuses every ``Host`` not listed here: ``localhost``,
``127.0.0.1`` and ``[::1]`` on any port, plus the comma-separated ``OTVIZ_ALLOWED_HOSTS``
(``name`` for any port or ``name:port``; ``*`` turns the check off).
"""
from __future__ import annotations

import os

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts() -> list[str]:
    extra = [h.strip().lower() for h in os.environ.get("OTVIZ_ALLOWED_HOSTS", "").split(",") if h.strip()]
    return [*LOCAL_NAMES, *extra]


def split_host(host: str) -> tuple[str, str | None]:
    """``name:port`` → (name, port); IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    return (name, port) if sep and port.isdigit() else (host, None)


def host_allowed(host: str | None, allowed: list[str] | None = None) -> bool:
    """Whether a request's ``Host`` header names this machine (or an allowed name)."""
    if not host:
        return False
    allowed = allowed_hosts() if allowed is None else allowed
    if "*" in allowed:
        return True
    name, port = split_host(host)
    for entry in allowed:
        a_name, a_port = split_host(entry)
        if a_name == name and (a_port is None or a_port == port):
            return True
    return False


def session_location():
    """``pn.state.location`` for the current session, also for an IPv6 ``Host`` (``[::1]:5006``).

    Panel builds the Location by ``host.split(':')`` and raises ValueError on an IPv6 literal,
    which left the page blank; then the Location is built from the request's path and query
    alone (what the pages sync with) and cached where Panel caches its own."""
    import panel as pn

    try:
        return pn.state.location
    except ValueError:
        from panel.io.location import Location

        doc = pn.state.curdoc
        uri = doc.session_context.request.uri if doc and doc.session_context else ""
        path, _, query = uri.partition("?")
        loc = Location(pathname=path, search=f"?{query}" if query else "")
        if doc is not None:
            pn.state._locations[doc] = loc
        return loc
