"""ICNN potentials and the neural OT map (otviz.ot.icnn): convexity, closed-form maps, resume, NaN."""
import math

import numpy as np
import pytest
import torch

from otviz.errors import ConfigError
from otviz.ot import FitCancelled, FitFailed, OTMap, OTMapConfig, fit_ot_map, load_ot_map
from otviz.ot.gaussian import gaussian_ot_map, gaussian_w2_squared, l2_uvp, random_gaussian, sample_gaussian
from otviz.ot.icnn import ConvexPotential, _StageFit

FAST = dict(hidden=(32, 32), batch=512, g_steps=4, f_steps=2, pretrain_steps=20, log_every=10, lr=5e-3)


def _randomise(potential, seed):
    """Random raw parameters (the positivity constraints still hold by construction)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in potential.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 2.0)
    return potential


@pytest.mark.parametrize("rank", [0, None, 2])
def test_potential_is_convex_whatever_its_parameters(rank):
    torch.manual_seed(0)
    for seed in range(3):
        psi = _randomise(ConvexPotential(4, (16, 16, 8), quadratic_rank=rank), seed).double()
        x, y = torch.randn(500, 4, dtype=torch.float64) * 3, torch.randn(500, 4, dtype=torch.float64) * 3
        for t in (0.25, 0.5, 0.9):  # ψ(t x + (1-t) y) ≤ t ψ(x) + (1-t) ψ(y)
            assert (psi(t * x + (1 - t) * y) <= t * psi(x) + (1 - t) * psi(y) + 1e-9).all()
        h = torch.autograd.functional.hessian(lambda v: psi(v[None])[0], torch.randn(4, dtype=torch.float64))
        assert torch.linalg.eigvalsh(h).min() > -1e-9


def test_gradient_matches_finite_differences():
    psi = ConvexPotential(3, (16, 16)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    g = psi.gradient(x)
    eps = 1e-6
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = eps
        fd = (psi(x + e) - psi(x - e)) / (2 * eps)
        torch.testing.assert_close(g[:, k], fd, rtol=1e-6, atol=1e-7)


def _gaussian_case(d, n, seed):
    rng = np.random.default_rng(seed)
    m1, c1 = random_gaussian(d, rng)
    m2, c2 = random_gaussian(d, rng)
    a, b = gaussian_ot_map(m1, c1, m2, c2)
    x_test = sample_gaussian(m1, c1, 4000, rng)
    return (sample_gaussian(m1, c1, n, rng), sample_gaussian(m2, c2, n, rng), x_test, x_test @ a.T + b,
            np.trace(c2), gaussian_w2_squared(m1, c1, m2, c2))


@pytest.mark.parametrize("d, steps, bound", [(2, 150, 1.0), (16, 150, 1.0)])
def test_gaussian_to_gaussian_recovers_the_closed_form_map(d, steps, bound):
    src, tgt, x, exact, var, w2 = _gaussian_case(d, 20_000, seed=d)
    events = []
    m = fit_ot_map(torch.as_tensor(src), torch.as_tensor(tgt), steps=steps, progress=events.append, **FAST)
    mapped = m.transport(x)
    uvp = l2_uvp(mapped, exact, var)
    assert uvp < bound, f"L2-UVP {uvp:.2f} % at d = {d}"
    cost = float(np.mean(np.sum((mapped - x) ** 2, 1)))
    assert cost == pytest.approx(w2, rel=0.05)  # the transport cost is W₂²
    last = [e for e in events if e["type"] == "step"][-1]
    assert last["step"] == steps and last["w2_dual"] == pytest.approx(w2, rel=0.1)


def test_gaussian_start_is_the_closed_form_map_before_the_dual_steps():
    """init="gaussian": the potentials start at the Bures map of the two samples' covariances
    (a·1 + LᵀL = A exactly) and are pre-trained to it, so one dual step in, a 16-d Gaussian pair is
    already mapped to < 1 % L2-UVP; the identity start is > 5 % there."""
    src, tgt, x, exact, var, _ = _gaussian_case(16, 20_000, seed=16)
    uvp = {init: l2_uvp(fit_ot_map(torch.as_tensor(src), torch.as_tensor(tgt), steps=1, init=init, **FAST).transport(x),
                        exact, var) for init in ("identity", "gaussian")}
    assert uvp["gaussian"] < 1.0 and uvp["identity"] > 5.0, uvp

    fit = _StageFit(OTMapConfig(hidden=(8,), init="gaussian"), 16, 0, "cpu")
    u, v = torch.as_tensor(src[:5000], dtype=torch.float32), torch.as_tensor(tgt[:5000], dtype=torch.float32)
    u, v = u - u.mean(0), v - v.mean(0)
    fit.start_gaussian(u, v, set_weights=True)
    a_mat = gaussian_ot_map(np.zeros(16), np.cov(u.numpy().T), np.zeros(16), np.cov(v.numpy().T))[0]
    for net, m in ((fit.g, a_mat), (fit.f, np.linalg.inv(a_mat))):
        quad = float(torch.nn.functional.softplus(net.a_raw).detach()) * np.eye(16) + (net.quad.T @ net.quad).detach().numpy()
        np.testing.assert_allclose(quad, m, rtol=0, atol=1e-4 * np.abs(m).max())


def test_whitened_fit_recovers_the_mahalanobis_ot_map_of_two_gaussians():
    """standardise="whiten": OT for the cost (x − y)ᵀΣ⁻¹(x − y), Σ the pooled covariance. In
    whitened coordinates u = Λ^{-1/2}Vᵀ(x − μ) it is the Bures map between the whitened laws, so
    T*(x) = μ₂ + V Λ^{1/2} A_u Λ^{-1/2} Vᵀ (x − μ₁) in closed form. A map saved before the rotation
    buffer existed (no ``rotation`` in its state) loads as the identity rotation."""
    d = 8
    rng = np.random.default_rng(11)
    m1, c1 = random_gaussian(d, rng)
    m2, c2 = random_gaussian(d, rng)
    lam, vec = np.linalg.eigh(0.5 * (c1 + c2))
    w = vec / np.sqrt(lam)  # u = (x − μ) @ w
    a_u, _ = gaussian_ot_map(np.zeros(d), w.T @ c1 @ w, np.zeros(d), w.T @ c2 @ w)
    src, tgt = sample_gaussian(m1, c1, 20_000, rng), sample_gaussian(m2, c2, 20_000, rng)
    x = sample_gaussian(m1, c1, 4000, rng)
    exact = m2 + ((x - m1) @ w @ a_u.T) @ np.linalg.inv(w)
    m = fit_ot_map(src, tgt, steps=150, standardise="whiten", **FAST)
    uvp = l2_uvp(m.transport(x), exact, np.trace(c2))
    assert uvp < 1.0, f"L2-UVP {uvp:.2f} % against the Mahalanobis OT map"
    state = {k: v for k, v in m.state_dict().items() if not k.endswith("rotation")}
    old = OTMap(d, m.config)
    old.load_state_dict(state)
    assert torch.equal(old.stages[0].rotation, torch.eye(d))


def test_a_known_convex_map_of_non_gaussian_data_is_recovered():
    """Source uniform on [-1, 1]³ (not Gaussian), target T*(source) with T*(x) = A x + b, A symmetric
    positive definite: T* = ∇(½xᵀAx + bᵀx) is the gradient of a convex function, so by Brenier's
    uniqueness it is the OT map, whatever the source law."""
    rng = np.random.default_rng(3)
    a = np.array([[1.5, 0.4, 0.0], [0.4, 0.8, 0.2], [0.0, 0.2, 2.0]])
    b = np.array([1.0, -2.0, 0.5])
    src = rng.uniform(-1, 1, (20_000, 3))
    tgt = rng.uniform(-1, 1, (20_000, 3)) @ a + b
    m = fit_ot_map(src, tgt, steps=400, **FAST)  # 0.06 % measured; 150 steps leave ≈ 2 %
    x = rng.uniform(-1, 1, (4000, 3))
    uvp = l2_uvp(m.transport(x), x @ a + b, float(np.var(tgt, 0).sum()))
    assert uvp < 1.0, f"L2-UVP {uvp:.2f} %"


def test_map_is_differentiable_with_a_symmetric_positive_jacobian():
    src, tgt, *_ = _gaussian_case(3, 4000, seed=1)
    m = fit_ot_map(src, tgt, steps=20, **FAST)
    x = torch.randn(3, dtype=torch.float32, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: m(v[None])[0], x).double()
    torch.testing.assert_close(jac, jac.T, rtol=1e-4, atol=1e-5)  # scalar standardisation keeps T = ∇(convex)
    assert torch.linalg.eigvalsh(0.5 * (jac + jac.T)).min() > -1e-6
    y = m.interpolate(torch.zeros(1, 3), 0.0)
    torch.testing.assert_close(y, torch.zeros(1, 3))


def test_save_and_load_round_trip(tmp_path):
    src, tgt, x, *_ = _gaussian_case(2, 2000, seed=4)
    m = fit_ot_map(src, tgt, steps=10, n_maps=2, **FAST)
    path = m.save(tmp_path / "map.pt")
    back = load_ot_map(path)
    np.testing.assert_array_equal(back.transport(x), m.transport(x))
    assert back.config == m.config and back.history == m.history
    (tmp_path / "bad.pt").write_bytes(b"not a map")
    with pytest.raises(ValueError, match="bad.pt"):
        load_ot_map(tmp_path / "bad.pt")


def test_cancel_and_resume_give_the_uninterrupted_map(tmp_path):
    src, tgt, x, *_ = _gaussian_case(2, 2000, seed=5)
    opts = {**FAST, "steps": 40, "checkpoint_every": 10, "seed": 3}
    whole = fit_ot_map(src, tgt, **opts)
    calls = {"n": 0}

    def cancel_after_25_steps():
        calls["n"] += 1
        return calls["n"] > opts["pretrain_steps"] + 25

    ckpt = tmp_path / "fit.ckpt"
    with pytest.raises(FitCancelled):
        fit_ot_map(src, tgt, cancel=cancel_after_25_steps, checkpoint=ckpt, **opts)
    assert ckpt.exists()
    resumed = fit_ot_map(src, tgt, checkpoint=ckpt, **opts)
    np.testing.assert_allclose(resumed.transport(x), whole.transport(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="another fit"):
        fit_ot_map(src, tgt, checkpoint=ckpt, **{**opts, "steps": 41})


def test_nan_losses_roll_back_with_a_halved_rate_then_fail(monkeypatch):
    src, tgt, *_ = _gaussian_case(2, 2000, seed=6)
    real = _StageFit.outer_step
    state = {"n": 0}

    def flaky(self, s, t):
        state["n"] += 1
        if state["n"] == 7:
            return {"g_loss": float("nan")}
        return real(self, s, t)

    monkeypatch.setattr(_StageFit, "outer_step", flaky)
    events = []
    m = fit_ot_map(src, tgt, steps=20, checkpoint_every=5, progress=events.append, **FAST)
    rb = [e for e in events if e["type"] == "nan_rollback"]
    assert len(rb) == 1 and rb[0]["lr_scale"] == 0.5 and rb[0]["step"] == 5
    assert isinstance(m, OTMap)
    monkeypatch.setattr(_StageFit, "outer_step", lambda self, s, t: {"g_loss": math.nan})
    with pytest.raises(FitFailed, match="roll-backs"):
        fit_ot_map(src, tgt, steps=20, max_nan_retries=2, **FAST)


def test_bad_options_and_inputs_name_what_is_wrong():
    x = np.random.default_rng(0).standard_normal((100, 2))
    with pytest.raises(ConfigError, match="steps"):
        fit_ot_map(x, x, steps=0)
    with pytest.raises(ConfigError, match="standardise"):
        fit_ot_map(x, x, standardise="minmax")
    with pytest.raises(ConfigError, match="unexpected keyword|stepz"):
        fit_ot_map(x, x, stepz=3)
    with pytest.raises(ValueError, match="target has|features"):
        fit_ot_map(x, x[:, :1])
    bad = x.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="row 17"):
        fit_ot_map(bad, x)
