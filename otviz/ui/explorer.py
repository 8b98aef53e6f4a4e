"""The latent explorer: run selector and the Data, Train, Transport, Residuals (OTUS), Latent
traversal and Dimensionality (EMD-VAE) pages."""
from __future__ import annotations

import panel as pn

from .data_view import DataView
from .dimension_view import DimensionView
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

    def __panel__(self):
        selector = pn.widgets.Select.from_param(self.state.param.run_path, name="OTUS run", width=360)
        tabs = pn.Tabs(("Data", self.data), ("Train", self.train), ("Transport", self.transport),
                       ("Residuals", self.residuals), ("Latent traversal", self.traversal),
                       ("Dimensionality", self.dimension), dynamic=True)
        return pn.Column(pn.Row(pn.pane.Markdown("## otviz latent explorer"), selector), self.state.notices.panel(),
                         tabs)
