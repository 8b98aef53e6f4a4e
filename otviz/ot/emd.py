"""Energy Mover's Distance between jets as weighted point clouds in (η, φ), batched and
differentiable (EMD-VAE, Collins; EnergyFlow's definition).

For normalised weights a, b (pT/H_T, each summing to 1) and points p = (η, φ):

    EMD(a, p; b, q) = min_{P ≥ 0, P1 = a, Pᵀ1 = b} Σ_ij P_ij (ΔR_ij / R)^β,
    ΔR_ij = sqrt((η_i − η_j)² + Δφ_ij²),  Δφ wrapped into [−π, π).

(EnergyFlow's extra |Σa − Σb| term vanishes for normalised weights.)

Backends behind :func:`emd`:

``exact``     POT's network simplex per jet on the CPU (its C++ solver ``emd_c`` on the particles
              with non-zero weight). Gradients: for the points, ∂/∂p of Σ P*_ij C_ij(p, q) with
              the optimal plan P* held fixed (envelope theorem); for the weights, the dual
              potentials (u, v) of the linear programme, centred to sum to zero (the weights live
              on the simplex). Checked against finite differences in the tests.
``sinkhorn``  batched log-domain Sinkhorn with ε-scaling (ε from ``eps_start`` = 1 down to
              ``eps`` = 0.003 geometrically, 12 steps of 10 iterations, warm-started), in float64 by
              default, with denormals flushed. The final plan is rounded onto the marginals
              (Altschuler et al. 2017) and the value is its transport cost ⟨P_ε, C⟩ ≥ EMD, the
              exact value; gradients by the envelope theorem as above with P_ε and the Sinkhorn
              potentials — no back-propagation through the iterations.
``auto``      ``exact`` on every device. Only the exact backend has exact gradients: against them,
              the Sinkhorn gradient of EMD² per jet (jets against decoder-like outputs, W jets) has
              a median cosine of 0.97 and a mean norm error of 5 % at the default ε schedule, and
              neither ε = 1e-4 nor 20 iterations per ε step bring the mean under 3 %
              (``tests/ot/test_emd.py::test_sinkhorn_gradients_per_jet_against_exact``). Choose
              ``sinkhorn`` explicitly for speed on a GPU with large batches.

Departure from seed 001 (App. A.1: ε from 1 to 0.01 in 10 steps of 10 iterations): the
default ends at ε = 0.003 in 12 steps. Measured on trained-decoder outputs for W jets, the
paper's schedule gives a 1.2 % mean value error and 5 % mean gradient-norm error against the
exact EMD, the default 0.4 % and 1.8 %, at about the same cost.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def ground_cost(pa: torch.Tensor, pb: torch.Tensor, R: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """(ΔR/R)^β between every particle of a and of b: (B, N, 2), (B, M, 2) → (B, N, M)."""
    deta = pa[..., :, None, 0] - pb[..., None, :, 0]
    dphi = torch.remainder(pa[..., :, None, 1] - pb[..., None, :, 1] + math.pi, 2 * math.pi) - math.pi
    dr = torch.sqrt(deta ** 2 + dphi ** 2 + 1e-18)
    return (dr / R) ** beta


def _network_simplex():
    """POT's C++ network simplex ``emd_c(a, b, M, max_iter, threads)`` (the solver behind
    ``ot.emd``, without its per-call Python pre- and post-processing, ≈ 2× faster on 50-particle
    jets; ``tests/ot/test_emd.py`` keeps ``ot.emd2`` as the reference), or None."""
    try:
        from ot.lp.emd_wrap import check_result, emd_c
    except ImportError:  # pragma: no cover - a POT without the private module
        return None
    return emd_c, check_result


def _exact_plans(wa, wb, cost, max_iter: int = 100_000):
    """Optimal plans and dual potentials, one jet at a time, by POT's network simplex on the
    particles with non-zero weight. The potentials of zero-weight particles are their
    c-transforms, u_i = min_j (C_ij − v_j) (as ``ot.emd`` does), so that every particle has a
    valid (super)gradient; each potential is then centred on its jet."""
    import ot

    a = wa.detach().cpu().double().numpy()
    b = wb.detach().cpu().double().numpy()
    c = cost.detach().cpu().double().numpy()
    plans = np.zeros_like(c)
    u = np.zeros_like(a)
    v = np.zeros_like(b)
    solver = _network_simplex()
    for k in range(len(a)):
        ia, ib = a[k] > 0, b[k] > 0
        ak, bk = a[k][ia], b[k][ib]
        if len(ak) == 0 or len(bk) == 0:
            raise ValueError(f"emd: jet {k} has no particle with positive weight")
        ak, bk = ak / ak.sum(), bk / bk.sum()
        m = np.ascontiguousarray(c[k][np.ix_(ia, ib)])
        if solver is not None:
            G, _, uk, vk, code = solver[0](ak, bk, m, max_iter, 1)
            msg = solver[1](code)
            if msg:
                raise RuntimeError(f"emd: network simplex failed on jet {k}: {msg}")
        else:  # pragma: no cover
            G, log = ot.emd(ak, bk, m, log=True, numItermax=max_iter)
            uk, vk = log["u"], log["v"]
        plans[k][np.ix_(ia, ib)] = G
        u[k][ia], v[k][ib] = uk, vk
        if not ia.all():
            u[k][~ia] = (c[k][~ia][:, ib] - vk).min(1)
        if not ib.all():
            v[k][~ib] = (c[k][:, ~ib][ia] - uk[:, None]).min(0)
        u[k] -= u[k].mean()
        v[k] -= v[k].mean()
    to = dict(dtype=cost.dtype, device=cost.device)
    return torch.as_tensor(plans, **to), torch.as_tensor(u, **to), torch.as_tensor(v, **to)


def _round_to_marginals(plan, a, b):
    """Project a near-feasible plan onto {P ≥ 0, P1 = a, Pᵀ1 = b} (Altschuler, Weed, Rigollet
    2017, Alg. 2), so that ⟨P, C⟩ is the cost of a feasible transport plan."""
    x = torch.clamp(a / plan.sum(2).clamp_min(1e-300), max=1.0)
    plan = plan * x[:, :, None]
    y = torch.clamp(b / plan.sum(1).clamp_min(1e-300), max=1.0)
    plan = plan * y[:, None, :]
    # the remaining mass (≥ 0 up to rounding) goes out as a rank-one plan; when it is at the level
    # of float rounding, dividing by its sum would amplify the rounding, so it is left out
    ea = (a - plan.sum(2)).clamp_min(0)
    eb = (b - plan.sum(1)).clamp_min(0)
    mass = ea.sum(1)
    ok = mass > 1e-12
    fix = ea[:, :, None] * eb[:, None, :] / torch.where(ok, mass, torch.ones_like(mass))[:, None, None]
    return plan + torch.where(ok[:, None, None], fix, torch.zeros_like(fix))


def _sinkhorn_plans(wa, wb, cost, eps, eps_start, n_steps, n_iter):
    """Log-domain Sinkhorn with ε-scaling, batched: returns (plan, f, g) without autograd."""
    with torch.no_grad():
        tiny = torch.finfo(cost.dtype).tiny
        la = torch.log(wa.clamp_min(0) + tiny)
        lb = torch.log(wb.clamp_min(0) + tiny)
        la = torch.where(wa > 0, la, torch.full_like(la, -torch.inf))
        lb = torch.where(wb > 0, lb, torch.full_like(lb, -torch.inf))
        f = torch.zeros_like(wa)
        g = torch.zeros_like(wb)
        for e in np.geomspace(eps_start, eps, n_steps):
            for _ in range(n_iter):
                f = -e * torch.logsumexp(lb[:, None, :] + (g[:, None, :] - cost) / e, dim=2)
                g = -e * torch.logsumexp(la[:, :, None] + (f[:, :, None] - cost) / e, dim=1)
        logp = la[:, :, None] + lb[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / e
        plan = _round_to_marginals(torch.exp(logp), wa.clamp_min(0), wb.clamp_min(0))
        # potentials of zero-weight particles are irrelevant; centre on the support
        f = torch.where(wa > 0, f, torch.zeros_like(f))
        g = torch.where(wb > 0, g, torch.zeros_like(g))
        f = f - (f * (wa > 0)).sum(1, keepdim=True) / (wa > 0).sum(1, keepdim=True).clamp_min(1)
        g = g - (g * (wb > 0)).sum(1, keepdim=True) / (wb > 0).sum(1, keepdim=True).clamp_min(1)
    return plan, f, g


BACKENDS = ("auto", "exact", "sinkhorn")


def resolve_backend(backend: str, device=None) -> str:
    """The backend that ``backend`` means on ``device``: ``auto`` is ``exact`` on every device
    (CPU and CUDA alike: only its gradients are exact; see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown EMD backend {backend!r}: choose exact, sinkhorn or auto")
    return "exact" if backend == "auto" else backend


def emd(wa, pa, wb, pb, backend: str = "auto", R: float = 1.0, beta: float = 1.0,
        eps: float = 0.003, eps_start: float = 1.0, n_steps: int = 12, n_iter: int = 10,
        dtype=torch.float64) -> torch.Tensor:
    """Per-jet EMD for batches: weights (B, N), (B, M); points (B, N, 2), (B, M, 2) as (η, φ).

    Differentiable in weights and points (see the module docstring). Weights are used as
    given for ``sinkhorn`` and normalised per jet for ``exact``; pass pT/H_T.
    """
    wa, pa, wb, pb = (torch.as_tensor(t) for t in (wa, pa, wb, pb))
    if wa.ndim != 2 or pa.shape[:2] != wa.shape or wb.ndim != 2 or pb.shape[:2] != wb.shape:
        raise ValueError("emd needs weights (B, N) and points (B, N, 2) for both jets")
    backend = resolve_backend(backend, wa.device)
    out_dtype = wa.dtype if wa.dtype.is_floating_point else torch.float64
    wa, pa, wb, pb = (t.to(dtype) for t in (wa, pa, wb, pb))
    cost = ground_cost(pa, pb, R, beta)
    if backend == "exact":
        plan, u, v = _exact_plans(wa, wb, cost)
    elif backend == "sinkhorn":
        torch.set_flush_denormal(True)  # process-wide: subnormals in exp() slow the iterations ~10×
        plan, u, v = _sinkhorn_plans(wa, wb, cost.detach(), eps, eps_start, n_steps, n_iter)
    else:  # pragma: no cover - resolve_backend rejects it
        raise ValueError(f"unknown EMD backend {backend!r}: choose exact, sinkhorn or auto")
    value = (plan * cost).sum((1, 2))  # gradient to the points with the plan held fixed
    # gradient to the weights through the dual potentials; adds zero to the value
    value = value + (u * (wa - wa.detach())).sum(1) + (v * (wb - wb.detach())).sum(1)
    return value.to(out_dtype)


def emd_plan(wa, pa, wb, pb, R: float = 1.0, beta: float = 1.0):
    """Exact EMD and optimal plan between two single jets (NumPy in, NumPy out, via POT):
    weights (N,), (M,), points (N, 2), (M, 2) as (η, φ) → (value, plan (N, M)); plan[i, j] is
    the pT fraction moved from particle i of jet a to particle j of jet b."""
    import ot

    wa, wb = np.asarray(wa, float), np.asarray(wb, float)
    cost = ground_cost(torch.as_tensor(np.asarray(pa, float))[None], torch.as_tensor(np.asarray(pb, float))[None],
                       R, beta)[0].numpy()
    plan = ot.emd(wa / wa.sum(), wb / wb.sum(), cost)
    return float((plan * cost).sum()), plan
