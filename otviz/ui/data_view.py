"""Data page: marginals of the training and test samples, the m_ee peak and, for tt̄ samples, the
reconstructed masses (m_tt, m_W^had, m_t^lep, m_t^had of :mod:`otviz.physics.ttbar`)."""
from __future__ import annotations

import panel as pn
import param

from ..metrics.fidelity import derived_masses, quantities, width_iqr
from ..metrics.peak import fit_peak
from ..physics.observables import label, observable
from ..viz import ensure_extension
from ..viz.residuals import residual_plot
from . import cache
from .picker import QuantityPage


class DataView(QuantityPage):
    """Marginals of the training and test samples and the m_ee peak."""

    logy = param.Boolean(default=False, doc="densities on a log axis (the tails)")
    BINS = 100  # across the train sample's 0.5–99.5 % quantiles: ~1 GeV bins on the Z peak
    QUANTILES = (0.005, 0.995)

    @param.depends("space", "quantity", "state.run_path", "logy")
    def _plot(self):
        if self.quantity is None:
            return pn.pane.Markdown("No sample loaded.")
        ensure_extension()
        tr, te = self.state.train_sample(), self.state.test_sample()
        parts = [str(p) for p in te[f"{self.space}_particle"].values]
        qtr = quantities(tr[self.space].values, parts, derived_masses(parts))[self.quantity]
        qte = quantities(te[self.space].values, parts, derived_masses(parts))[self.quantity]
        plot = residual_plot(qtr, {"test sample": qte}, label=label(self.quantity, prefix=self.space), truth_label="train sample",
                             bins=self.BINS, quantiles=self.QUANTILES, logy=self.logy)
        cfg = self.state.run.config

        def shown(path, n):  # "the first 50,000 of 100,000 events" when the page's max_events cuts the file
            total = cache.sample(path).sizes["event"]
            return f"{n:,} events" if n >= total else f"the first {n:,} of its {total:,} events"

        text = f"**{self.space}** from `{cfg.train_data}` (train, {shown(cfg.train_data, len(qtr))}) and " \
               f"`{cfg.test_data}` (test, {shown(cfg.test_data, len(qte))})."
        if self.quantity == "m_ee":
            f = fit_peak(qte)
            text += f"  Test m_ee peak {f.mass:.2f} GeV, Γ {f.gamma:.2f} GeV, σ {f.sigma:.2f} GeV (Voigt fit)."
        elif self.quantity.startswith("m_"):  # the tt̄ masses: no single resonance to fit, median and IQR
            import numpy as np

            o = observable(self.quantity)
            text += (f"  Test {o.symbol}: median {np.median(qte):.1f} {o.unit}, IQR {width_iqr(qte):.1f} {o.unit} "
                     f"(train: median {np.median(qtr):.1f} {o.unit}, IQR {width_iqr(qtr):.1f} {o.unit}).")
        return pn.Column(pn.pane.Markdown(text), pn.pane.HoloViews(plot, linked_axes=False, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")

    def controls(self):
        return pn.Column(self.selectors(), pn.widgets.Checkbox.from_param(self.param.logy, name="log y axis"))

    def content(self):
        return pn.Column(self._plot, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")


