"""The latent explorer: run pickers and the Runs, Data, Train, Transport, Residuals (OTUS), Latent
traversal and Dimensionality (EMD-VAE) pages, in a page template (header with name, version and
device; sidebar with the run pickers and the current page's controls) or, in a notebook, a column."""
from __future__ import annotations

import panel as pn

from .data_view import DataView
from .dimension_view import DimensionView
from .notify import describe
from .residuals_view import ResidualsView
from .runs_view import RunsView
from .state import ExplorerState
from .train_view import TrainView
from .transport_view import TransportView
from .traversal_view import TraversalView


class LatentExplorer(pn.viewable.Viewer):
    """The whole dashboard; ``LatentExplorer()`` in a notebook, ``.servable()`` in apps/."""

    PAGES = [("Data", "data", DataView), ("Train", "train", TrainView), ("Transport", "transport", TransportView),
             ("Residuals", "residuals", ResidualsView), ("Latent traversal", "traversal", TraversalView),
             ("Dimensionality", "dimension", DimensionView), ("Runs", "runs", RunsView)]

    def __init__(self, **params):
        super().__init__(**params)
        self.state = ExplorerState()
        self._views: dict[str, pn.viewable.Viewer] = {}
        if _query_string():
            self.train  # URL parameters preset the Train page: applied (or refused, in a notice) on load

    def __getattr__(self, attr: str):
        """``app.data``, ``app.transport`` …: a page's view, made on first use (a new session
        computes only the pages it shows)."""
        for _, a, cls in type(self).PAGES:
            if a == attr:
                views = self.__dict__.setdefault("_views", {})
                if a not in views:
                    views[a] = cls(self.state)
                return views[a]
        raise AttributeError(attr)

    def pages(self) -> list[tuple[str, str]]:
        """(tab name, attribute of its view) of every page, in tab order."""
        return [(name, attr) for name, attr, _ in self.PAGES]

    def pickers(self):
        return pn.Column(
            pn.widgets.Select.from_param(self.state.param.run_path, name="OTUS run", sizing_mode="stretch_width"),
            pn.widgets.Select.from_param(self.state.param.vae_path, name="EMD-VAE run", sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def _tabs(self, sidebar: pn.Column | None):
        """The page tabs. A page is built when its tab is first shown (a new session computes only
        the first page); with a ``sidebar``, a page's ``controls()`` go there while it is shown."""
        pages = self.pages()
        holders = [pn.Column(sizing_mode="stretch_width") for _ in pages]
        controls: dict[int, object] = {}
        tabs = pn.Tabs(*[(name, h) for (name, _), h in zip(pages, holders)], dynamic=True, sizing_mode="stretch_width")

        def show(i: int):
            name, attr = pages[i]
            if not holders[i].objects:  # the page's view is made and computed on first show
                view = self._build(name, lambda: getattr(self, attr), wrap=False)
                if isinstance(view, pn.pane.Alert):
                    holders[i].objects = [view]
                elif sidebar is not None and hasattr(view, "controls") and hasattr(view, "content"):
                    controls[i] = self._build(name, view.controls)
                    holders[i].objects = [self._build(name, view.content)]
                else:
                    holders[i].objects = [self._build(name, lambda: view)]
            if sidebar is not None:
                sidebar.objects = [pn.pane.Markdown(f"#### {name} page")] + ([controls[i]] if i in controls else [])

        show(tabs.active)
        tabs.param.watch(lambda event: show(event.new), "active")
        return tabs

    def __panel__(self):
        return pn.Column(pn.Row(pn.pane.Markdown("## otviz latent explorer"), self.pickers()),
                         self.state.notices.panel(), self._tabs(None), sizing_mode="stretch_width")

    def template(self):
        """The served app: a FastListTemplate whose header names otviz, its version and the torch
        device, whose sidebar holds the run pickers and the shown page's controls, and whose main
        area (the pages) stretches to the window."""
        page_controls = pn.Column(sizing_mode="stretch_width")
        tabs = self._tabs(page_controls)
        tmpl = pn.template.FastListTemplate(
            title=f"otviz latent explorer {version()}", header=[pn.pane.Markdown(f"device: {device()}",
                                                                                  styles={"color": "white"})],
            sidebar=[self.pickers(), page_controls], sidebar_width=300, main_layout=None, accent="#1f77b4")
        tmpl.main.append(pn.Column(self.state.notices.panel(), tabs, sizing_mode="stretch_width"))
        return tmpl

    def _build(self, name: str, make, wrap: bool = True):
        try:
            return pn.panel(make()) if wrap else make()
        except Exception as exc:  # a page that cannot be built says why, in the page
            self.state.notices.error(f"{name} page: {describe(exc)}")
            return pn.pane.Alert(f"**{name} page could not be built:** {describe(exc)}", alert_type="danger")


def _query_string() -> str:
    """The served page's URL query (``?epochs=20…``), or "" (also outside a server)."""
    try:
        return "&".join(pn.state.session_args or {})
    except Exception:
        return ""


def version() -> str:
    from .. import __version__

    return __version__


def device() -> str:
    """"CUDA (device name)" when torch sees a GPU, else "CPU"."""
    import torch

    return f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
