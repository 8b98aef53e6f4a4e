"""otviz: train, see and debug optimal-transport generative models for particle physics."""
try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("otviz")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.1.0"


def load_run(path, device: str = "cpu"):
    """Open a run directory (a relative path is also looked up under the data home, e.g.
    ``data/pretrained/otus-zee``); see :func:`otviz.train.run.load_run`."""
    from .paths import resolve
    from .train.run import load_run as _load_run

    return _load_run(resolve(path), device=device)
