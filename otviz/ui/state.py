"""Per-session state of the latent explorer: which run and test sample are shown, and cached
model outputs on the test sample. Holds no training: runs live in :mod:`otviz.train.registry`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import param
import torch

from ..data.io import load as load_sample
from ..metrics.fidelity import derived_masses, quantities
from ..paths import PRETRAINED, RUNS, resolve
from ..train.run import load_run, run_kind


def available_runs(kind: str = "otus") -> dict[str, str]:
    """Label → run directory for the shipped pretrained runs and finished runs under runs/ of one
    kind (``otus`` or ``emdvae``)."""
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
    run_path = param.Selector(default=None, objects=[], doc="OTUS run shown on Data/Transport/Residuals")
    vae_path = param.Selector(default=None, objects=[], doc="EMD-VAE run shown on Traversal/Dimensionality")
    max_events = param.Integer(default=50_000, bounds=(1000, None), doc="test events used for plots")
    seed = param.Integer(default=0)

    def __init__(self, **params):
        super().__init__(**params)
        self._cache: dict = {}
        self.refresh_runs()

    def refresh_runs(self, select: str | None = None):
        for name, kind in (("run_path", "otus"), ("vae_path", "emdvae")):
            runs = available_runs(kind)
            self.param[name].objects = runs  # label → path
            if select is not None and str(select) in runs.values():
                setattr(self, name, str(select))
            elif getattr(self, name) not in runs.values():
                setattr(self, name, next(iter(runs.values()), None))

    @property
    def vae_run(self):
        return self._load_run(self.vae_path)

    def vae_jets(self, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
        """(jets, H_T) of the first ``n`` jets of the EMD-VAE run's training sample."""
        from ..data.jets import normalised_jets

        path = resolve(self.vae_run.config.train_data)
        key = ("jets", str(path), n)
        if key not in self._cache:
            self._cache[key] = normalised_jets(load_sample(path), n)
        return self._cache[key]

    def _load_run(self, path):
        key = ("run", path)
        if key not in self._cache:
            self._cache[key] = load_run(path) if path else None
        return self._cache[key]

    @property
    def run(self):
        return self._load_run(self.run_path)

    def test_sample(self):
        run = self.run
        path = resolve(run.config.test_data) if run else None
        key = ("test", str(path))
        if key not in self._cache:
            ds = load_sample(path)
            self._cache[key] = ds.isel(event=slice(0, self.max_events))
        return self._cache[key]

    def train_sample(self):
        path = resolve(self.run.config.train_data)
        key = ("train", str(path))
        if key not in self._cache:
            self._cache[key] = load_sample(path).isel(event=slice(0, self.max_events))
        return self._cache[key]

    def outputs(self) -> dict[str, np.ndarray]:
        """z, x of the test sample and the model's z̃ = E(x), x̃ = D(z̃), x̃′ = D(z)."""
        key = ("outputs", self.run_path, self.max_events, self.seed)
        if key not in self._cache:
            ds = self.test_sample()
            model = self.run.model
            g = torch.Generator().manual_seed(self.seed)
            z = torch.as_tensor(ds["z"].values)
            x = torch.as_tensor(ds["x"].values)
            with torch.no_grad():
                zt = model.encode(x, g)
                self._cache[key] = {
                    "z": z.numpy(), "x": x.numpy(), "z_tilde": zt.numpy(),
                    "x_tilde": model.decode(zt, g).numpy(), "x_tilde_prime": model.decode(z, g).numpy(),
                }
        return self._cache[key]

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
        z = torch.as_tensor(self.test_sample()["z"].values[event:event + 1]).expand(n, -1, -1)
        with torch.no_grad():
            return self.run.model.decode(z, torch.Generator().manual_seed(self.seed + event)).numpy()

    def clear(self):
        self._cache.clear()


def new_run_dir(prefix: str = "ui") -> Path:
    import datetime
    import uuid

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return RUNS / prefix / f"{stamp}-{uuid.uuid4().hex[:6]}"
