"""Atomic file writes: write to a temporary file in the target folder, then rename over the
target, so a crash never leaves a partial file under the final name nor replaces a good one."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` (with the
    usual umask permissions), on any exception it is removed and the target is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
    try:
        yield Path(tmp)
        _test_slow_write(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _test_slow_write(path: Path):
    """Test hook: ``OTVIZ_TEST_SLOW_WRITE=SECONDS`` (or ``NAME:SECONDS`` for targets named NAME)
    sleeps between writing the temporary file and the rename, so a fault test can kill a process
    while a checkpoint write is in flight. Unset in normal use."""
    spec = os.environ.get("OTVIZ_TEST_SLOW_WRITE")
    if not spec:
        return
    name, _, secs = spec.rpartition(":")
    if not name or name == path.name:
        import time

        time.sleep(float(secs))


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
