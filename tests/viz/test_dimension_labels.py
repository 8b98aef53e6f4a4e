"""Dimensionality plots: the KL legend outside the axes, one colour per line, R and D each on its
own axis with its unit; readable numbers."""
import holoviews as hv
import numpy as np

from otviz.physics.observables import readable, readable_fixed, readable_range
from otviz.viz.dimension import kl_plot, line_colours, rate_distortion_plot


def test_kl_plot_legend_outside_and_distinct_colours():
    beta = np.geomspace(1e-3, 1, 20)
    kl = np.exp(-np.outer(np.log(beta) + 7, np.ones(16)) * np.linspace(0.2, 1, 16))
    plot = kl_plot(beta, kl, top=12)
    curves = list(plot)
    assert len(curves) == 12
    colours = [c.opts.get().kwargs["color"] for c in curves]
    assert len(set(colours)) == 12  # z15 and z30 no longer both blue
    assert plot.opts.get().kwargs["legend_position"] == "right"  # outside the axes
    assert plot.opts.get().kwargs["ylabel"] == "KL [nats]"
    assert len(set(line_colours(20))) == 20


def test_rate_distortion_two_panels_each_with_its_unit():
    beta = np.geomspace(1e-3, 1, 10)
    rd = rate_distortion_plot(beta, 10 / beta, beta ** 2 / 2)
    assert isinstance(rd, hv.Layout) and len(rd) == 2
    top, bottom = rd
    assert top.opts.get().kwargs["ylabel"] == "R (KL) [nats]"
    assert bottom.opts.get().kwargs["ylabel"] == "D (EMD²/H_T²)"
    assert {top.opts.get().kwargs["legend_position"], bottom.opts.get().kwargs["legend_position"]} == {"right"}
    assert top.opts.get().kwargs["responsive"] is True  # page width, not a 320-pixel sidebar


def test_readable_numbers():
    assert readable(1667.9) == "1670" and readable(1540.2) == "1540"
    assert readable(0.012345) == "0.0123" and readable(91.187) == "91.2" and readable(0) == "0"
    assert readable(1.2345e-5) == "1.23×10⁻⁵"
    assert readable_fixed(-0.001) == "0.00" and readable_fixed(-1.234) == "-1.23"
    assert readable_range(125.2, 1667.9) == "125–1670"
