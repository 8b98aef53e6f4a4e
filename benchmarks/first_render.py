"""First render of the latent explorer in headless Chromium: start ``python -m otviz.ui.serve``
(which warms the shared cache before it listens), then time navigation → first plot visible
for a few fresh browser sessions.

    python benchmarks/first_render.py [--sessions 3] [--root CHECKOUT] [--no-warm]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=3)
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="checkout to serve")
    p.add_argument("--no-warm", action="store_true", help="plain panel serve (no --warm)")
    args = p.parse_args()
    port = free_port()
    env = dict(os.environ, OTVIZ_RUNS=tempfile.mkdtemp(), PYTHONPATH=args.root)
    cmd = ([sys.executable, "-m", "panel", "serve", "apps/latent_explorer.py", "--address", "127.0.0.1",
            "--allow-websocket-origin", f"127.0.0.1:{port}"] if args.no_warm
           else [sys.executable, "-m", "otviz.ui.serve", "--allow-host", f"127.0.0.1:{port}"]) + ["--port", str(port)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=args.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit("server exited")
                time.sleep(0.2)
        print(f"server listening after {time.time() - t0:.1f} s")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
            for i in range(args.sessions):
                page = b.new_page(viewport={"width": 1440, "height": 900})
                page.set_default_timeout(120_000)
                t = time.time()
                page.goto(f"http://127.0.0.1:{port}/latent_explorer")
                page.wait_for_selector("canvas", state="visible")
                print(f"session {i + 1}: first plot visible {time.time() - t:.2f} s after navigation")
                page.close()
            b.close()
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main()
