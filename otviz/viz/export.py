"""Export any plot to PNG (matplotlib backend) or HTML (Bokeh)."""
from __future__ import annotations

from pathlib import Path

import holoviews as hv


def export(obj, path):
    """Save a plot: ``.png`` via the matplotlib backend, ``.html`` via Bokeh."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        import matplotlib

        matplotlib.use("Agg")
        hv.extension("matplotlib", logo=False)
        try:
            hv.save(obj, path, backend="matplotlib", fmt="png")
        finally:
            hv.Store.set_current_backend("bokeh")
    elif path.suffix == ".html":
        hv.save(obj, path, backend="bokeh")
    else:
        raise ValueError(f"{path}: export to .png or .html")
    return path
