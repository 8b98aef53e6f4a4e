"""OT calibration of a tagger's latent space ("Mind the Gap"): config, preset, maps and the background run.

Input: a ``latents.nc`` (:func:`otviz.train.tagger.write_latents`): the tagger's z₁₂₈ of jets of a
*source* domain (simulation) and a *target* domain (data), with class labels. For each class ω
(the paper conditions the map on the simulated sample's label, Eq. 6) the jets of each domain are
split at random (``seed``) into a fit part (``fit_fraction``) and an evaluation part; an ICNN OT map
T_ω (:func:`otviz.ot.fit_ot_map`, ``map_config``) is fitted from the source's fit part to the
target's, unpaired. Then, on the evaluation parts, :func:`otviz.metrics.calibration.calibration_metrics`
compares source, target and calibrated T_ω(source) in z₁₂₈, in the head's z'₁₂₈ and in the tagger
score (the tagger run's head applied to the calibrated latents) → ``metrics.nc``; ``points.nc`` keeps
evaluation latents, their PCA (fitted on the target) and the scores for the Calibration page.

The run directory holds config.json, one resumable ``map_<class>.ckpt`` per class while fitting,
model.pt (every class's map; ``otviz.load_run(dir).model`` is a :class:`CalibrationMaps`),
history.json, metrics.nc and points.nc.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, check_bounds
from ..ot.icnn import FitCancelled, OTMap, OTMapConfig, fit_ot_map
from ..paths import resolve as resolve_path
from .config import _check_str, check_device, config_to_json, tagged_config_from_json
from .trainer import BackgroundRun, atomic_torch_save, atomic_write_json

TAG = "otcal"
METRICS_FILE = "metrics.nc"
POINTS_FILE = "points.nc"
CLASS_NAMES = {1: "W", 0: "QCD"}


def calibration_map_config(**overrides) -> OTMapConfig:
    """The map settings of the preset (see :class:`otviz.ot.icnn.OTMapConfig`): 500 outer steps at lr 10⁻³
    and the published per-feature standardisation and identity start. The tagger latents' features
    differ in scale by 30× and carry hard edges (the jet selection's mass and pT windows); with one
    common (scalar) scale the fitted maps were far worse in z₁₂₈ than per-feature scaling. On the
    shipped samples the maps close what the sim-vs-data discriminator saw (z₁₂₈ AUC at the floor,
    frozen discriminator) but a new discriminator still separates calibrated from data in z₁₂₈
    (W 0.95, QCD 0.87), as in the paper; no variant tried did better there
    (``data/pretrained/README.md``)."""
    return OTMapConfig(**{"steps": 500, "lr": 1e-3, "standardise": "feature", **overrides})


@dataclass(frozen=True)
class CalibrationModelConfig:
    dim: int = 128
    labels: tuple[int, ...] = (1, 0)
    map_config: OTMapConfig = field(default_factory=calibration_map_config)


class CalibrationMaps(nn.Module):
    """One :class:`OTMap` per class label: ``forward(z, label)`` = T_label(z);
    ``interpolate(z, label, t)`` = (1 − t) z + t T_label(z); ``transport(array, label, t)`` in NumPy."""

    def __init__(self, cfg: CalibrationModelConfig):
        super().__init__()
        self.cfg = cfg
        self.maps = nn.ModuleDict({str(lab): OTMap(cfg.dim, cfg.map_config) for lab in cfg.labels})

    def map_for(self, label) -> OTMap:
        """The map of class ``label``: its id (1 = W, 0 = QCD; ``CLASS_NAMES``) or its name ("W", "QCD")."""
        ids = {name: lab for lab, name in CLASS_NAMES.items()}
        try:
            return self.maps[str(ids[label] if isinstance(label, str) and label in ids else int(label))]
        except (KeyError, ValueError, TypeError):
            have = ", ".join(f"{lab} ({CLASS_NAMES.get(int(lab), '?')})" for lab in self.maps)
            raise ValueError(f"CalibrationMaps: no map for class {label!r} (have {have})") from None

    def forward(self, z, label):
        return self.map_for(label)(z)

    def interpolate(self, z, label, t: float):
        return self.map_for(label).interpolate(z, t)

    def transport(self, z, label, t: float = 1.0) -> np.ndarray:
        """T_label(z) of raw tagger latents z (n, 128) → (n, 128) float32, or the displacement
        interpolation (1 − t) z + t T(z); ``label``: 1 / "W" or 0 / "QCD"."""
        return self.map_for(label).transport(z, t=t)


@dataclass
class CalibrationConfig:
    """Settings of an OT calibration run; validated once, for CLI and app alike."""

    kind: str = TAG
    model: str = "otcal-wjets"
    latents: str = "data/calibration/latents.nc"
    tagger: str = ""  # the tagger run whose head scores calibrated latents; "" → the latents file's tagger_run
    source_domain: str = "sim"
    target_domain: str = "data"
    fit_fraction: float = 0.5  # of each (domain, class): fits the map; the rest evaluates it
    max_jets: int | None = None  # per (domain, class): the first N (None: all)
    mistag: float = 0.1  # working point of the efficiency comparison
    disc_hidden: tuple[int, ...] = (128, 128)
    disc_max_iter: int = 200
    eval_max_points: int | None = 15000  # per side of each discriminator comparison (half trains it)
    plot_points: int = 2000  # per (domain, class) kept in points.nc for the page (6 MB at 128-d)
    seed: int = 0
    device: str = "auto"
    map_config: OTMapConfig = field(default_factory=calibration_map_config)

    BOUNDS: ClassVar[dict] = {
        "fit_fraction": (0.05, 0.95), "max_jets": (10, 100_000_000), "mistag": (1e-4, 0.5),
        "disc_max_iter": (1, 10_000), "eval_max_points": (20, 10_000_000), "plot_points": (10, 1_000_000),
        "seed": (0, 2**32 - 1),
    }

    def __post_init__(self):
        if isinstance(self.map_config, dict):
            self.map_config = OTMapConfig.from_dict(self.map_config)
        self.disc_hidden = tuple(self.disc_hidden)

    def validate(self) -> "CalibrationConfig":
        own = "CalibrationConfig"
        if self.kind != TAG:
            raise ConfigError(f"{own}.kind = {self.kind!r}: must be {TAG!r}", "kind", self.kind, TAG)
        for name in ("model", "latents", "source_domain", "target_domain"):
            _check_str(own, name, getattr(self, name))
        if not isinstance(self.tagger, str):
            raise ConfigError(f"{own}.tagger = {self.tagger!r}: must be a run directory or ''", "tagger")
        if self.source_domain == self.target_domain:
            raise ConfigError(f"{own}.target_domain = {self.target_domain!r}: must differ from source_domain",
                              "target_domain", self.target_domain)
        check_bounds(self)
        check_device(own, self.device)
        if not self.disc_hidden or any(not isinstance(h, int) or h < 1 for h in self.disc_hidden):
            raise ConfigError(f"{own}.disc_hidden = {self.disc_hidden!r}: must be layer widths ≥ 1", "disc_hidden")
        try:
            self.map_config.validate()
        except ConfigError as exc:
            raise exc.nested("map_config")
        return self

    @property
    def model_config(self) -> CalibrationModelConfig:
        return CalibrationModelConfig(128, tuple(CLASS_NAMES), self.map_config)

    @property
    def total_epochs(self) -> int:
        return len(CLASS_NAMES) * self.map_config.steps

    def schedule_text(self) -> str:
        m = self.map_config
        return (f"schedule: one ICNN OT map per class ({', '.join(CLASS_NAMES.values())}), {m.steps} outer steps "
                f"of {m.g_steps} g- and {m.f_steps} f-updates each, batches of {m.batch}, AdamW lr {m.lr:g}; "
                f"{self.fit_fraction:.0%} of the jets fit, the rest evaluate")

    def disk_plan(self) -> tuple[int, int]:
        return 0, 1

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["map_config"] = self.map_config.to_dict()
        d["disc_hidden"] = list(self.disc_hidden)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "CalibrationConfig":
        return tagged_config_from_json(cls, text, TAG, "calibration", {"map_config": OTMapConfig.from_dict}).validate()


def otcal_wjets_config(**overrides) -> CalibrationConfig:
    """The preset: W/QCD tagger latents, simulation → data, the default map settings."""
    map_over = overrides.pop("map_config", {})
    cfg = CalibrationConfig(**overrides)
    if map_over:
        cfg.map_config = dataclasses.replace(cfg.map_config, **map_over) if isinstance(map_over, dict) else map_over
    return cfg.validate()


# ----------------------------------------------------------------------------- data


def read_latents(path):
    """The latents Dataset (z128, label, domain, …), loaded; a clear error naming the file."""
    import xarray as xr

    path = resolve_path(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such latents file (make one with `otviz latents TAGGER_RUN FILE … --out LATENTS`)")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as exc:
        raise ValueError(f"{path}: cannot be read as a latents file: {exc}") from exc
    for var in ("z128", "label", "domain"):
        if var not in ds:
            raise ValueError(f"{path}: not a latents file (no {var!r} variable)")
    return ds


def split_sets(ds, cfg: CalibrationConfig) -> dict:
    """{part: {domain: {label: rows}}} for part ∈ fit, eval, domain ∈ source, target: seeded per
    (domain, label); ``max_jets`` keeps the first N rows of each."""
    domain = np.asarray(ds["domain"].values).astype(str)
    label = np.asarray(ds["label"].values)
    out = {"fit": {}, "eval": {}}
    for role, dom in (("source", cfg.source_domain), ("target", cfg.target_domain)):
        for part in out:
            out[part][role] = {}
        for lab in CLASS_NAMES:
            rows = np.flatnonzero((domain == dom) & (label == lab))
            if cfg.max_jets:
                rows = rows[:cfg.max_jets]
            if len(rows) < 40:
                raise ValueError(f"calibration: {len(rows)} jets of class {CLASS_NAMES[lab]} in domain {dom!r} "
                                 f"(need ≥ 40); domains in the file: {sorted(set(domain))}")
            rng = np.random.default_rng([cfg.seed, lab, 0 if role == "source" else 1])
            perm = rows[rng.permutation(len(rows))]
            k = int(round(cfg.fit_fraction * len(rows)))
            out["fit"][role][lab], out["eval"][role][lab] = np.sort(perm[:k]), np.sort(perm[k:])
    return out


def tagger_path(cfg: CalibrationConfig, ds) -> Path:
    p = cfg.tagger or ds.attrs.get("tagger_run", "")
    if not p:
        raise ValueError("calibration: no tagger run (set tagger, or use a latents file that records tagger_run)")
    p = resolve_path(p)
    if not (Path(p) / "config.json").exists():
        raise FileNotFoundError(f"{p}: the tagger run directory does not exist (config field tagger)")
    return Path(p)


# ----------------------------------------------------------------------------- the run


class CalibrationRun(BackgroundRun):
    """Fit the per-class maps (resumable), then evaluate (``metrics.nc``, ``points.nc``)."""

    CONFIG = CalibrationConfig

    def __init__(self, rundir, config: CalibrationConfig | None = None, restart: bool = False):
        self._open(rundir, config, self.CONFIG, restart=restart)
        if self.fresh:
            for f in list(self.rundir.glob("map_*.ckpt")) + [self.rundir / METRICS_FILE, self.rundir / POINTS_FILE]:
                f.unlink(missing_ok=True)
        self.model: CalibrationMaps | None = None
        self.metrics = None

    def _check_data(self, config):
        ds = read_latents(config.latents)
        tagger_path(config, ds)

    def _train(self):
        cfg = self.config
        ds = read_latents(cfg.latents)
        z = np.asarray(ds["z128"].values, dtype=np.float32)
        sets = split_sets(ds, cfg)
        model = CalibrationMaps(cfg.model_config)
        self.model = model
        t0 = time.time()
        for i, lab in enumerate(CLASS_NAMES):
            name = CLASS_NAMES[lab]

            def progress(ev, name=name, i=i):
                if ev["type"] == "step":
                    rec = {k: v for k, v in ev.items() if k not in ("type", "stage")}
                    rec["class"] = name
                    rec["epoch"] = i * cfg.map_config.steps + ev["step"]
                    self.history.append(rec)
                    self._emit(type="epoch", total_epochs=cfg.total_epochs, **rec)
                elif ev["type"] == "nan_rollback":
                    self._emit(type="nan_rollback", epoch=i * cfg.map_config.steps + ev["step"], retries=ev["retries"],
                               lr_scale=ev["lr_scale"])

            ckpt = self.rundir / f"map_{name}.ckpt"
            try:
                fitted = fit_ot_map(z[sets["fit"]["source"][lab]], z[sets["fit"]["target"][lab]],
                                    progress=progress, cancel=self._cancel.is_set, checkpoint=ckpt,
                                    **{**cfg.map_config.to_dict(), "device": cfg.device})
            except FitCancelled:
                return
            model.maps[str(lab)].load_state_dict(fitted.state_dict())
            model.maps[str(lab)].history = fitted.history
        self.history = [{**h, "class": CLASS_NAMES[lab]} for lab in CLASS_NAMES for h in model.maps[str(lab)].history]
        atomic_write_json(self.rundir / "history.json", self.history)
        atomic_torch_save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "history": self.history, "fit_seconds": time.time() - t0}, self.rundir / "model.pt")
        for f in self.rundir.glob("map_*.ckpt"):
            f.unlink(missing_ok=True)
        self._emit(type="evaluating")
        self.metrics = evaluate_calibration(self.rundir, model=model, latents=ds, sets=sets)
        self._emit(type="evaluation", auc=summary(self.metrics))


def _outputs(tagger, z):
    from ..models.tagger import tagger_outputs_from_latent

    return tagger_outputs_from_latent(tagger, z)


def evaluate_calibration(rundir, model: CalibrationMaps | None = None, latents=None, sets=None):
    """Compute and write ``metrics.nc`` and ``points.nc`` of a calibration run directory."""
    import xarray as xr

    from ..atomic import atomic_path
    from ..metrics.calibration import calibration_metrics, fit_pca, project
    from .run import load_run, read_config

    rundir = Path(rundir)
    cfg = read_config(rundir)
    if model is None:
        model = load_run(rundir).model
    ds = latents if latents is not None else read_latents(cfg.latents)
    sets = sets or split_sets(ds, cfg)
    tagger = load_run(tagger_path(cfg, ds)).model
    z = np.asarray(ds["z128"].values, dtype=np.float32)
    lat, outs = {"sim": {}, "data": {}, "calibrated": {}}, {"sim": {}, "data": {}, "calibrated": {}}
    for lab in CLASS_NAMES:
        lat["sim"][lab] = z[sets["eval"]["source"][lab]]
        lat["data"][lab] = z[sets["eval"]["target"][lab]]
        lat["calibrated"][lab] = model.transport(lat["sim"][lab], lab)
        for dom in lat:
            outs[dom][lab] = _outputs(tagger, lat[dom][lab])
    metrics = calibration_metrics(lat, outs, CLASS_NAMES, mistag=cfg.mistag, seed=cfg.seed, hidden=cfg.disc_hidden,
                                  max_iter=cfg.disc_max_iter, max_points=cfg.eval_max_points)
    metrics.attrs.update({"latents": str(cfg.latents), "tagger": str(tagger_path(cfg, ds)),
                          "source_domain": cfg.source_domain, "target_domain": cfg.target_domain})
    with atomic_path(rundir / METRICS_FILE) as tmp:
        metrics.to_netcdf(tmp, engine="h5netcdf")

    # the page's points: evaluation latents of each (domain, class), the PCA fitted on the target
    rng = np.random.default_rng(cfg.seed)
    n_keep = {lab: min(cfg.plot_points, len(lat["sim"][lab]), len(lat["data"][lab])) for lab in CLASS_NAMES}
    pick = {(dom, lab): rng.permutation(len(lat[dom][lab]))[:n_keep[lab]] for dom in ("sim", "data") for lab in CLASS_NAMES}
    pts, scores = [], []
    for lab in CLASS_NAMES:
        src = lat["sim"][lab][pick[("sim", lab)]]
        pts.append(np.stack([src, lat["data"][lab][pick[("data", lab)]],
                             lat["calibrated"][lab][pick[("sim", lab)]]]))
        scores.append(np.stack([outs["sim"][lab]["score"][pick[("sim", lab)]],
                                outs["data"][lab]["score"][pick[("data", lab)]],
                                outs["calibrated"][lab]["score"][pick[("sim", lab)]]]))
    n_min = min(n_keep.values())
    z_pts = np.stack([p[:, :n_min] for p in pts])  # (label, domain, point, latent)
    s_pts = np.stack([s[:, :n_min] for s in scores])
    pca = {lab: fit_pca(lat["data"][lab], 5) for lab in CLASS_NAMES}
    points = xr.Dataset(
        {"z128": (("label", "domain", "point", "latent"), z_pts.astype(np.float32)),
         "score": (("label", "domain", "point"), s_pts.astype(np.float32)),
         "pca_mean": (("label", "latent"), np.stack([pca[lab][0] for lab in CLASS_NAMES])),
         "pca_projection": (("label", "latent", "component"), np.stack([pca[lab][1] for lab in CLASS_NAMES]))},
        coords={"label": [CLASS_NAMES[lab] for lab in CLASS_NAMES], "label_id": ("label", list(CLASS_NAMES)),
                "domain": ["sim", "data", "calibrated"], "component": [f"PC{k + 1}" for k in range(5)]},
        attrs={"description": "evaluation latents (not used in the fit) of simulation, data and calibrated "
                              "simulation (calibrated[i] = T(sim[i])); PCA: 5 whitened components fitted on the data; "
                              "u = (z - pca_mean) @ pca_projection"})
    with atomic_path(rundir / POINTS_FILE) as tmp:
        points.to_netcdf(tmp, engine="h5netcdf")
    return metrics


def summary(metrics) -> dict:
    """{(class, space, comparison): AUC} as flat 'W z128 sim vs data' keys."""
    return {f"{lab} {sp} {comp}": float(metrics["auc"].sel(label=lab, space=sp, comparison=comp))
            for lab in metrics.label.values for sp in metrics.space.values for comp in metrics.comparison.values}


def read_points(rundir):
    import xarray as xr

    f = Path(rundir) / POINTS_FILE
    if not f.exists():
        return None
    with xr.open_dataset(f, engine="h5netcdf") as ds:
        return ds.load()
