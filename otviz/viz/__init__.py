"""HoloViews plots (Bokeh by default; PNG export via matplotlib).

Modules: ``residuals`` (histograms with ratio panels), ``transport`` (transport and
stochasticity plots), ``curves`` (loss curves), ``export`` (PNG/HTML files).
"""
from __future__ import annotations

import holoviews as hv

RASTERISE_ABOVE = 100_000
STYLE = {  # OTUS Fig. 3 colours: truth black, z → x̃′ purple dashed, x → z̃ → x̃ green dotted
    "truth": dict(color="black", line_dash="solid"),
    "x̃′ = D(z)": dict(color="#8e44ad", line_dash="dashed"),
    "x̃ = D(E(x))": dict(color="#27ae60", line_dash="dotted"),
    "z̃ = E(x)": dict(color="#27ae60", line_dash="dotted"),
    # Data page: train solid black, test dashed orange (told apart by hue and by dash)
    "train sample": dict(color="black", line_dash="solid"),
    "test sample": dict(color="#e67e22", line_dash="dashed"),
}


TICKS = "%.4g"  # tick labels: 0.007 and 91.25, never "7.000e-3"


def tick_formatter(fmt: str = TICKS):
    """A Bokeh tick formatter printing numbers with ``fmt`` (HoloViews ``xformatter``/``yformatter``)."""
    from bokeh.models import PrintfTickFormatter

    return PrintfTickFormatter(format=fmt)


def ensure_extension():
    """Load the Bokeh backend once (a no-op when a notebook or Panel already did)."""
    if not hv.Store.current_backend or hv.Store.current_backend not in hv.Store.renderers:
        hv.extension("bokeh", logo=False)
