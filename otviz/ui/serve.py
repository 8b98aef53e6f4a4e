"""Serve the latent explorer safely: ``python -m otviz.ui.serve [--port 5006] [options]``.

Runs ``panel serve apps/latent_explorer.py`` with

* ``--address 127.0.0.1`` (Bokeh's own default listens on every interface),
* ``--allow-websocket-origin`` for ``localhost``/``127.0.0.1`` on the port (cross-origin pages
  cannot open the app's websocket),
* the :mod:`otviz.ui.hostguard` auth module: any request whose ``Host`` is not a local name
  (or one given with ``--allow-host``) is refused with 403 — the defence against DNS rebinding,
  which Bokeh's origin check misses because a rebound page's ``Origin`` equals its ``Host``,
* closed sessions freed after 5 s instead of Bokeh's 15–17 s,
* ``--warm``: the app runs once before the server listens, so the shipped data and model outputs
  are in the shared cache (:mod:`otviz.ui.cache`) when the first browser arrives.

To share the app on a network, name the interface and the host name browsers will use:
``python -m otviz.ui.serve --address 0.0.0.0 --allow-host myhost.example.org``. Options not
listed here (``--num-procs``, ``--log-level`` …) are passed on to ``panel serve``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..paths import app_file

APP = app_file("latent_explorer.py")  # the checkout's apps/, or the copy an installed wheel ships
GUARD = Path(__file__).with_name("hostguard.py")


def panel_args(port: int = 5006, address: str = "127.0.0.1", allow_hosts=(), extra=()) -> list[str]:
    """The ``panel serve`` arguments of the safe launch (without the leading ``panel serve``)."""
    origins = [f"localhost:{port}", f"127.0.0.1:{port}", *(h if ":" in h or h == "*" else f"{h}:{port}" for h in allow_hosts)]
    args = [str(APP), "--address", address, "--port", str(port), "--auth-module", str(GUARD),
            "--check-unused-sessions", "2000", "--unused-session-lifetime", "5000", "--warm"]
    for o in origins:
        args += ["--allow-websocket-origin", o]
    return args + list(extra)


def foreign_host() -> str | None:
    """The ``Host`` of the current served session when it is not allowed (:mod:`otviz.ui.hosts`),
    else ``None`` (also outside a server). The app checks it itself, so that even a plain
    ``panel serve apps/latent_explorer.py`` without the host guard never builds the dashboard —
    its Train button included — for a DNS-rebound page."""
    import panel as pn

    from .hosts import host_allowed

    try:
        headers = pn.state.headers
    except Exception:
        return None
    if not headers:
        return None
    host = headers.get("Host")
    return None if host_allowed(host) else str(host)


def refusal(host: str):
    import panel as pn

    return pn.pane.Alert(f"**Refused:** this server answers only local names, not `{host}`. To share it, start "
                         "it with `python -m otviz.ui.serve --address 0.0.0.0 --allow-host NAME`.",
                         alert_type="danger")


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="python -m otviz.ui.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="a further Host name browsers may use (repeatable); '*' turns the Host check off")
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = p.parse_known_args(argv)
    if "MALLOC_ARENA_MAX" not in os.environ:
        # fewer malloc arenas (set before the process starts): per-thread arenas of Tornado,
        # torch and training threads keep freed session memory from returning to the OS
        env = dict(os.environ, MALLOC_ARENA_MAX="2")
        os.execve(sys.executable, [sys.executable, "-m", "otviz.ui.serve", *argv], env)
    if args.allow_host:
        os.environ["OTVIZ_ALLOWED_HOSTS"] = ",".join(
            filter(None, [os.environ.get("OTVIZ_ALLOWED_HOSTS", ""), *args.allow_host]))
    from panel.command import main as panel_main

    print(f"otviz: serving http://localhost:{args.port}/latent_explorer (listening on {args.address})", flush=True)
    sys.argv = ["panel", "serve", *panel_args(args.port, args.address, args.allow_host, extra)]
    try:
        panel_main()  # returns when the server stops (Ctrl-C, SIGTERM)
    finally:
        registry = sys.modules.get("otviz.train.registry")
        if registry is not None:  # cancel the dashboard's runs while the interpreter is whole
            registry.shutdown()

if __name__ == "__main__":
    main()
