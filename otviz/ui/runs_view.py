"""Runs page: every run on disk (:mod:`otviz.train.catalog`) with open, resume, cancel and delete."""
from __future__ import annotations

import panel as pn
import param

from ..train import catalog
from .state import ExplorerState

COLUMNS = ["name", "kind", "status", "metrics", "size_mb", "date", "data"]
TITLES = {"name": "run", "kind": "kind", "status": "status", "metrics": "key metrics (floor)", "size_mb": "size [MB]",
          "date": "date", "data": "data"}


class RunsView(pn.viewable.Viewer):
    """The run list; select a row, then Open (show it on its pages), Resume, Cancel or Delete
    (asks for confirmation; shipped runs are never deleted)."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.rows: list[catalog.RunInfo] = []
        self.table = pn.widgets.Tabulator(disabled=True, show_index=False, selectable=1, sizing_mode="stretch_width",
                                          titles=TITLES, height=360, layout="fit_data_stretch",
                                          # long cells wrap inside a bounded column instead of running off the page
                                          widths={"metrics": 340, "data": 260},
                                          formatters={"metrics": {"type": "textarea"}, "data": {"type": "textarea"}})
        self.open_button = pn.widgets.Button(name="Open", button_type="primary", width=90)
        self.resume_button = pn.widgets.Button(name="Resume", width=90)
        self.cancel_button = pn.widgets.Button(name="Cancel run", button_type="warning", width=100)
        self.delete_button = pn.widgets.Button(name="Delete…", button_type="danger", width=90)
        self.refresh_button = pn.widgets.Button(name="Refresh", width=90)
        self.confirm_button = pn.widgets.Button(name="Yes, delete", button_type="danger", width=120, visible=False)
        self.keep_button = pn.widgets.Button(name="No, keep it", width=120, visible=False)
        self.message = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.open_button.on_click(lambda _: self._act(self.open))
        self.resume_button.on_click(lambda _: self._act(self.resume))
        self.cancel_button.on_click(lambda _: self._act(self.cancel))
        self.delete_button.on_click(lambda _: self._act(self.ask_delete))
        self.confirm_button.on_click(lambda _: self._act(self.delete))
        self.keep_button.on_click(lambda _: self._hide_confirm("Kept."))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.table.param.watch(lambda _: self._update_buttons(), "selection")
        self.refresh()

    def refresh(self):
        import pandas as pd

        self.rows = catalog.list_runs()
        self.table.value = pd.DataFrame([{c: getattr(r, c) for c in COLUMNS} for r in self.rows], columns=COLUMNS)
        self._update_buttons()

    def _update_buttons(self):
        """Enable only the actions that can work on the selected row: Resume for a run of runs/ that
        stopped before its end, Cancel for a queued or training run, Delete for a run of runs/ that
        is not training; Open for any run."""
        sel = [i for i in (self.table.selection or []) if i < len(self.rows)]
        r = self.rows[sel[0]] if sel else None
        self.open_button.disabled = r is None
        self.resume_button.disabled = r is None or r.shipped or r.status == "done" or r.status in catalog.ACTIVE
        self.cancel_button.disabled = r is None or r.status not in catalog.ACTIVE
        self.delete_button.disabled = r is None or r.shipped or r.status in catalog.ACTIVE

    def selected(self) -> catalog.RunInfo:
        sel = self.table.selection
        if not sel:
            raise ValueError("Select a run in the table first.")
        return self.rows[sel[0]]

    def select(self, name: str):
        """Select the row of run ``name`` (e.g. "pretrained/otus-zee")."""
        self.table.selection = [i for i, r in enumerate(self.rows) if r.name == name][:1]

    def _act(self, fn):
        try:
            fn()
        except Exception as exc:  # a refused action says why, in the page
            self.message.object = f"**Not done:** {sentence(exc)}"

    def open(self):
        r = self.selected()
        self.state.refresh_runs(select=r.path)
        self.message.object = f"Opened `{r.name}`: its pages now show it."

    def resume(self):
        from ..train import registry
        from ..train.run import read_config

        r = self.selected()
        if r.shipped:
            raise ValueError(f"`{r.name}` is a shipped run and is not trained further: start a new run on the "
                             "Train page instead.")
        if r.status in catalog.ACTIVE:
            raise ValueError(f"`{r.name}` is already {r.status}.")
        if r.status == "done":
            raise ValueError(f"`{r.name}` has finished training: there is nothing to resume.")
        registry.submit(r.path, read_config(r.path), label=f"resumed {r.name}")
        self.message.object = f"Resumed `{r.name}`: follow it on the Train page's run list."
        self.refresh()

    def cancel(self):
        from ..train import registry

        r = self.selected()
        if not registry.cancel(r.path):
            raise ValueError(f"`{r.name}` is not queued or training on this server.")
        self.message.object = f"Cancelled `{r.name}`."
        self.refresh()

    def ask_delete(self):
        r = self.selected()
        if r.shipped:
            raise ValueError(f"`{r.name}` is a shipped run (under data/pretrained) and is never deleted.")
        if r.status in catalog.ACTIVE:
            raise ValueError(f"`{r.name}` is {r.status}: cancel it before deleting it.")
        self._pending = r
        self.confirm_button.visible = self.keep_button.visible = True
        self.message.object = f"Delete `{r.name}` ({r.size_mb:.1f} MB on disk)? This cannot be undone."

    def delete(self):
        r = getattr(self, "_pending", None)
        if r is None:
            raise ValueError("There is nothing to delete.")
        freed = catalog.delete_run(r.path)
        self._pending = None
        self.refresh()
        self.state.refresh_runs()
        self._hide_confirm(f"Deleted `{r.name}` ({freed / 2 ** 20:.1f} MB freed).")

    def _hide_confirm(self, text: str):
        self.confirm_button.visible = self.keep_button.visible = False
        self.message.object = text

    def controls(self):
        return pn.Column(pn.pane.Markdown("Select a run in the table, then:"),
                         pn.Row(self.open_button, self.resume_button), pn.Row(self.cancel_button, self.delete_button),
                         self.refresh_button)

    def content(self):
        return pn.Column(self.message, pn.Row(self.confirm_button, self.keep_button), self.table,
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")


def sentence(exc: BaseException) -> str:
    """An error as a plain sentence for the page: its message, capitalised and ending with a full
    stop, never the exception's class name."""
    text = str(exc).strip() or "the action failed"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
