"""Transport page: learned vs true pairs, and one z decoded many times."""
from __future__ import annotations

import panel as pn
import param

from ..viz import ensure_extension
from ..viz.transport import stochasticity_plot, transport_plot
from .state import ExplorerState



class TransportView(pn.viewable.Viewer):
    """Transport plots (true vs learned pairs) and the stochasticity of D for one z."""

    state = param.ClassSelector(class_=ExplorerState)
    z_quantity = param.Selector(default=None, objects=[])
    x_quantity = param.Selector(default=None, objects=[])
    event = param.Integer(default=0, bounds=(0, None))

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self._transport_pane = pn.Row()
        state.param.watch(self._refresh, "run_path")
        self._refresh()
        self._transport()

    def _refresh(self, *_):
        if not self.state.run:
            return
        zq = [q for q in self.state.quantity_names("z") if "." in q]
        xq = [q for q in self.state.quantity_names("x") if "." in q]
        self.param.z_quantity.objects, self.param.x_quantity.objects = zq, xq
        self.z_quantity = self.z_quantity if self.z_quantity in zq else (zq[-1] if zq else None)
        self.x_quantity = self.x_quantity if self.x_quantity in xq else (xq[-1] if xq else None)

    @param.depends("z_quantity", "x_quantity", "state.run_path", watch=True)
    def _transport(self):
        if self.z_quantity is None or self.x_quantity is None:
            return
        ensure_extension()
        zc = self.state.quantity("z", "z", self.z_quantity)
        xt = self.state.quantity("x", "x", self.x_quantity)
        xl = self.state.quantity("x", "x_tilde_prime", self.x_quantity)
        layout = transport_plot(zc, xt, xl, f"z {self.z_quantity} [GeV]", f"x {self.x_quantity} [GeV]",
                                rasterise=True)
        # one pane per panel: a Bokeh GridPlot inside a tab that was hidden renders collapsed
        self._transport_pane.objects = [pn.pane.HoloViews(p, linked_axes=False) for p in layout]

    @param.depends("x_quantity", "event", "state.run_path")
    def _stochastic(self):
        ensure_extension()
        parts = self.state.particles("x")
        p, comp = self.x_quantity.split(".")
        k = ["px", "py", "pz", "E"].index(comp)
        dec = self.state.decode_many(self.event)[:, parts.index(p), k]
        true_x = self.state.outputs()["x"][self.event, parts.index(p), k]
        return pn.pane.HoloViews(stochasticity_plot(dec, true_x, label=f"x {self.x_quantity} [GeV]"), linked_axes=False)

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.z_quantity, name="z component"),
                   pn.widgets.Select.from_param(self.param.x_quantity, name="x component")),
            self._transport_pane,
            pn.pane.Markdown("#### Stochasticity: one test z decoded 2000 times (black line: its true x)"),
            pn.widgets.IntInput.from_param(self.param.event, name="test event", width=150),
            self._stochastic,
        )


