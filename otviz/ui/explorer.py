"""The latent explorer: run selector and the Data, Train, Transport, Residuals (OTUS), Latent
traversal and Dimensionality (EMD-VAE) pages."""
from __future__ import annotations

import panel as pn

from .data_view import DataView
from .dimension_view import DimensionView
from .notify import describe
from .residuals_view import ResidualsView
from .state import ExplorerState
from .train_view import TrainView
from .transport_view import TransportView
from .traversal_view import TraversalView


class LatentExplorer(pn.viewable.Viewer):
    """The whole dashboard; ``LatentExplorer()`` in a notebook, ``.servable()`` in apps/."""

    def __init__(self, **params):
        super().__init__(**params)
        self.state = ExplorerState()
        self.data = DataView(self.state)
        self.train = TrainView(self.state)
        self.transport = TransportView(self.state)
        self.residuals = ResidualsView(self.state)
        self.traversal = TraversalView(self.state)
        self.dimension = DimensionView(self.state)

    def pages(self) -> list[tuple[str, pn.viewable.Viewer]]:
        return [("Data", self.data), ("Train", self.train), ("Transport", self.transport),
                ("Residuals", self.residuals), ("Latent traversal", self.traversal), ("Dimensionality", self.dimension)]

    def __panel__(self):
        selector = pn.widgets.Select.from_param(self.state.param.run_path, name="OTUS run", width=360)
        # a page is built when its tab is first shown: a new session computes only the first page
        pages = self.pages()
        holders = [pn.Column() for _ in pages]
        tabs = pn.Tabs(*[(name, h) for (name, _), h in zip(pages, holders)], dynamic=True)

        def show(i: int):
            if not holders[i].objects:
                holders[i].objects = [self._build(*pages[i])]

        show(tabs.active)
        tabs.param.watch(lambda event: show(event.new), "active")
        return pn.Column(pn.Row(pn.pane.Markdown("## otviz latent explorer"), selector), self.state.notices.panel(),
                         tabs)

    def _build(self, name: str, view):
        try:
            return pn.panel(view)
        except Exception as exc:  # a page that cannot be built says why, in the page
            self.state.notices.error(f"{name} page: {describe(exc)}")
            return pn.pane.Alert(f"**{name} page could not be built:** {describe(exc)}", alert_type="danger")
