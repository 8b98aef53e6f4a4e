"""Bokeh/Panel ``--auth-module``: refuse (HTTP 403) every request whose ``Host`` header is not
allowed by :mod:`otviz.ui.hosts` — the page, its websocket, autoload and metadata alike — so a
DNS-rebound name never reaches the app. ``python -m otviz.ui.serve`` passes it to ``panel serve``;
by hand: ``panel serve apps/latent_explorer.py --address 127.0.0.1 --auth-module otviz/ui/hostguard.py``.
No user accounts: an allowed request is the local user ``"local"``.
"""
from tornado.web import HTTPError

from otviz.ui.hosts import host_allowed


async def get_user_async(request_handler):
    host = request_handler.request.headers.get("Host")
    if not host_allowed(host):
        raise HTTPError(403, reason="Host not allowed")
    return "local"


def get_login_url(request_handler):  # never used: a request is refused or has a user
    return "/"
