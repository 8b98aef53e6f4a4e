"""Neural optimal-transport maps: input-convex neural networks (ICNN) trained on the dual ("Mind the Gap").

**Brenier.** For the squared Euclidean cost the OT map from P (source) to Q (target) is the gradient
of a convex function, T = ∇ψ. With two convex potentials f, g the dual problem (Makkuva et al. 2020;
"Mind the Gap" Eq. 10) is

    min_f max_g  V(f, g),   V = E_Q f(y) + E_P [⟨x, ∇g(x)⟩ − f(∇g(x))],

and at the optimum T = ∇g. Alternating steps (``../shared/REFERENCE.md`` §3): ``g_steps`` steps
minimising E_P[f(∇g(x)) − ⟨∇g(x), x⟩], then ``f_steps`` steps minimising E_Q f(y) − E_P f(∇g(x)).
At the optimum W₂² = E‖x‖² + E‖y‖² − 2V: ``w2_dual`` in the history is that estimate, next to the
measured transport cost E‖T(x) − x‖² (``cost``) — they agree when the fit has converged.

**ICNN** (Amos et al. 2017; layer i: z_{i+1} = σ(W_i^z⁺ z_i + W_i^x x + b_i), z₀ = 0):
W^z⁺ = softplus(W)/fan-in (positive), first layer σ = symmetric softplus softplus(u) − u/2 (convex),
later layers σ = zeroed softplus softplus(u) − ln 2 (convex, non-decreasing), output positive
combination of the last layer plus a linear term in x. The potential is

    ψ(x) = a ‖x‖²/2 + ½ ‖L x‖² + b · ICNN(x),   a, b = softplus(·) > 0,

convex in x. The ½‖Lx‖² term (an (r × d) ``L``, ``quadratic_rank`` = r; Korotin et al.'s
"ConvexQuadratic" idea) is otviz's addition: with it every affine OT map — the Gaussian case — is
exactly representable, and the ICNN only has to learn the non-linear remainder. ``quadratic_rank=0``
is the published potential.

**Standardisation.** Inputs are centred per domain and scaled. ``"scalar"`` (default) divides both
domains by one common scale s, s² = (tr Σ_P + tr Σ_Q)/(2d): then T(x) = μ_Q + s ∇ψ((x − μ_P)/s) is
still the gradient of a convex function of x, i.e. the Euclidean OT map. ``"feature"`` (the published
choice) scales each feature of each domain by its own σ: easier on badly scaled latents, but the map
is then OT for the cost in standardised units, not in the original ones. ``"whiten"`` rotates both
domains onto the principal axes V of the pooled covariance ½(Σ_P + Σ_Q) = V Λ Vᵀ and divides axis k
by √λ_k (one transform for both, each domain centred on its own mean): T(x) = μ_Q + V(√Λ ∇ψ(u)),
u = Λ^{-1/2} Vᵀ (x − μ_P), is the OT map for the Mahalanobis cost (x − y)ᵀ Σ⁻¹ (x − y). On a latent
that fills a thin curved sheet (a tagger's pre-activation layer: a few axes carry nearly all the
variance) the other modes let the map's small errors across the sheet go unpenalised, and a
discriminator on whitened coordinates then separates calibrated from target almost perfectly;
whitening gives every axis unit weight. (On the shipped tagger latents it did not fix that: the
whitened fit was worse in z₁₂₈ and still far from data in the whitened view — data/pretrained/README.md.)

**Initialisation.** The published fit pre-trains ∇g and ∇f to the identity (``init="identity"``).
``init="gaussian"`` (otviz's addition) starts both at the closed-form Gaussian OT map between the
standardised samples, ∇g(u) = A u with A = Σ_P^{-1/2}(Σ_P^{1/2} Σ_Q Σ_P^{1/2})^{1/2} Σ_P^{-1/2}
(:mod:`otviz.ot.gaussian`) and ∇f(v) = A⁻¹ v: the quadratic terms are set to it (a·1 + LᵀL = A) and the
pre-training regresses ∇ψ on it, so the dual steps only have to learn what is not Gaussian. On a
16-d Gaussian pair one dual step then leaves 0.3 % L2-UVP, against 11 % from the identity.

Public API: :func:`fit_ot_map` (``source``, ``target``: (n, d), (m, d) unpaired samples) →
:class:`OTMap` (``T(x)``, differentiable, any device; ``interpolate(x, t)``; ``save``) and
:func:`load_ot_map`. Fits are seeded, checkpoint atomically, resume, roll back NaN losses with a halved
learning rate (bounded retries), report progress and can be cancelled.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_bounds, check_choice

FORMAT = "otviz-ot-map"
STANDARDISE = ("scalar", "feature", "whiten", "none")
INIT = ("identity", "gaussian")
GAUSSIAN_RIDGE = 1e-6  # added to both covariances of the Gaussian start, × their mean variance


def _inv_softplus(v: float) -> float:
    return float(math.log(math.expm1(v)))


@dataclass(frozen=True)
class OTMapConfig:
    """Architecture and training of :func:`fit_ot_map`. Defaults: REFERENCE §3 (AdamW lr 5e-4, cosine
    schedule, clip 10, batch 1024, 10 g-steps then 4 f-steps) except the width and the rate: the
    published 2048 × 2 at lr 5e-4 for 512 × 1000 steps is a GPU budget; 64 × 2 at lr 2e-3 with the
    quadratic term fits the 128-d Gaussian benchmark to 0.3 % L2-UVP in 300 steps on one CPU core
    (``benchmarks/ot_map.py``; at lr 5e-4 and 256 × 2 the 16-d case is still at 1.4 % after 300)."""

    hidden: tuple[int, ...] = (64, 64)
    quadratic_rank: int | None = None  # None: full rank (d); 0: off (the published ψ)
    standardise: str = "scalar"  # scalar | feature | whiten | none (module docstring)
    steps: int = 500  # outer steps (each: g_steps g-updates then f_steps f-updates)
    g_steps: int = 10
    f_steps: int = 4
    batch: int = 1024
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    pretrain_steps: int = 100  # fit ∇g and ∇f to the starting map first
    init: str = "identity"  # identity | gaussian: the starting map (module docstring, "Initialisation")
    n_maps: int = 1  # a composition T_n ∘ … ∘ T_1, each fitted on the previous one's output
    validation_fraction: float = 0.1
    log_every: int = 10
    checkpoint_every: int = 100
    max_nan_retries: int = 3
    seed: int = 0
    device: str = "auto"

    BOUNDS: ClassVar[dict] = {
        "quadratic_rank": (0, 100_000), "steps": (1, 10_000_000), "g_steps": (1, 1000), "f_steps": (1, 1000),
        "batch": (2, 1_000_000), "lr": (1e-8, 1.0), "weight_decay": (0.0, 10.0), "grad_clip": (0.0, 1e6),
        "pretrain_steps": (0, 1_000_000), "n_maps": (1, 50), "validation_fraction": (0.0, 0.5),
        "log_every": (1, 1_000_000), "checkpoint_every": (1, 10_000_000), "max_nan_retries": (0, 100),
        "seed": (0, 2**63 - 1),
    }

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))

    def validate(self) -> "OTMapConfig":
        check_bounds(self)
        check_choice(type(self).__name__, "standardise", self.standardise, STANDARDISE)
        check_choice(type(self).__name__, "init", self.init, INIT)
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 100_000
                                  for h in self.hidden):
            raise ConfigError(f"OTMapConfig.hidden = {self.hidden!r}: must be one or more layer widths in 1 … 100000",
                              "hidden", self.hidden, "widths 1 … 100000")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"OTMapConfig.device = {self.device!r}: must be auto, cpu or cuda[:N]", "device",
                              self.device, "auto | cpu | cuda")
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OTMapConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"OTMapConfig: unknown option {unknown[0]!r} (options: {', '.join(sorted(names))})",
                              unknown[0])
        return cls(**d).validate()


# ----------------------------------------------------------------------------- the convex potential


def symmetric_softplus(u):
    """softplus(u) − u/2 = log(2 cosh(u/2)): convex and even (the first ICNN layer)."""
    return F.softplus(u) - 0.5 * u


def zeroed_softplus(u):
    """softplus(u) − ln 2: convex, non-decreasing, 0 at 0 (the later ICNN layers)."""
    return F.softplus(u) - math.log(2.0)


class ConvexPotential(nn.Module):
    """ψ(x) = a‖x‖²/2 + ½‖Lx‖² + b·ICNN(x), convex in x (module docstring); ``gradient(x)`` = ∇ψ(x)."""

    def __init__(self, dim: int, hidden=(256, 256), quadratic_rank: int | None = None, b_init: float = 1.0):
        super().__init__()
        hidden = tuple(hidden)
        self.dim = dim
        self.wx = nn.ModuleList([nn.Linear(dim, h) for h in hidden])
        self.wz = nn.ParameterList([nn.Parameter(torch.randn(h_out, h_in) * 0.1)
                                    for h_in, h_out in zip(hidden[:-1], hidden[1:])])
        self.out_z = nn.Parameter(torch.randn(1, hidden[-1]) * 0.1)
        self.out_x = nn.Linear(dim, 1)
        self.a_raw = nn.Parameter(torch.tensor(_inv_softplus(1.0)))
        self.b_raw = nn.Parameter(torch.tensor(_inv_softplus(b_init)))
        rank = dim if quadratic_rank is None else int(quadratic_rank)
        self.quad = nn.Parameter(torch.randn(rank, dim) * (0.1 / math.sqrt(dim))) if rank > 0 else None

    @staticmethod
    def _positive(w):
        return F.softplus(w) / w.shape[1]

    def forward(self, x):
        h = symmetric_softplus(self.wx[0](x))
        for wz, wx in zip(self.wz, self.wx[1:]):
            h = zeroed_softplus(F.linear(h, self._positive(wz)) + wx(x))
        icnn = (F.linear(h, self._positive(self.out_z)) + self.out_x(x)).squeeze(-1)
        psi = F.softplus(self.a_raw) * 0.5 * (x * x).sum(-1) + F.softplus(self.b_raw) * icnn
        if self.quad is not None:
            psi = psi + 0.5 * (x @ self.quad.T).pow(2).sum(-1)
        return psi

    def gradient(self, x, create_graph: bool = False):
        """∇ψ(x) by autograd; ``create_graph`` keeps the graph for training through it."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            psi = self(x)
            (g,) = torch.autograd.grad(psi.sum(), x, create_graph=create_graph)
        return g


