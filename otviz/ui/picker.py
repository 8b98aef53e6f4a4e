"""A page that shows one quantity (component or derived mass) of one space (x or z)."""
from __future__ import annotations

import panel as pn
import param

from ..physics.observables import label
from .state import ExplorerState


def menu(names) -> dict[str, str]:
    """Menu entries for quantity names: the label people read (``m_W^had [GeV]``, ``E(jet1) [GeV]``)
    → the name (``m_W_had``, ``jet1.E``)."""
    return {label(n): n for n in names}


class QuantityPage(pn.viewable.Viewer):
    """Base of the Data and Residuals pages: ``space`` and ``quantity`` selectors that follow
    the selected run, defaulting to the derived mass (m_ee)."""

    state = param.ClassSelector(class_=ExplorerState)
    space = param.Selector(default="x", objects=["x", "z"])
    quantity = param.Selector(default=None, objects=[])

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        state.param.watch(self._update_quantities, "run_path")
        self._update_quantities()

    @param.depends("space", watch=True)
    def _update_quantities(self, *_):
        names = self.state.quantity_names(self.space) if self.state.run else []
        self.param.quantity.objects = menu(names)  # the menu reads "m_W^had [GeV]", the value stays "m_W_had"
        if self.quantity not in names:
            self.quantity = next((n for n in names if n.startswith("m_")), names[0] if names else None)

    def selectors(self):
        # as wide as the sidebar, never wider (a bare Select is 300 px)
        return pn.Column(pn.widgets.RadioButtonGroup.from_param(self.param.space, name="space"),
                         pn.widgets.Select.from_param(self.param.quantity, name="quantity", sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
