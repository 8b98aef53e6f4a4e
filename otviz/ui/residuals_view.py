"""Residuals page: histograms with ratio panels and KS/W1/χ² against their floors.

The page shows exactly what ``otviz evaluate`` measures: the model outputs come from
``fidelity.model_outputs`` (same seeds, same batches) on the run's test sample, and every number
from ``fidelity.statistic_with_floor`` (mean over the same ``N_SPLITS`` random half splits), so
with the full test sample and seed 0 the table equals the run's metrics.nc.
"""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..metrics.fidelity import N_SPLITS, STATISTICS, derived_masses, quantities, statistic_with_floor
from ..physics.observables import label
from ..viz import ensure_extension
from ..viz.residuals import residual_plot
from .picker import QuantityPage

ARRAYS = {"x": ("x", "x_tilde_prime", "x_tilde"), "z": ("z", "z_tilde")}
LABELS = {"x_tilde_prime": "x̃′ = D(z)", "x_tilde": "x̃ = D(E(x))", "z_tilde": "z̃ = E(x)"}
COMPARISON = {"x_tilde_prime": "x_vs_x_tilde_prime", "x_tilde": "x_vs_x_tilde", "z_tilde": "z_vs_z_tilde"}


class ResidualsView(QuantityPage):
    """Residual histograms of any component or derived mass, with KS/W₁/χ² and their floors."""

    def outputs(self) -> dict[str, np.ndarray]:
        """Truth and model outputs on the shown test events, as ``otviz evaluate`` draws them
        (``fidelity.model_outputs``; shared by every page and session through the explorer's cache)."""
        return self.state.outputs()

    def values(self, name: str) -> np.ndarray:
        """The selected quantity of one array of ``outputs()`` (z, x, z_tilde, x_tilde, x_tilde_prime)."""
        parts = self.state.particles(self.space)
        return quantities(self.outputs()[name], parts, derived_masses(parts))[self.quantity]

    def stats_frame(self):
        """One row per model output: each statistic and its floor, as in metrics.nc."""
        import pandas as pd

        names = ARRAYS[self.space]
        truth = self.values(names[0])
        rows = []
        for name in names[1:]:
            v, f = statistic_with_floor(truth, self.values(name), N_SPLITS, self.state.seed)
            rows.append({"sample": LABELS[name], "comparison": COMPARISON[name], **{s: v[s] for s in STATISTICS},
                         **{f"{s} floor": f[s] for s in STATISTICS}, "KS / floor": v["ks"] / f["ks"]})
        return pd.DataFrame(rows)

    def _stats_table(self):
        from bokeh.models.widgets.tables import NumberFormatter

        df = self.stats_frame()
        fmt = {c: NumberFormatter(format="0.00" if c == "KS / floor" else "0.00000")
               for c in df.columns if c not in ("sample", "comparison")}
        return pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width", formatters=fmt)

    @param.depends("space", "quantity", "state.run_path")
    def _plot(self):
        if self.quantity is None:
            return pn.pane.Markdown("No run selected.")
        ensure_extension()
        names = ARRAYS[self.space]
        truth = self.values(names[0])
        others = {LABELS[n]: self.values(n) for n in names[1:]}
        n = len(truth)
        return pn.Column(
            pn.pane.HoloViews(residual_plot(truth, others, label=label(self.quantity, prefix=self.space)), linked_axes=False,
                              sizing_mode="stretch_width"),
            pn.pane.Markdown(f"Statistics between truth (half A of the {n:,} test events) and the model output "
                             f"computed from half B; *floor*: the same statistic between the two truth halves; "
                             f"each the mean over {N_SPLITS} random splits (seed {self.state.seed}) — the numbers "
                             f"`otviz evaluate` stores in `metrics.nc`."),
            self._stats_table(),
            sizing_mode="stretch_width",
        )

    def controls(self):
        return self.selectors()

    def content(self):
        return pn.Column(self._plot, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")