class OTMapStage(nn.Module):
    """One fitted map T(x) = μ_Q + V(s_Q ⊙ ∇ψ(Vᵀ(x − μ_P)/s_P)) (standardisation buffers stored;
    ``rotation`` V is the identity except for ``standardise="whiten"``)."""

    def __init__(self, dim: int, hidden, quadratic_rank):
        super().__init__()
        self.potential = ConvexPotential(dim, hidden, quadratic_rank)
        for name in ("source_mean", "target_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("source_scale", "target_scale"):
            self.register_buffer(name, torch.ones(dim))
        self.register_buffer("rotation", torch.eye(dim))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "rotation", torch.eye(self.rotation.shape[0]))  # maps saved before it
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def standardise_source(self, x):
        """u = Vᵀ(x − μ_P)/s_P, the potential's input."""
        return ((x - self.source_mean) @ self.rotation) / self.source_scale

    def standardise_target(self, y):
        return ((y - self.target_mean) @ self.rotation) / self.target_scale

    def unstandardise_target(self, v):
        return self.target_mean + (self.target_scale * v) @ self.rotation.T

    def forward(self, x):
        g = self.potential.gradient(self.standardise_source(x), create_graph=x.requires_grad)
        return self.unstandardise_target(g)


class OTMap(nn.Module):
    """A fitted OT map T (a composition of :class:`OTMapStage` when ``n_maps`` > 1).

    ``T(x)`` takes an (n, d) tensor on the map's device and returns T(x), differentiable in x when x
    requires grad. ``interpolate(x, t)`` = (1 − t)x + t T(x), McCann's displacement interpolation.
    ``transport(array)`` maps a NumPy array in batches. ``history`` holds the fit's logged steps."""

    def __init__(self, dim: int, config: OTMapConfig, history: list | None = None):
        super().__init__()
        self.dim, self.config = dim, config
        self.stages = nn.ModuleList([OTMapStage(dim, config.hidden, config.quadratic_rank)
                                     for _ in range(config.n_maps)])
        self.history = list(history or [])

    def forward(self, x):
        if x.shape[-1] != self.dim:
            raise ValueError(f"OTMap: inputs have {x.shape[-1]} features, the map was fitted on {self.dim}")
        for stage in self.stages:
            x = stage(x)
        return x

    def interpolate(self, x, t: float):
        """(1 − t)·x + t·T(x): t = 0 the source, t = 1 the transported points (a tensor; a NumPy
        array goes through :meth:`transport`)."""
        if not torch.is_tensor(x):
            return self.transport(x, t=t)
        return (1.0 - t) * x + t * self(x)

    @torch.no_grad()
    def transport(self, x, batch: int = 8192, t: float = 1.0) -> np.ndarray:
        """T(x) (or the interpolation at ``t``) of an (n, d) array, float32, in batches."""
        dev = next(self.parameters()).device
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"OTMap.transport: x must be (n, {self.dim}); got shape {x.shape}")
        out = np.empty_like(x)
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(x[i:i + batch], device=dev)
            out[i:i + batch] = self.interpolate(xb, t).cpu().numpy()
        return out

    def save(self, path) -> Path:
        """Write the map atomically (temporary file + rename)."""
        from ..train.trainer import atomic_torch_save

        path = Path(path)
        atomic_torch_save({"format": FORMAT, "version": 1, "dim": self.dim, "config": self.config.to_dict(),
                           "state": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                           "history": self.history}, path)
        return path


