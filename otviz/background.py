"""Background threads that stop cleanly when the interpreter exits.

A daemon thread that is still inside torch (or any C++ code) when Python finalises is torn down
in the middle of that call, and the process aborts: "terminate called without an active
exception", exit status 134 — a script or notebook kernel that ends while a run trains, a server
stopped while a page computes, a test session that ends with a run still going. Every otviz
background thread is therefore started with :func:`start_thread`. At exit — from ``threading``'s
own exit hooks, which run before finalisation, before non-daemon threads are joined and before
thread pools shut down — :func:`stop_all` calls each live thread's ``on_exit`` (a training run
cancels itself: it stops after the current batch and is resumable) and joins the threads, for at
most ``OTVIZ_EXIT_WAIT_S`` seconds (default 120).
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Callable

_LOCK = threading.Lock()
_THREADS: dict[threading.Thread, tuple[Callable[[], None] | None, bool]] = {}  # thread -> (on_exit, announce)
_EXITING = threading.Event()
_HOOKED = False


def exiting() -> bool:
    """True once the interpreter has begun to exit (:func:`stop_all` ran): background work that
    has not started yet should not start."""
    return _EXITING.is_set()


def start_thread(target: Callable, *args, name: str, on_exit: Callable[[], None] | None = None,
                 announce: bool = True) -> threading.Thread:
    """Start ``target(*args)`` in a daemon thread that the interpreter's exit stops (``on_exit()``)
    and waits for, instead of killing it inside a C++ call; ``announce=False`` leaves a helper
    thread (a heartbeat) out of the exit message."""
    _hook()
    thread = threading.Thread(target=_forget_when_done, args=(target, args), name=name, daemon=True)
    with _LOCK:
        _THREADS[thread] = (on_exit, announce)
    thread.start()
    return thread


def _forget_when_done(target, args):
    try:
        target(*args)
    finally:
        with _LOCK:
            _THREADS.pop(threading.current_thread(), None)


def stop_all(timeout: float | None = None) -> list[str]:
    """Ask every live background thread to stop (its ``on_exit``) and wait for them, at most
    ``timeout`` s (``OTVIZ_EXIT_WAIT_S``, default 120) in all. Returns the names of the threads
    still alive afterwards (normally none)."""
    _EXITING.set()
    if timeout is None:
        try:
            timeout = float(os.environ.get("OTVIZ_EXIT_WAIT_S", "120"))
        except ValueError:
            timeout = 120.0
    with _LOCK:
        todo = [(t, stop) for t, (stop, _) in _THREADS.items() if t.is_alive()]
        named = [t.name for t, (_, announce) in _THREADS.items() if t.is_alive() and announce]
    if not todo:
        return []
    if named:
        print(f"otviz: stopping before exit: {', '.join(named)}", file=sys.stderr, flush=True)
    for _, stop in todo:
        if stop is not None:
            try:
                stop()
            except Exception as exc:  # one failing stop must not keep the others running
                print(f"otviz: could not stop a background task: {exc}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    for thread, _ in todo:
        thread.join(max(deadline - time.monotonic(), 0.0))
    left = [t.name for t, _ in todo if t.is_alive()]
    if left:
        print(f"otviz: still running after {timeout:g} s (OTVIZ_EXIT_WAIT_S): {', '.join(left)}",
              file=sys.stderr, flush=True)
    return left


def _hook():
    """Register :func:`stop_all` once with threading's exit hooks (``atexit`` where they are
    missing or already closed)."""
    global _HOOKED
    with _LOCK:
        if _HOOKED:
            return
        register = getattr(threading, "_register_atexit", None)
        try:
            (register or atexit.register)(stop_all)
        except RuntimeError:  # threading's hooks are closed: the interpreter is already exiting
            atexit.register(stop_all)
        _HOOKED = True
