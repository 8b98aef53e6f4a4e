"""The latent explorer: the run pickers and pages of every registered model kind
(:mod:`otviz.kinds`: ``Kind.picker``, ``Kind.pages``) plus the kind-independent Train, Compare
runs and Runs pages, in a page template (header with name, version and device; sidebar with the run pickers and
the current page's controls) or, in a notebook, a column."""
from __future__ import annotations


import panel as pn

from .. import kinds
from ..background import start_thread
from .notify import describe
from .state import ExplorerState, pickers

TRAIN = kinds.Page("Train", "train", "otviz.ui.train_view:TrainView")
RUNS = kinds.Page("Runs", "runs", "otviz.ui.runs_view:RunsView")
COMPARE = kinds.Page("Compare runs", "compare", "otviz.ui.compare_view:CompareView")


SIDEBAR_WIDTH = 290  # px: at 800 px the main area keeps ~490 px

# run menus as wide as the sidebar, in a slightly smaller font: "pretrained/emdvae-wjets · EMD-VAE (shipped)" fits
PICKER_CSS = "select.bk-input { font-size: 12.5px !important; padding-left: 4px !important; padding-right: 14px !important; }"

# the tab titles wrap onto a second line instead of being cut off in a narrow window
TABS_CSS = """
:host { grid-template-columns: minmax(0, 1fr); min-width: 0; }
:host(.bk-above) .bk-headers-wrapper { flex: 1 1 0; min-width: 0; flex-wrap: wrap; overflow: visible; }
.bk-header { flex: 1 1 0; min-width: 0; flex-wrap: wrap; overflow: visible; }
.bk-tab { white-space: nowrap; }
"""

# the page is exactly as tall as the window when its content fits (no scrollbar for a few pixels of
# margin); the main area never pushes the page sideways (a too-wide plot scrolls inside it)
TEMPLATE_CSS = """
html, body { margin: 0; overflow-x: hidden; }
#main { min-width: 0; overflow-x: hidden; }
#content { min-width: 0; }
.main { min-width: 0; }
"""


def page_list() -> list[kinds.Page]:
    """Every page in tab order: the first kind's first page (where a session lands), Train, the
    other pages of the registered kinds in registration order, Compare runs, Runs. A page listed by several kinds
    is shown once; two different pages with one key are refused."""
    seen: dict[str, kinds.Page] = {TRAIN.key: TRAIN, COMPARE.key: COMPARE, RUNS.key: RUNS}
    own: list[kinds.Page] = []
    for k in kinds.kinds():
        for page in k.pages:
            if seen.get(page.key, page) != page or page.key in {"state", *vars(LatentExplorer)}:
                raise ValueError(f"pages: kind {k.name!r}'s page key {page.key!r} is already taken")
            if page.key not in seen:
                seen[page.key] = page
                own.append(page)
    return own[:1] + [TRAIN] + own[1:] + [COMPARE, RUNS]


def picker_name(labels: list[str]) -> str:
    """The run menu of kinds sharing a picker, by the words their labels start with: "OTUS run"
    for ["OTUS", "OTUS tt̄"], "A / B run" when they share none (by their first words: "OTUS / Turbo-Sim run" for
    ["OTUS", "OTUS tt̄", "Turbo-Sim"])."""
    words = [label.split() for label in labels]
    common = []
    for ws in zip(*words):
        if len(set(ws)) > 1:
            break
        common.append(ws[0])
    return (" ".join(common) if common else " / ".join(dict.fromkeys(w[0] for w in words))) + " run"


