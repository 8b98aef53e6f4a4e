"""otviz: train, see and debug optimal-transport generative models for particle physics."""
__version__ = "0.1.0"


def load_run(path, device: str = "cpu"):
    """Open a run directory; see :func:`otviz.train.run.load_run`."""
    from .train.run import load_run as _load_run

    return _load_run(path, device=device)
