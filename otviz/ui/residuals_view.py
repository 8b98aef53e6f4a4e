"""Residuals page: histograms with ratio panels and KS/W1/χ² against their floors.

The page shows exactly what ``otviz evaluate`` measures: the model outputs come from
``fidelity.model_outputs`` (same seeds, same batches) on the run's test sample, and every number
from ``fidelity.statistic_with_floor`` (mean over the same ``N_SPLITS`` random half splits), so
with the full test sample and seed 0 the table equals the run's metrics.nc. For a tt̄ run the page also
shows the Turbo-Sim slide's KS table that ``otviz evaluate`` stored in the run (``ks_table.nc``).
"""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..metrics.fidelity import N_SPLITS, STATISTICS, derived_masses, quantities, statistic_with_floor
from ..metrics.ks_table import DEFAULT_GOAL_RULE
from ..physics.observables import comparison_label, label, readable, statistic_label
from ..train.products import read_ks_table
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

    def stats_display(self):
        """``stats_frame()`` with the columns people read added: "compared" ("x vs x̃′ = D(z)") and each
        statistic beside its floor as text to 3 significant figures under its label ("KS", "KS floor",
        "W₁ [GeV]", "χ²/dof", …); returns (frame, the code-named columns to hide)."""
        df = self.stats_frame()
        hidden = ["sample", "comparison", *STATISTICS, *(f"{s} floor" for s in STATISTICS)]
        shown = {"compared": [comparison_label(c) for c in df["comparison"]]}
        for s in STATISTICS:
            shown[statistic_label(s, self.quantity)] = [readable(v) for v in df[s]]
            shown[statistic_label(s, self.quantity, floor=True)] = [readable(v) for v in df[f"{s} floor"]]
        out = df.assign(**shown)
        return out[[*shown, "KS / floor", *hidden]], hidden

    def _stats_table(self):
        from bokeh.models.widgets.tables import NumberFormatter

        df, hidden = self.stats_display()
        return pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width",
                                    hidden_columns=hidden, formatters={"KS / floor": NumberFormatter(format="0.00")})

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
            pn.pane.HoloViews(residual_plot(truth, others, label=label(self.quantity, prefix=self.space),
                                            truth_symbol=self.space), linked_axes=False,
                              sizing_mode="stretch_width"),
            pn.pane.Markdown(f"Statistics between truth (half A of the {n:,} test events) and the model output "
                             f"computed from half B; *floor*: the same statistic between the two truth halves; "
                             f"each the mean over {N_SPLITS} random splits (seed {self.state.seed}) — the numbers "
                             f"`otviz evaluate` stores in `metrics.nc`."),
            self._stats_table(),
            sizing_mode="stretch_width",
        )

    def ks_table_frame(self):
        """The run's stored KS table (``ks_table.nc``) as rows of numbers ×10⁻², or None when the run
        has none (not tt̄, or not evaluated yet)."""
        import pandas as pd

        tab = read_ks_table(self.state.run_path) if self.state.run_path else None
        if tab is None:
            return None
        rows = []
        for obs in tab.observable.values:
            r = tab.sel(observable=obs)
            ks, goal = float(r.ks), float(r.goal)
            rows.append({"space": str(r.space.values), "observable": label(str(obs)),
                         "KS ×10⁻²": 100 * ks, "floor ×10⁻²": 100 * float(r.ks_floor), "KS / floor": float(r.ks_ratio),
                         "goal ×10⁻²": 100 * goal, "goal met": "✓" if ks <= goal else "✗ misses",
                         **{f"{m} ×10⁻² (published)": 100 * float(r.published.sel(model=m)) for m in tab.model.values}})
        df = pd.DataFrame(rows)
        df.attrs.update(tab.attrs)
        return df

    @param.depends("state.run_path")
    def _ks_table(self):
        df = self.ks_table_frame()
        if df is None:
            return pn.Column()
        from bokeh.models.widgets.tables import NumberFormatter

        def miss(row):  # the value in red where it misses its goal
            bad = row["goal met"] != "✓"
            return ["color: #c0392b; font-weight: bold" if bad and c in ("KS ×10⁻²", "goal met") else "" for c in row.index]

        fmt = {c: NumberFormatter(format="0.00") for c in df.columns if c not in ("space", "observable", "goal met")}
        table = pn.widgets.Tabulator(df, disabled=True, show_index=False, sizing_mode="stretch_width", formatters=fmt)
        table.style.apply(miss, axis=1)
        a = df.attrs
        return pn.Column(
            pn.pane.Markdown(
                f"#### KS table of the Turbo-Sim slide\nStored by `otviz evaluate` on `{a.get('test_data', '?')}` "
                f"({a.get('n_test', 0):,} test events, halves of {a.get('n_half', 0):,}, {a.get('n_splits', '?')} splits). "
                "Z space: z̃ = E(x) vs z; X space and reconstructed masses: x̃′ = D(z) vs x. *goal*: "
                f"{a.get('goal', DEFAULT_GOAL_RULE)}; published rows were measured on their own 422,761 events."),
            table, sizing_mode="stretch_width")

    def controls(self):
        return self.selectors()

    def content(self):
        return pn.Column(self._plot, self._ks_table, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")