def load_ot_map(path, device: str = "cpu") -> OTMap:
    """An :class:`OTMap` saved by :meth:`OTMap.save` (``weights_only`` loading); a clear error naming
    the file otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such OT map file")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot be read as an otviz OT map ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not an otviz OT map (format {blob.get('format') if isinstance(blob, dict) else None!r})")
    try:
        m = OTMap(int(blob["dim"]), OTMapConfig.from_dict(blob["config"]), blob.get("history"))
        m.load_state_dict(blob["state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: invalid OT map: {exc}") from exc
    return m.to(device).eval()


# ----------------------------------------------------------------------------- fitting


class FitCancelled(Exception):
    """:func:`fit_ot_map` was cancelled; its checkpoint (if any) holds the progress to resume from."""


class FitFailed(RuntimeError):
    """The loss stayed non-finite after ``max_nan_retries`` roll-backs."""


def _standardisation(src: torch.Tensor, tgt: torch.Tensor, mode: str):
    """(μ_P, μ_Q, s_P, s_Q, V) of the module docstring's standardisation ``mode``."""
    ms, mt = src.mean(0), tgt.mean(0)
    eye = torch.eye(src.shape[1], dtype=src.dtype)
    if mode == "none":
        return torch.zeros_like(ms), torch.zeros_like(mt), torch.ones_like(ms), torch.ones_like(mt), eye
    if mode == "feature":
        return ms, mt, src.std(0).clamp_min(1e-8), tgt.std(0).clamp_min(1e-8), eye
    if mode == "whiten":
        xs, xt = (src - ms).double(), (tgt - mt).double()
        pooled = 0.5 * (xs.T @ xs / max(len(xs) - 1, 1) + xt.T @ xt / max(len(xt) - 1, 1))
        lam, vec = torch.linalg.eigh(pooled)
        lam = lam.clamp_min(float(lam.max()) * 1e-12 + 1e-30)
        s = lam.sqrt().to(src.dtype)
        return ms, mt, s, s.clone(), vec.to(src.dtype)
    s = torch.sqrt(0.5 * (src.var(0).sum() + tgt.var(0).sum()) / src.shape[1]).clamp_min(1e-8)
    return ms, mt, s.expand_as(ms).clone(), s.expand_as(mt).clone(), eye


