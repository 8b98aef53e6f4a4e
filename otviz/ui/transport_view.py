"""Transport page: learned vs true pairs, and one z decoded many times."""
from __future__ import annotations

import panel as pn
import param

from ..physics.observables import label, observable
from ..viz import ensure_extension
from ..viz.transport import stochasticity_plot, transport_plot
from .notify import error_pane, guarded
from .picker import menu
from .state import ExplorerState


class TransportView(pn.viewable.Viewer):
    """Transport plots (true vs learned pairs) and the stochasticity of D for one z."""

    state = param.ClassSelector(class_=ExplorerState)
    z_quantity = param.Selector(default=None, objects=[])
    x_quantity = param.Selector(default=None, objects=[])
    event = param.Integer(default=0, bounds=(0, 0), doc="test event decoded many times (bounds: the test sample)")

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self._transport_pane = pn.Row(sizing_mode="stretch_width")
        # the event input: its range (from the data) is in its label and checked here, so an
        # out-of-range value is refused with a message and the input reset. (Bokeh's spinner with
        # low/high keeps its old value silently while still showing what was typed.)
        self._resetting = False  # True while the input is put back after a refused value
        self.event_input = pn.widgets.IntInput(name="test event", value=0, width=200)
        self.event_input.param.watch(self._on_event_input, "value")
        state.param.watch(self._refresh, ["run_path", "max_events"])
        self._refresh()

    @guarded("Transport page")
    def _refresh(self, *_):
        if not self.state.run:
            return
        n = self.state.n_test
        self.param.event.bounds = (0, max(n - 1, 0))
        self.event_input.name = f"test event (0 … {max(n - 1, 0)})"
        if self.event > n - 1:
            self.event = 0
        zq = [q for q in self.state.quantity_names("z") if "." in q]
        xq = [q for q in self.state.quantity_names("x") if "." in q]
        self.param.z_quantity.objects, self.param.x_quantity.objects = menu(zq), menu(xq)
        new = dict(z_quantity=self.z_quantity if self.z_quantity in zq else (zq[-1] if zq else None),
                   x_quantity=self.x_quantity if self.x_quantity in xq else (xq[-1] if xq else None))
        changed = new != dict(z_quantity=self.z_quantity, x_quantity=self.x_quantity)
        self.param.update(**new)  # redraws the transport plots once when a quantity changed …
        if not changed:
            self._transport()  # … else here: the data changed

    def _on_event_input(self, event):
        value, n = event.new, self.state.n_test
        if value is None or not 0 <= value < n:
            self.state.notices.error(f"Test event {value} does not exist: the test sample shown has events 0 … {n - 1}; "
                                     f"still showing event {self.event}.", source="test event")
            self._resetting = True
            try:
                self.event_input.value = self.event  # the widget shows what the plot shows
            finally:
                self._resetting = False
            return
        if not self._resetting:
            self.state.notices.resolve("test event")  # a valid event typed: the error no longer holds
        self.event = int(value)

    @param.depends("event", watch=True)
    def _sync_input(self):
        if self.event_input.value != self.event:
            self.event_input.value = self.event

    @param.depends("z_quantity", "x_quantity", watch=True)
    @guarded("Transport plot")
    def _transport(self):
        if self.z_quantity is None or self.x_quantity is None:
            return
        ensure_extension()
        zc = self.state.quantity("z", "z", self.z_quantity)
        xt = self.state.quantity("x", "x", self.x_quantity)
        xl = self.state.quantity("x", "x_tilde_prime", self.x_quantity)
        zo = observable(self.z_quantity)
        layout = transport_plot(zc, xt, xl, label(self.z_quantity, prefix="z"), label(self.x_quantity, prefix="x"),
                                rasterise=True, bin_name=zo.symbol, unit=zo.unit)
        # one pane per panel: a Bokeh GridPlot inside a tab that was hidden renders collapsed
        self._transport_pane.objects = [pn.pane.HoloViews(p, linked_axes=False, sizing_mode="stretch_width", min_width=300)
                                        for p in layout]

    @param.depends("x_quantity", "event", "state.run_path", "state.max_events")
    @guarded("Stochasticity plot", error_pane("Stochasticity plot"))
    def _stochastic(self):
        if self.x_quantity is None:
            return pn.pane.Markdown("No run selected.")
        ensure_extension()
        parts = self.state.particles("x")
        p, comp = self.x_quantity.split(".")
        k = ["px", "py", "pz", "E"].index(comp)
        dec = self.state.decode_many(self.event)[:, parts.index(p), k]
        true_x = self.state.outputs()["x"][self.event, parts.index(p), k]
        return pn.pane.HoloViews(stochasticity_plot(dec, true_x, label=label(self.x_quantity, prefix="x")), linked_axes=False)

    def controls(self):
        return pn.Column(pn.widgets.Select.from_param(self.param.z_quantity, name="z component"),
                         pn.widgets.Select.from_param(self.param.x_quantity, name="x component"), self.event_input)

    def content(self):
        return pn.Column(
            self._transport_pane,
            pn.pane.Markdown("#### Stochasticity: one test z decoded 2000 times (black line: its true x)"),
            self._stochastic,
            sizing_mode="stretch_width",  # the two scatter panels share the page's full width
        )

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")