class LatentExplorer(pn.viewable.Viewer):
    """The whole dashboard; ``LatentExplorer()`` in a notebook, ``.servable()`` in apps/."""

    def __init__(self, **params):
        super().__init__(**params)
        self._pages = page_list()
        self._classes = {p.key: kinds.resolve(p.view) for p in self._pages}  # imported now: a bad name fails here
        self.state = ExplorerState()
        self._views: dict[str, pn.viewable.Viewer] = {}
        if _query_string():
            self.train  # URL parameters preset the Train page: applied (or refused, in a notice) on load

    def __getattr__(self, attr: str):
        """``app.data``, ``app.transport`` …: a page's view, made on first use (a new session
        computes only the pages it shows)."""
        classes = self.__dict__.get("_classes", {})
        if attr in classes:
            views = self.__dict__.setdefault("_views", {})
            if attr not in views:
                views[attr] = classes[attr](self.state)
            return views[attr]
        raise AttributeError(attr)

    def pages(self) -> list[tuple[str, str]]:
        """(tab name, attribute of its view) of every page, in tab order."""
        return [(p.title, p.key) for p in self._pages]

    def pickers(self):
        """One run menu per picker of the registered kinds ("OTUS run", "EMD-VAE run")."""
        return pn.Column(*[
            pn.widgets.Select.from_param(self.state.param[name], sizing_mode="stretch_width", margin=(5, 0),
                                         stylesheets=[PICKER_CSS],
                                         name=picker_name([kinds.get(k).ui_label() for k in names]))
            for name, names in pickers().items()], sizing_mode="stretch_width")

    def busy(self):
        """What is being computed for this session (a run's model outputs), with a progress bar;
        hidden when nothing is."""
        bar = pn.indicators.Progress(value=0, max=1000, width=300, bar_color="info")
        text = pn.pane.Markdown("", margin=(0, 10))
        row = pn.Row(text, bar, visible=False, sizing_mode="stretch_width")

        def update(*_):
            bar.value = int(1000 * self.state.busy_fraction)
            text.object = self.state.busy
            row.visible = bool(self.state.busy)

        self.state.param.watch(update, ["busy", "busy_fraction"])
        return row

    def _tabs(self, sidebar: pn.Column | None):
        """The page tabs. A page is built when its tab is first shown (a new session computes only
        the first page); with a ``sidebar``, a page's ``controls()`` go there while it is shown. In
        a served session a kind's page opened later is built in a thread, so the page shows its
        progress (:meth:`busy`) instead of freezing; Train and Runs are quick and built in place."""
        pages = self.pages()
        holders = [pn.Column(sizing_mode="stretch_width") for _ in pages]
        controls: dict[int, object] = {}
        tabs = pn.Tabs(*[(name, h) for (name, _), h in zip(pages, holders)], dynamic=True, sizing_mode="stretch_width",
                       stylesheets=[TABS_CSS], min_width=0)

        def side(i: int):
            if sidebar is not None and tabs.active == i:
                sidebar.objects = [pn.pane.Markdown(f"#### {pages[i][0]} page")] + ([controls[i]] if i in controls else [])

        def build(i: int):
            name, attr = pages[i]
            view = self._build(name, lambda: getattr(self, attr), wrap=False)
            if isinstance(view, pn.pane.Alert):
                return [view]
            if sidebar is not None and hasattr(view, "controls") and hasattr(view, "content"):
                controls[i] = self._build(name, view.controls)
                return [self._build(name, view.content)]
            return [self._build(name, lambda: view)]

        def attach(i: int, objects):
            holders[i].objects = objects
            side(i)

        def show(i: int, first: bool = False):
            if not holders[i].objects:  # the page's view is made and computed on first show
                doc = pn.state.curdoc
                if first or doc is None or doc.session_context is None or pages[i][1] in (TRAIN.key, RUNS.key):
                    holders[i].objects = build(i)
                else:
                    holders[i].objects = [pn.pane.Markdown(f"Preparing the {pages[i][0]} page …")]
                    start_thread(self._build_in_thread, doc, build, attach, i, name=f"otviz-page-{pages[i][1]}")
            side(i)

        show(tabs.active, first=True)
        tabs.param.watch(lambda event: show(event.new), "active")
        return tabs

    @staticmethod
    def _build_in_thread(doc, build, attach, i: int):
        from functools import partial

        from panel.io.state import set_curdoc

        with set_curdoc(doc):
            objects = build(i)
        doc.add_next_tick_callback(partial(attach, i, objects))

    def __panel__(self):
        return pn.Column(pn.Row(pn.pane.Markdown("## otviz latent explorer"), self.pickers()),
                         self.state.notices.panel(), self.busy(), self._tabs(None), sizing_mode="stretch_width")

    def template(self):
        """The served app: a FastListTemplate whose header names otviz, its version and the torch
        device, whose sidebar holds the run pickers and the shown page's controls, and whose main
        area (the pages) stretches to the window."""
        page_controls = pn.Column(sizing_mode="stretch_width")
        tabs = self._tabs(page_controls)
        tmpl = pn.template.FastListTemplate(
            title=f"otviz latent explorer {version()}", header=[pn.pane.Markdown(f"device: {device()}",
                                                                                  styles={"color": "white"})],
            sidebar=[self.pickers(), page_controls], sidebar_width=SIDEBAR_WIDTH, main_layout=None,
            accent="#1f77b4", raw_css=[TEMPLATE_CSS])
        tmpl.main.append(pn.Column(self.state.notices.panel(), self.busy(), tabs, sizing_mode="stretch_width",
                                   min_width=0, styles={"overflow-x": "auto"}))
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