def _fingerprint(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = a.detach().cpu().float()
        h.update(str(tuple(a.shape)).encode())
        h.update(np.asarray([a.sum().item(), a.pow(2).sum().item(), a[:5].sum().item()], dtype=np.float64).tobytes())
    return h.hexdigest()


def _as_tensor(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float32))
    if t.ndim != 2 or len(t) < 4:
        raise ValueError(f"fit_ot_map: {name} must be an (n, d) array with n ≥ 4, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"fit_ot_map: {name} holds non-finite values (row {int((~torch.isfinite(t)).any(1).nonzero()[0])})")
    return t


class _StageFit:
    """The state of fitting one stage: f, g, their optimisers and schedules, the batch generator."""

    def __init__(self, cfg: OTMapConfig, dim: int, stage_index: int, device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed * 1000 + stage_index)
        self.g = ConvexPotential(dim, cfg.hidden, cfg.quadratic_rank).to(device)
        self.f = ConvexPotential(dim, cfg.hidden, cfg.quadratic_rank).to(device)
        self.opt_g = torch.optim.AdamW(self.g.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_f = torch.optim.AdamW(self.f.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched_g = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt_g, max(cfg.steps * cfg.g_steps, 1))
        self.sched_f = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt_f, max(cfg.steps * cfg.f_steps, 1))
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + stage_index + 7)
        self.step = 0  # outer steps done
        self.pretrained = 0
        self.start_g = self.start_f = None  # the starting maps' matrices (None: the identity)
        self.lr_scale = 1.0
        self.retries = 0

    def state(self) -> dict:
        return {"g": self.g.state_dict(), "f": self.f.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_f": self.opt_f.state_dict(), "sched_g": self.sched_g.state_dict(),
                "sched_f": self.sched_f.state_dict(), "gen": self.gen.get_state(), "step": self.step,
                "pretrained": self.pretrained, "lr_scale": self.lr_scale, "retries": self.retries}

    def load(self, st: dict):
        self.g.load_state_dict(st["g"])
        self.f.load_state_dict(st["f"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_f.load_state_dict(st["opt_f"])
        self.sched_g.load_state_dict(st["sched_g"])
        self.sched_f.load_state_dict(st["sched_f"])
        self.gen.set_state(st["gen"])
        self.step, self.pretrained = int(st["step"]), int(st["pretrained"])
        self.lr_scale, self.retries = float(st["lr_scale"]), int(st["retries"])

    def batch(self, data: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(len(data), (min(self.cfg.batch, len(data)),), generator=self.gen)
        return data[idx].to(self.device)

    def _update(self, opt, net, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip)
        opt.step()

    def start_gaussian(self, src, tgt, set_weights: bool) -> None:
        """The Gaussian start (``init="gaussian"``): A = the closed-form OT matrix from N(0, Σ_src) to
        N(0, Σ_tgt) of the standardised samples (:func:`otviz.ot.gaussian.gaussian_ot_map`, a ridge of
        ``GAUSSIAN_RIDGE`` × the mean variance on both), B = A⁻¹ (target → source). ∇g is pre-trained
        to x ↦ Ax and ∇f to y ↦ By; with ``set_weights`` the potentials' quadratic parts start there
        (a = ½ λ_min, LᵀL = M − a·1, L from the leading eigen-directions when ``quadratic_rank`` < d)."""
        from .gaussian import gaussian_ot_map

        def cov(t):
            c = np.cov(t.double().numpy(), rowvar=False)
            return c + GAUSSIAN_RIDGE * float(np.trace(c)) / len(c) * np.eye(len(c))

        cs, ct = cov(src), cov(tgt)
        a_mat = gaussian_ot_map(np.zeros(len(cs)), cs, np.zeros(len(ct)), ct)[0]
        b_mat = np.linalg.inv(a_mat)
        b_mat = 0.5 * (b_mat + b_mat.T)
        self.start_g = torch.as_tensor(a_mat, dtype=torch.float32, device=self.device)
        self.start_f = torch.as_tensor(b_mat, dtype=torch.float32, device=self.device)
        if not set_weights:
            return
        for net, m in ((self.g, a_mat), (self.f, b_mat)):
            lam, vec = np.linalg.eigh(m)
            a = float(np.clip(0.5 * lam.min(), 1e-4, 1.0))
            rest = np.clip(lam - a, 0.0, None)
            with torch.no_grad():
                net.a_raw.fill_(_inv_softplus(a))
                if net.quad is not None:
                    r = net.quad.shape[0]
                    order = np.argsort(rest)[::-1][:r]
                    quad = (vec[:, order] * np.sqrt(rest[order])).T  # (r, d): LᵀL = Σ_top (λ − a) v vᵀ
                    net.quad.copy_(torch.as_tensor(quad, dtype=net.quad.dtype))

    def pretrain_step(self, src, tgt) -> float:
        """Fit ∇g to the starting map on source batches and ∇f to its inverse on target batches
        (‖∇ψ(x) − Mx‖²; M = 1 for ``init="identity"``)."""
        total = 0.0
        for net, opt, data, m in ((self.g, self.opt_g, src, self.start_g), (self.f, self.opt_f, tgt, self.start_f)):
            x = self.batch(data)
            want = x if m is None else x @ m.T
            loss = (net.gradient(x, create_graph=True) - want).pow(2).sum(-1).mean()
            if not torch.isfinite(loss):
                return float("nan")
            self._update(opt, net, loss)
            total += float(loss.detach())
        self.pretrained += 1
        return total

    def outer_step(self, src, tgt) -> dict:
        """``g_steps`` g-updates, then ``f_steps`` f-updates; returns the last losses, or NaN."""
        for _ in range(self.cfg.g_steps):
            x = self.batch(src).requires_grad_(True)
            gx = self.g.gradient(x, create_graph=True)
            loss_g = (self.f(gx) - (gx * x).sum(-1)).mean()
            if not torch.isfinite(loss_g):
                return {"g_loss": float("nan")}
            self._update(self.opt_g, self.g, loss_g)
            self.sched_g.step()
        for _ in range(self.cfg.f_steps):
            x = self.batch(src)
            gx = self.g.gradient(x).detach()
            y = self.batch(tgt)
            loss_f = self.f(y).mean() - self.f(gx).mean()
            if not torch.isfinite(loss_f):
                return {"f_loss": float("nan")}
            self._update(self.opt_f, self.f, loss_f)
            self.sched_f.step()
        self.step += 1
        return {"g_loss": float(loss_g.detach()), "f_loss": float(loss_f.detach())}

    def scale_lr(self, factor: float):
        self.lr_scale *= factor
        for opt, sched in ((self.opt_g, self.sched_g), (self.opt_f, self.sched_f)):
            sched.base_lrs = [b * factor for b in sched.base_lrs]
            for grp in opt.param_groups:
                grp["lr"] *= factor


def _diagnostics(fit: _StageFit, stage: OTMapStage, src_val, tgt_val) -> dict:
    """On the standardised validation samples u (source), v (target): the transport cost E‖T(x) − x‖² and
    the dual estimate of W₂², E‖u‖² + E‖v‖² − 2V (module docstring). With a scalar (or no)
    standardisation both are in the inputs' units (× s², plus ‖μ_P − μ_Q‖² for W₂²: centring each
    domain moves W₂² by the mean shift only); with ``"feature"`` there is no such conversion and both
    are in standardised units (``units`` says which)."""
    x, y = src_val.to(fit.device), tgt_val.to(fit.device)
    gx = fit.g.gradient(x).detach()
    with torch.no_grad():
        v = fit.f(y).mean() + ((x * gx).sum(-1) - fit.f(gx)).mean()
        w2 = float(x.pow(2).sum(-1).mean() + y.pow(2).sum(-1).mean() - 2 * v)
        if fit.cfg.standardise in ("feature", "whiten"):
            return {"cost": float((gx - x).pow(2).sum(-1).mean()), "w2_dual": w2, "units": "standardised"}
        moved = stage.target_mean + stage.target_scale * gx
        orig = stage.source_mean + stage.source_scale * x
        s2 = float(stage.target_scale[0]) ** 2
        return {"cost": float((moved - orig).pow(2).sum(-1).mean()),
                "w2_dual": w2 * s2 + float((stage.source_mean - stage.target_mean).pow(2).sum()), "units": "input"}


def fit_ot_map(source, target, *, progress: Callable[[dict], None] | None = None,
               cancel: Callable[[], bool] | None = None, checkpoint=None, **options) -> OTMap:
    """Fit the OT map from the ``source`` (n, d) to the ``target`` (m, d) sample (unpaired) with two
    ICNNs on the dual (module docstring). ``options`` are :class:`OTMapConfig` fields.

    ``progress(event)`` receives ``{"type": "step", "stage", "step", "steps", "g_loss", "f_loss",
    "w2_dual", "cost", "lr", …}`` every ``log_every`` outer steps (and ``"pretrain"`` / ``"stage_done"``
    events). ``cancel()`` returning True stops the fit at the next step boundary: the checkpoint is
    written and :class:`FitCancelled` raised. With ``checkpoint`` (a file path) the fit saves its state
    atomically every ``checkpoint_every`` outer steps and resumes from it when the file belongs to the
    same data and settings. A non-finite loss rolls back to the last good state with the learning rate
    halved, at most ``max_nan_retries`` times (then :class:`FitFailed`)."""
    from ..train.trainer import atomic_torch_save, resolve_device

    cfg = OTMapConfig.from_dict(options)
    src_all, tgt_all = _as_tensor(source, "source"), _as_tensor(target, "target")
    if src_all.shape[1] != tgt_all.shape[1]:
        raise ValueError(f"fit_ot_map: source has {src_all.shape[1]} features, target {tgt_all.shape[1]}")
    dim = src_all.shape[1]
    device = resolve_device(cfg.device)
    fingerprint = _fingerprint(src_all, tgt_all)

    # validation split (fixed by the seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    def split(t):
        perm = torch.randperm(len(t), generator=gen)
        n_val = int(round(cfg.validation_fraction * len(t)))
        n_val = min(n_val, 4096)
        return t[perm[n_val:]], t[perm[:n_val]]
    src_train, src_val = split(src_all)
    tgt_train, tgt_val = split(tgt_all)

    result = OTMap(dim, cfg).to(device)
    history: list[dict] = []
    stage_index, fit, done_stages = 0, None, []
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        try:
            st = torch.load(ckpt, map_location=device, weights_only=True)
        except Exception as exc:
            raise ValueError(f"{ckpt}: cannot be read as an OT-map checkpoint: {exc}") from exc
        if st.get("format") != FORMAT + "-checkpoint":
            raise ValueError(f"{ckpt}: not an OT-map checkpoint")
        if st.get("fingerprint") != fingerprint or st.get("config") != cfg.to_dict():
            raise ValueError(f"{ckpt}: a checkpoint of another fit (different data or settings); delete it to start over")
        done_stages = list(st["stages"])
        history = list(st["history"])
        stage_index = len(done_stages)
        for i, s in enumerate(done_stages):
            result.stages[i].load_state_dict(s)
        if st.get("current") is not None and stage_index < cfg.n_maps:
            fit = _StageFit(cfg, dim, stage_index, device)
            fit.load(st["current"])
            result.stages[stage_index].load_state_dict(st["current_stage"])

    def save_ckpt():
        if ckpt is None:
            return
        atomic_torch_save({"format": FORMAT + "-checkpoint", "fingerprint": fingerprint, "config": cfg.to_dict(),
                           "stages": done_stages, "history": history,
                           "current": fit.state() if fit is not None else None,
                           "current_stage": result.stages[stage_index].state_dict() if fit is not None else None}, ckpt)

    def emit(ev):
        if progress is not None:
            progress(ev)

    t0 = time.time()
    while stage_index < cfg.n_maps:
        stage = result.stages[stage_index]
        def push(t):  # this stage's input: the source pushed through the earlier stages
            out = t.to(device)
            with torch.no_grad():
                for s in result.stages[:stage_index]:
                    out = torch.cat([s(out[i:i + 8192]) for i in range(0, len(out), 8192)])
            return out.cpu()

        s_train, s_val = push(src_train), push(src_val)
        if fit is None:
            ms, mt, ss, st_, rot = _standardisation(s_train, tgt_train, cfg.standardise)
            for name, v in (("source_mean", ms), ("target_mean", mt), ("source_scale", ss), ("target_scale", st_),
                            ("rotation", rot)):
                getattr(stage, name).copy_(v.to(device))
            fit = _StageFit(cfg, dim, stage_index, device)
        with torch.no_grad():
            src_n = stage.standardise_source(s_train.to(device)).cpu()
            tgt_n = stage.standardise_target(tgt_train.to(device)).cpu()
            src_vn = stage.standardise_source(s_val.to(device)).cpu() if len(s_val) else src_n[:2048]
            tgt_vn = stage.standardise_target(tgt_val.to(device)).cpu() if len(tgt_val) else tgt_n[:2048]
        if cfg.init == "gaussian":
            fit.start_gaussian(src_n, tgt_n, set_weights=fit.pretrained == 0 and fit.step == 0)
        good = copy.deepcopy(fit.state())
        while fit.pretrained < cfg.pretrain_steps:
            if cancel is not None and cancel():
                save_ckpt()
                raise FitCancelled("fit_ot_map cancelled")
            loss = fit.pretrain_step(src_n, tgt_n)
            if not math.isfinite(loss):
                raise FitFailed("fit_ot_map: non-finite loss while pre-training the potentials to the identity")
            if fit.pretrained % cfg.log_every == 0 or fit.pretrained == cfg.pretrain_steps:
                emit({"type": "pretrain", "stage": stage_index, "step": fit.pretrained,
                      "steps": cfg.pretrain_steps, "loss": loss})
        while fit.step < cfg.steps:
            if cancel is not None and cancel():
                save_ckpt()
                raise FitCancelled("fit_ot_map cancelled")
            losses = fit.outer_step(src_n, tgt_n)
            if not all(math.isfinite(v) for v in losses.values()):
                if fit.retries >= cfg.max_nan_retries:
                    raise FitFailed(f"fit_ot_map: non-finite loss at stage {stage_index} step {fit.step + 1} after "
                                    f"{fit.retries} roll-backs with halved learning rates")
                retries = fit.retries + 1
                fit.load(copy.deepcopy(good))
                fit.retries = retries
                fit.scale_lr(0.5)
                emit({"type": "nan_rollback", "stage": stage_index, "step": fit.step, "retries": retries,
                      "lr_scale": fit.lr_scale})
                continue
            if fit.step % cfg.log_every == 0 or fit.step == cfg.steps:
                rec = {"type": "step", "stage": stage_index, "step": fit.step, "steps": cfg.steps, **losses,
                       **_diagnostics(fit, stage, src_vn, tgt_vn), "lr": fit.opt_g.param_groups[0]["lr"],
                       "elapsed_s": time.time() - t0}
                history.append({k: v for k, v in rec.items() if k != "type"})
                emit(rec)
            if fit.step % cfg.checkpoint_every == 0:
                good = copy.deepcopy(fit.state())
                stage.potential.load_state_dict(fit.g.state_dict())
                save_ckpt()
        stage.potential.load_state_dict(fit.g.state_dict())
        done_stages.append({k: v.detach().cpu() for k, v in stage.state_dict().items()})
        emit({"type": "stage_done", "stage": stage_index})
        stage_index += 1
        fit = None
        save_ckpt()
    result.history = history
    return result.eval()
