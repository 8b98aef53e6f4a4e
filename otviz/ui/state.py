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


def available_runs(kind: str) -> dict[str, str]:
    """Label → run directory for the shipped pretrained runs and finished runs under runs/ of one
    registered kind (:mod:`otviz.kinds`, e.g. ``otus`` or ``emdvae``)."""
    out = {}
    for base, tag in ((PRETRAINED, "pretrained"), (RUNS, "runs")):
        if not base.exists():
            continue
        for cfg in sorted(base.rglob("config.json")):
            d = cfg.parent
            if (d / "model.pt").exists() and run_kind(d) == kind:
                out[f"{tag}/{d.relative_to(base)}"] = str(d)
    return out


class ExplorerState(param.Parameterized):
    """What one session shows: the selected runs, ``max_events`` and ``seed``. The data behind it
    (samples, loaded runs, model outputs) lives in the process-wide :mod:`otviz.ui.cache`, keyed
    by path, file time, ``max_events`` and ``seed``, so sessions share it and hold no copies."""

    run_path = param.Selector(default=None, objects=[], doc="OTUS run shown on Data/Transport/Residuals")
    vae_path = param.Selector(default=None, objects=[], doc="EMD-VAE run shown on Traversal/Dimensionality")
    max_events = param.Integer(default=50_000, bounds=(1000, None), doc="test events used for plots")
    seed = param.Integer(default=0)

    def __init__(self, **params):
        super().__init__(**params)
        self.notices = Notices()
        self.refresh_runs()

    def refresh_runs(self, select: str | None = None):
        for kind in kinds.kinds():  # each kind's run picker (``Kind.picker``)
            name = kind.picker
            if name is None or name not in self.param:
                continue
            runs = available_runs(kind.name)
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
        return cache.otus_outputs(self.run_path, self.max_events, self.seed)

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
