"""Per-session state of the latent explorer: which runs and how many test events are shown. The
data itself is shared between sessions (:mod:`otviz.ui.cache`); training lives in
:mod:`otviz.train.registry`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import param
import torch

from .. import kinds
from ..metrics.fidelity import derived_masses, quantities
from ..paths import PRETRAINED, RUNS
from ..train.run import run_kind
from . import cache
from .notify import Notices


def run_label(path, base, shipped: bool = False) -> str:
    """How a run directory is named in a run menu: its name relative to its root, its kind and,
    for a trained (not shipped) run, when its weights were written, e.g.
    "ui/20261123-164414-ab12cd · OTUS · 2026-11-23 16:44" or "pretrained/otus-zee · OTUS (shipped)"."""
    import datetime

    d = Path(path)
    name = str(d.relative_to(base))
    cfg = _config_dict(d)
    k = kinds.for_config_dict(cfg)
    what = k.ui_label(cfg) if k is not None else "unknown kind"
    if shipped:
        return f"pretrained/{name} · {what} (shipped)"
    try:
        when = datetime.datetime.fromtimestamp((d / "model.pt").stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    except OSError:
        return f"{name} · {what}"
    return f"{name} · {what} · {when}"


def _config_dict(d: Path) -> dict:
    import json

    try:
        cfg = json.loads((d / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def available_runs(*kind_names: str) -> dict[str, str]:
    """Label (:func:`run_label`) → run directory of the shipped pretrained runs and the finished runs
    under the runs root (``OTVIZ_RUNS``) of the given registered kinds (:mod:`otviz.kinds`): shipped
    runs first, each group in the order of ``kind_names`` (the registry's), then by path — so the
    first run, a page's default, is the first kind's shipped run (otus-zee before otus-ttbar)."""
    out = {}
    for base, shipped in ((PRETRAINED, True), (RUNS, False)):
        if not base.exists():
            continue
        found = [(kind_names.index(k), cfg.parent) for cfg in base.rglob("config.json")
                 if (cfg.parent / "model.pt").exists() and (k := run_kind(cfg.parent)) in kind_names]
        for _, d in sorted(found):
            out[run_label(d, base, shipped)] = str(d)
    return out


def pickers() -> dict[str, list[str]]:
    """Run picker (``Kind.picker``, an :class:`ExplorerState` parameter) → the kinds it lists, in
    registration order (kinds may share a picker)."""
    out: dict[str, list[str]] = {}
    for k in kinds.kinds():
        if k.picker:
            out.setdefault(k.picker, []).append(k.name)
    return out


class ExplorerState(param.Parameterized):
    """What one session shows: the selected runs, ``max_events`` and ``seed``. The data behind it
    (samples, loaded runs, model outputs) lives in the process-wide :mod:`otviz.ui.cache`, keyed
    by path, file time, ``max_events`` and ``seed``, so sessions share it and hold no copies."""

    run_path = param.Selector(default=None, objects=[], doc="OTUS run shown on Data/Transport/Residuals")
    vae_path = param.Selector(default=None, objects=[], doc="EMD-VAE run shown on Traversal/Dimensionality")
    max_events = param.Integer(default=50_000, bounds=(1000, None), doc="test events used for plots")
    seed = param.Integer(default=0)
    busy = param.String(default="", doc="what is being computed for this session now ('' when nothing)")
    busy_fraction = param.Number(default=0.0, bounds=(0.0, 1.0), doc="how much of it is done")

    def __init__(self, **params):
        super().__init__(**params)
        self.notices = Notices()
        self.refresh_runs()

    def refresh_runs(self, select: str | None = None):
        for name, names in pickers().items():  # each kind's run picker (``Kind.picker``)
            if name not in self.param:  # a newly registered kind's picker
                type(self).param.add_parameter(name, param.Selector(default=None, objects=[]))
            runs = available_runs(*names)
            self.param[name].objects = runs  # label → path
            if select is not None and str(select) in runs.values():
                setattr(self, name, str(select))
            elif getattr(self, name) not in runs.values():
                setattr(self, name, next(iter(runs.values()), None))

    @property
    def vae_run(self):
        return cache.run(self.vae_path) if self.vae_path else None

    def vae_jets(self, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
        """(jets, H_T) of the first ``n`` jets of the EMD-VAE run's training sample (read-only)."""
        return cache.jets(self.vae_run.config.train_data, n)

    def vae_ht_mean(self) -> float:
        """⟨H_T⟩ in GeV of the EMD-VAE run's training jets (β·⟨H_T⟩ is the resolution in GeV):
        the run's stored value (:func:`otviz.train.products.training_ht_mean`), computed once."""
        from ..train.products import training_ht_mean

        run = self.vae_run
        return cache.CACHE.get(("ht_mean", str(run.path), str(run.config.train_data)), lambda: training_ht_mean(run))

    @property
    def run(self):
        return cache.run(self.run_path) if self.run_path else None

    def test_sample(self):
        """The first ``max_events`` events of the OTUS run's test sample (shared, read-only)."""
        return cache.sample(self.run.config.test_data, self.max_events)

    def train_sample(self):
        return cache.sample(self.run.config.train_data, self.max_events)

    @property
    def n_test(self) -> int:
        """Events of the test sample shown (``max_events`` or fewer)."""
        return int(self.test_sample().sizes["event"]) if self.run else 0

    def outputs(self) -> dict[str, np.ndarray]:
        """z, x of the test sample and the model's z̃ = E(x), x̃ = D(z̃), x̃′ = D(z) (read-only)."""
        try:
            return cache.otus_outputs(self.run_path, self.max_events, self.seed, progress=self.report)
        finally:
            self.param.update(busy="", busy_fraction=0.0)

    def report(self, done: int, total: int, message: str) -> None:
        """A :mod:`otviz.progress` callback: shows ``message`` and ``done / total`` in the page."""
        self.param.update(busy_fraction=min(1.0, done / total) if total else 0.0,
                          busy=f"Computing the run's model outputs: {message} ({done}/{total})")

    def particles(self, space: str) -> list[str]:
        ds = self.test_sample()
        return [str(p) for p in ds[f"{space}_particle"].values]

    def quantity_names(self, space: str) -> list[str]:
        parts = self.particles(space)
        return list(quantities(np.zeros((1, len(parts), 4)), parts, derived_masses(parts)))

    def quantity(self, space: str, array_name: str, name: str) -> np.ndarray:
        arr = self.outputs()[array_name]
        parts = self.particles(space)
        return quantities(arr, parts, derived_masses(parts))[name]

    def decode_many(self, event: int, n: int = 2000) -> np.ndarray:
        """One test z decoded ``n`` times: samples of the learned p_D(x|z)."""
        if not 0 <= event < self.n_test:
            raise IndexError(f"test event {event} does not exist: the test sample shown has events 0 … {self.n_test - 1}")
        z = torch.from_numpy(np.array(self.test_sample()["z"].values[event:event + 1])).expand(n, -1, -1)
        with torch.no_grad():
            return self.run.model.decode(z, torch.Generator().manual_seed(self.seed + event)).numpy()


def new_run_dir(prefix: str = "ui") -> Path:
    import datetime
    import uuid

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return RUNS / prefix / f"{stamp}-{uuid.uuid4().hex[:6]}"
