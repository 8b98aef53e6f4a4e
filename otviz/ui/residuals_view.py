"""Residuals page: histograms with ratio panels and KS/W1/χ² against their floors."""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..metrics.fidelity import one_d_stats
from ..viz import ensure_extension
from ..viz.residuals import residual_plot
from .picker import QuantityPage

ARRAYS = {"x": ("x", "x_tilde_prime", "x_tilde"), "z": ("z", "z_tilde")}
LABELS = {"x_tilde_prime": "x̃′ = D(z)", "x_tilde": "x̃ = D(E(x))", "z_tilde": "z̃ = E(x)"}


class ResidualsView(QuantityPage):
    """Residual histograms of any component or derived mass, with KS/W₁/χ² and their floors."""

    def _stats_table(self, truth, others):
        import pandas as pd

        n = len(truth) // 2
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(truth))
        a, b = perm[:n], perm[n:2 * n]
        floor = one_d_stats(truth[a], truth[b])
        rows = []
        for name, arr in others.items():
            v = one_d_stats(truth[a], arr[b])
            rows.append({"sample": name, **{f"{s}": round(v[s], 5) for s in ("ks", "w1", "chi2r")},
                         **{f"{s} floor": round(floor[s], 5) for s in ("ks", "w1", "chi2r")},
                         "KS / floor": round(v["ks"] / floor["ks"], 2)})
        return pn.widgets.Tabulator(pd.DataFrame(rows), disabled=True, show_index=False, sizing_mode="stretch_width")

    @param.depends("space", "quantity", "state.run_path")
    def _plot(self):
        if self.quantity is None:
            return pn.pane.Markdown("No run selected.")
        ensure_extension()
        names = ARRAYS[self.space]
        truth = self.state.quantity(self.space, names[0], self.quantity)
        others = {LABELS[n]: self.state.quantity(self.space, n, self.quantity) for n in names[1:]}
        return pn.Column(
            pn.pane.HoloViews(residual_plot(truth, others, label=f"{self.space}: {self.quantity}"), linked_axes=False),
            pn.pane.Markdown("Statistics between truth (half A of the test sample) and the model output computed "
                             "from half B; *floor*: the same statistic between the two truth halves."),
            self._stats_table(truth, others),
        )

    def __panel__(self):
        return pn.Column(self.selectors(), self._plot)


