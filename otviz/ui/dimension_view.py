"""Dimensionality page: D₁, D₂ and D_corr vs β (with the GeV axis) and KL per direction vs β."""
from __future__ import annotations

import panel as pn
import param

from ..metrics.dimension import dimensionalities, production_curves
from ..physics.observables import readable, readable_fixed
from ..viz.dimension import dimension_plot, kl_plot, rate_distortion_plot
from .state import ExplorerState


class DimensionView(pn.viewable.Viewer):
    """Curves of the selected EMD-VAE run's production pass. D₁/D₂ come from the run's
    ``steps.json``; D_corr of the data from its ``dimension.nc`` (``otviz dimension RUNDIR``)."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)

    @param.depends("state.vae_path")
    def _content(self):
        run = self.state.vae_run
        steps = run.production_steps() if run is not None else []
        if len(steps) < 2:
            return pn.pane.Markdown("The selected EMD-VAE run has fewer than two finished production β steps.")
        beta, rate, dist, kl = production_curves(steps)
        mid, d1, d2 = dimensionalities(beta, rate, dist)
        stored = run.dimensionality
        ht = self.state.vae_ht_mean()
        if stored is not None:
            q_mid, dcorr = stored.q_mid.values, stored.D_corr.values
            note = f"D_corr from exact EMDs between {stored.attrs['n_jets_corr']} training jets."
        else:
            q_mid = dcorr = None
            note = f"D_corr not computed yet for this run: `otviz dimension {run.path}`."
        rows = "\n".join(f"| {readable(b)} | {readable(b * ht)} | {readable_fixed(a)} | {readable_fixed(c)} |"
                         for b, a, c in zip(mid, d1, d2))
        table = pn.pane.Markdown("| β_mid | β·⟨H_T⟩ [GeV] | D₁ | D₂ |\n|---|---|---|---|\n" + rows, width=320)
        stretch = dict(linked_axes=False, sizing_mode="stretch_width")
        return pn.Row(
            pn.Column(
                pn.pane.HoloViews(dimension_plot(mid, d1, d2, q_mid, dcorr, ht=ht), **stretch),
                pn.pane.HoloViews(kl_plot(beta, kl, ht=ht), **stretch),
                pn.pane.HoloViews(rate_distortion_plot(beta, rate, dist), **stretch),
                sizing_mode="stretch_width",
            ),
            pn.Column(pn.pane.Markdown(f"Mean H_T {ht:.0f} GeV: β·⟨H_T⟩ is the resolution in GeV (seed 001). {note}", width=320),
                      table, width=340),
            sizing_mode="stretch_width",
        )

    def controls(self):
        return pn.pane.Markdown("D₁, D₂ from the run's `steps.json`; D_corr from its `dimension.nc`.")

    def content(self):
        return pn.Column(self._content, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(pn.widgets.Select.from_param(self.state.param.vae_path, name="EMD-VAE run", width=360),
                         self._content, sizing_mode="stretch_width")
