"""Latent traversal page: decoded jet mosaics over the EMD-VAE latent plane (EMD-VAE Fig. 1–2)."""
from __future__ import annotations

import time
import weakref

import holoviews as hv
import numpy as np
import panel as pn
import param

from ..viz import ensure_extension
from ..viz.jets import (
    default_extent,
    jet_points,
    top_kl_dimensions,
    traversal_plot,
    traverse,
)
from . import cache
from .notify import describe, guarded, log
from .state import ExplorerState


def default_step(steps: list[dict], threshold: float = 0.5) -> int:
    """Index of the largest β with at least two informative directions (KL > threshold), else the
    smallest β: where a traversal shows physics rather than noise."""
    for i in range(len(steps) - 1, -1, -1):
        if sum(k > threshold for k in steps[i]["kl_per_dim"]) >= 2:
            return i
    return 0


class _WeakHook:
    """A Bokeh plot hook calling ``obj.method`` through a weak reference."""

    def __init__(self, obj, method: str):
        self._ref, self._method = weakref.ref(obj), method

    def __call__(self, plot, element):
        obj = self._ref()
        if obj is not None:
            getattr(obj, self._method)(plot, element)


class TraversalView(pn.viewable.Viewer):
    """Model/β selector, two latent directions and a grid centre; the 9×9 mosaic of decoded jets
    over the density of encoded jets updates live. Click a tile to enlarge its jet; double-click
    the plane to move the grid centre there."""

    state = param.ClassSelector(class_=ExplorerState)
    step = param.Selector(default=None, objects=[], doc="β step of the production pass")
    dim_x = param.Selector(default=0, objects=[0])
    dim_y = param.Selector(default=1, objects=[1])
    centre_x = param.Number(default=0.0, bounds=(-4, 4), step=0.1)
    centre_y = param.Number(default=0.0, bounds=(-4, 4), step=0.1)
    span = param.Number(default=3.0, bounds=(0.25, 4), step=0.25, doc="grid spans centre ± span")
    n = param.Integer(default=9, bounds=(3, 15))
    hold = param.Selector(default="encoded mean", objects=["encoded mean", "zero"],
                          doc="value of the other latent coordinates")
    n_jets = param.Integer(default=3000, bounds=(100, 30000), doc="encoded jets in the density")
    last_ms = param.Number(default=0.0, doc="server time of the last mosaic (decode + draw)")
    run_version = param.Integer(default=0, precedence=-1, doc="bumped on a run switch: redraws the mosaic")

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self._switching = False
        # HoloViews keeps plot hooks in its global option store: hand it a weak reference, so a
        # closed session's view (and its whole document) can be freed
        self._click_hook = _WeakHook(self, "_attach_clicks")
        self.selected = pn.pane.HoloViews(hv.Points([]), linked_axes=False)
        self.info = pn.pane.Markdown("")
        self._user_picked = False  # until a click, the selected-jet view follows the centre tile
        self._click_figures: set[str] = set()
        self.timing = pn.pane.Markdown("", css_classes=["traversal-timing"])
        state.param.watch(self._on_run, "vae_path")
        self._on_run()
        self._dmap = None

    # ------------------------------------------------------------------ model, β step, encodings
    def _steps(self):
        run = self.state.vae_run
        return run.production_steps() if run is not None else []

    @guarded("Latent traversal: switching the EMD-VAE run")
    def _on_run(self, *_):
        """A new run: its β steps, the default step, its directions and centre, applied in one
        update (a run with fewer latent directions never sees the old run's direction indices)."""
        self._user_picked = False
        steps = self._steps()
        if not steps:
            self.param.step.objects = []
            self.param.update(step=None, run_version=self.run_version + 1)
            self._clear_tile()
            return
        ht = self.state.vae_ht_mean()  # β·⟨H_T⟩: the resolution in GeV
        labels = {f"β = {s['beta']:.3g}  (≈ {s['beta'] * ht:.3g} GeV)": i for i, s in enumerate(steps)}
        self.param.step.objects = labels
        step = default_step(steps)
        self._switching = True
        try:
            self.param.update(step=step, run_version=self.run_version + 1, **self._step_view(step))
        finally:
            self._switching = False

    @param.depends("step", watch=True)
    @guarded("Latent traversal: switching the β step")
    def _on_step(self):
        if self.step is None or self._switching:
            return
        self._user_picked = False
        self.param.update(**self._step_view(self.step))

    def _step_view(self, step: int) -> dict:
        """Directions (the two highest-KL ones) and grid centre for one β step; also narrows the
        direction menus to the step's latent size."""
        st = self._steps()[step]
        latent = len(st["kl_per_dim"])
        self.param.dim_x.objects = self.param.dim_y.objects = list(range(latent))
        a, b = top_kl_dimensions(st["kl_per_dim"])
        mu = cache.encoded(self.state.vae_path, st, self.n_jets)
        lo, hi = self.param.centre_x.bounds
        clip = lambda v: float(np.clip(round(float(v), 1), lo, hi))  # noqa: E731
        return dict(dim_x=a, dim_y=b, centre_x=clip(mu[:, a].mean()), centre_y=clip(mu[:, b].mean()))

    def model(self):
        return cache.step_model(self.state.vae_path, self._steps()[self.step])

    def encoded(self) -> np.ndarray:
        return cache.encoded(self.state.vae_path, self._steps()[self.step], self.n_jets)

    def centred(self) -> bool:
        return bool(int(cache.sample_attr(self.state.vae_run.config.train_data, "centred", 0)))

    def latent_size(self) -> int:
        steps = self._steps()
        return len(steps[self.step]["kl_per_dim"]) if self.step is not None and self.step < len(steps) else 0

    def centre(self) -> np.ndarray:
        mu = self.encoded()
        c = mu.mean(0) if self.hold == "encoded mean" else np.zeros(mu.shape[1], np.float32)
        c = c.astype(np.float32)
        c[self.dim_x], c[self.dim_y] = self.centre_x, self.centre_y
        return c

    # ------------------------------------------------------------------ plots
    def traversal(self):
        return traverse(self.model(), (self.dim_x, self.dim_y), self.centre(), self.span, self.n)

    def _plot(self, step, dim_x, dim_y, centre_x, centre_y, span, n, hold, run_version=0):
        latent = self.latent_size()
        if getattr(self, "_last_plot", None) is None:
            self._last_plot = hv.Overlay([hv.RGB(np.zeros((2, 2, 4), np.uint8))])
        if step is None or dim_x == dim_y or max(dim_x, dim_y) >= latent:
            return hv.Overlay([hv.RGB(np.zeros((2, 2, 4), np.uint8))])
        try:
            self._last_plot = self._mosaic(n)
        except Exception as exc:  # shown in the page; the plot stays as it was
            self.state.notices.error(f"Latent traversal: {describe(exc)}")
            log.warning("traversal mosaic failed", exc_info=True)
        return self._last_plot

    def _mosaic(self, n):
        mu = self.encoded()  # cached per model; not part of the per-move latency
        t0 = time.perf_counter()
        trav = self.traversal()
        plot = traversal_plot(trav, mu=mu, extent=default_extent(self.centred()),
                              hooks=[self._click_hook])
        self.last_ms = (time.perf_counter() - t0) * 1e3
        self.timing.object = f"mosaic of {n}×{n} jets decoded and drawn in {self.last_ms:.0f} ms"
        self._last = trav
        if not self._user_picked:
            self._show_tile(float(trav.u[n // 2]), float(trav.v[n // 2]))
        return plot

    def _clear_tile(self):
        self.selected.object = hv.Points([])
        self.info.object = ""

    @guarded("Latent traversal: selecting a tile")
    def _on_tap(self, x=None, y=None):
        """A click on the mosaic: enlarge the jet of the tile under (x, y)."""
        if x is None or getattr(self, "_last", None) is None:
            return
        self._user_picked = True
        self._show_tile(x, y)

    def _show_tile(self, x, y):
        trav = self._last
        i = int(np.argmin(np.abs(trav.u - x)))
        j = int(np.argmin(np.abs(trav.v - y)))
        jet = trav.jets[j, i]
        a, b = trav.dims
        title = f"z{a} = {trav.u[i]:.2f}, z{b} = {trav.v[j]:.2f}"
        self.selected.object = jet_points(jet, title=title, extent=default_extent(self.centred()))
        w = jet[:, 0]
        top = np.argsort(-w)[:5]
        rows = "\n".join(f"| {w[k]:.3f} | {jet[k, 1]:+.3f} | {jet[k, 2]:+.3f} |" for k in top)
        self.info.object = (f"**Tile ({i}, {j})** at {title}: {int((w > 1e-3).sum())} particles with pT/H_T > 0.001\n\n"
                            f"| pT/H_T | η | φ |\n|---|---|---|\n{rows}")

    @guarded("Latent traversal: moving the centre")
    def _on_double_tap(self, x=None, y=None):
        if x is not None:
            self.param.update(centre_x=round(float(x), 2), centre_y=round(float(y), 2))

    def _attach_clicks(self, plot, element):
        """Bokeh hook: route clicks on the mosaic figure to the tile view (once per figure).
        (Bokeh UI events directly: HoloViews Tap streams on this DynamicMap never reached the
        server under Panel 1.10 / HoloViews 1.23.)"""
        from bokeh.events import DoubleTap, Tap

        fig = plot.state
        if fig.id in self._click_figures:
            return
        self._click_figures.add(fig.id)
        fig.on_event(Tap, lambda ev: self._on_tap(ev.x, ev.y))
        fig.on_event(DoubleTap, lambda ev: self._on_double_tap(ev.x, ev.y))

    def plot_pane(self):
        if self._dmap is None:
            ensure_extension()
            self._dmap = hv.DynamicMap(pn.bind(self._plot, self.param.step, self.param.dim_x, self.param.dim_y,
                                               self.param.centre_x, self.param.centre_y, self.param.span,
                                               self.param.n, self.param.hold, self.param.run_version))
        # no text selection: a double-click on the plane must not paint the page's selection colour over it
        return pn.pane.HoloViews(self._dmap, linked_axes=False, styles={"user-select": "none", "-webkit-user-select": "none"})

    def kl_bars(self):
        return pn.bind(self._kl_bars, self.param.step)

    def _kl_bars(self, step):
        if step is None:
            return pn.pane.Markdown("")
        ensure_extension()
        kl = np.asarray(self._steps()[step]["kl_per_dim"])
        top = np.argsort(-kl)[:12]
        bars = hv.Bars([(f"z{k}", kl[k]) for k in top], kdims=["latent direction"], vdims=["KL [nats]"]).opts(
            width=250, height=200, title="KL per direction (top 12)", color="#4c72b0", xrotation=45)
        return pn.pane.HoloViews(bars, linked_axes=False)

    def _empty(self):
        if not self._steps():
            return pn.pane.Markdown("No EMD-VAE run with finished production β steps: train one with "
                                    "`otviz train emdvae-wjets` or on the Train page.")
        return None

    def controls(self, width: int = 250):
        """The β step, directions, centre, span, grid size and the KL bars (the sidebar, 280 px; the
        run is chosen in the explorer's one "EMD-VAE run" picker)."""
        if self._empty() is not None:
            return pn.pane.Markdown("")
        half = (width - 20) // 2
        return pn.Column(
            pn.widgets.Select.from_param(self.param.step, name="β step (production pass)", width=width),
            pn.Row(pn.widgets.Select.from_param(self.param.dim_x, name="direction x", width=half),
                   pn.widgets.Select.from_param(self.param.dim_y, name="direction y", width=half)),
            pn.widgets.FloatSlider.from_param(self.param.centre_x, name="centre x", width=width),
            pn.widgets.FloatSlider.from_param(self.param.centre_y, name="centre y", width=width),
            pn.widgets.FloatSlider.from_param(self.param.span, name="± span", width=width),
            pn.widgets.IntSlider.from_param(self.param.n, name="grid size", width=width),
            pn.widgets.RadioButtonGroup.from_param(self.param.hold, width=width),
            self.kl_bars(),
            width=width + 10,
        )

    def content(self):
        """The mosaic with its help and timing, and the selected jet."""
        empty = self._empty()
        if empty is not None:
            return empty
        help_ = pn.pane.Markdown(
            "Each tile is the jet decoded at the latent point under its centre; disc area ∝ pT, tile axes "
            "(η → right, φ ↑). Blue: density of encoded training jets. **Click** a tile to enlarge it, "
            "**double-click** to move the grid centre.", width=620)
        # the selected jet goes below the mosaic where the window is too narrow for both side by side
        return pn.FlexBox(pn.Column(help_, self.plot_pane(), self.timing),
                          pn.Column(pn.pane.Markdown("#### Selected jet"), self.selected, self.info),
                          sizing_mode="stretch_width")

    def __panel__(self):
        empty = self._empty()
        return empty if empty is not None else pn.Row(self.controls(300), self.content())
