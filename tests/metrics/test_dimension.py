"""D₁/D₂ on the analytic Gaussian case (EMD-VAE appendix A.3) and the correlation dimension."""
import numpy as np
import pytest
import torch

from otviz.metrics.dimension import (correlation_dimension, dimensionalities, gaussian_optimum,
                                     pairwise_emd)

SIGMAS = np.array([3.0, 1.0, 0.3])


def train_linear_vae(sigmas, beta, steps=300):
    """Minimise the exact expected loss of a linear VAE (μ = Ax, σ constant, ρ = Bz) on a Gaussian
    with covariance diag(σ²): E|x − ρ(z)|²/(2β²) + KL. Returns (rate, distortion)."""
    d = len(sigmas)
    cov = torch.diag(torch.tensor(sigmas, dtype=torch.float64) ** 2)
    g = torch.Generator().manual_seed(0)
    a = (0.5 * torch.eye(d, dtype=torch.float64) + 0.01 * torch.randn(d, d, generator=g, dtype=torch.float64)).requires_grad_()
    b = (0.5 * torch.eye(d, dtype=torch.float64) + 0.01 * torch.randn(d, d, generator=g, dtype=torch.float64)).requires_grad_()
    log_var = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, b, log_var], lr=1.0, max_iter=steps, tolerance_grad=1e-12,
                            tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")
    eye = torch.eye(d, dtype=torch.float64)

    def terms():
        m = eye - b @ a
        dist = torch.trace(m @ cov @ m.T) + torch.trace(b @ torch.diag(log_var.exp()) @ b.T)
        rate = 0.5 * (torch.trace(a @ cov @ a.T) + log_var.exp().sum() - log_var.sum() - d)
        return rate, dist

    def closure():
        opt.zero_grad()
        rate, dist = terms()
        loss = dist / (2 * beta ** 2) + rate
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    rate, dist = terms()
    return float(rate), float(dist)


def test_trained_gaussian_vae_dimensions_count_sigmas_above_beta():
    betas = np.geomspace(0.1, 10.0, 11)
    rd = np.array([train_linear_vae(SIGMAS, b) for b in betas])
    exact = np.array([gaussian_optimum(SIGMAS, b)[:2] for b in betas])
    np.testing.assert_allclose(rd, exact, rtol=2e-3, atol=2e-3)  # the optimiser reaches the A.3 optimum
    mid, d1, d2 = dimensionalities(betas, rd[:, 0], rd[:, 1])
    lo, hi = betas[:-1], betas[1:]
    clean = np.array([not np.any((l < SIGMAS) & (SIGMAS < h)) for l, h in zip(lo, hi)])
    expected = np.array([(SIGMAS > m).sum() for m in mid])
    assert clean.sum() >= 5
    np.testing.assert_allclose(d1[clean], expected[clean], atol=0.02)
    np.testing.assert_allclose(d2[clean], expected[clean], atol=0.02)
    # across a threshold the finite difference lies between the two counts
    assert np.all((d2[~clean] > expected[~clean] - 1.02) & (d2[~clean] < expected[~clean] + 1.02))


def test_dimensionalities_input_checks():
    with pytest.raises(ValueError):
        dimensionalities([1.0], [0.0], [0.0])
    mid, d1, d2 = dimensionalities([0.2, 0.1], [np.log(10), np.log(20)], [0.04, 0.01])  # any order
    assert mid[0] == pytest.approx(np.sqrt(0.02)) and d1[0] == pytest.approx(1.0) and d2[0] == pytest.approx(1.0)


def test_correlation_dimension_of_a_plane():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (1500, 2))
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    q, dc = correlation_dimension(d, np.geomspace(0.01, 0.08, 6))
    np.testing.assert_allclose(dc, 2.0, atol=0.2)  # small scales of a 2-d uniform cloud


def test_pairwise_emd_matches_single_pairs():
    import ot

    from otviz.ot.emd import ground_cost

    rng = np.random.default_rng(1)
    w = rng.uniform(0.1, 1, (6, 5))
    w /= w.sum(1, keepdims=True)
    p = rng.normal(0, 0.3, (6, 5, 2))
    m = pairwise_emd(w, p, workers=2)
    assert np.allclose(m, m.T) and np.all(np.diag(m) == 0)
    c = ground_cost(torch.as_tensor(p[1:2]), torch.as_tensor(p[4:5]))[0].numpy()
    assert m[1, 4] == pytest.approx(ot.emd2(w[1], w[4], c), rel=1e-10)


def test_run_dimensionality_from_an_annealing_run(tmp_path):
    from otviz.metrics.dimension import dimensionalities
    from otviz.train.annealing import AnnealingRun, emdvae_wjets_config
    from otviz.train.run import load_run

    cfg = emdvae_wjets_config(True, max_events=200, n_betas=3, beta_min=0.01, beta_max=1.0, max_epochs=1,
                              steps_per_epoch=2, batch_size=50, threads=1)
    AnnealingRun(tmp_path / "r", cfg).run_blocking()
    run = load_run(tmp_path / "r")
    calls = []
    ds = run.dimension(n_jets=40, n_q=8, progress=lambda done, total, msg: calls.append((done, total)))
    # one progress call per block of pairs (2 workers × 8 blocks), ending at total
    assert [c[0] for c in calls] == list(range(1, 17)) and {c[1] for c in calls} == {16}
    steps = run.production_steps()
    mid, d1, d2 = dimensionalities([s["beta"] for s in steps], [s["rate"] for s in steps],
                                   [s["distortion"] for s in steps])
    assert np.allclose(ds.D1.values, d1) and np.allclose(ds.D2.values, d2) and np.allclose(ds.beta_mid, mid)
    assert ds.kl_per_dim.shape == (3, 32) and np.allclose(ds.kl_per_dim.sum("latent_dim"), ds.rate, rtol=1e-5)
    assert ds.D_corr.shape == (7,) and np.isfinite(ds.D_corr).all() and ds.attrs["n_jets_corr"] == 40
    assert 450 < ds.attrs["ht_median_GeV"] < 650
    # seed 001: β in GeV is β·⟨H_T⟩ with the mean H_T, and D_corr(Q) is drawn at β = Q/2 (Fig. 3)
    from otviz.data.io import load
    from otviz.data.jets import normalised_jets
    from otviz.paths import resolve

    _, ht = normalised_jets(load(resolve(cfg.train_data)))
    assert ds.attrs["ht_mean_GeV"] == pytest.approx(float(np.mean(ht)))
    np.testing.assert_allclose(ds.beta_of_q.values, ds.q_mid.values / 2)
    back = load_run(tmp_path / "r").dimensionality  # stored by the run layer, read back without recomputing
    assert np.allclose(back.D_corr, ds.D_corr) and back.attrs["run"] == str(tmp_path / "r")


def test_dimension_plot_draws_d_corr_at_half_q():
    """The paper's Fig. 3 plots D_corr(Q) at Q = 2β: a D_corr point computed at Q sits at β = Q/2."""
    import holoviews as hv

    from otviz.viz.dimension import dimension_plot

    q = np.array([0.02, 0.04, 0.08])
    plot = dimension_plot(np.array([0.01, 0.02]), np.array([2.0, 1.0]), np.array([2.0, 1.0]), q, np.array([3, 2, 1.0]))
    curves = [el for el in plot if isinstance(el, hv.Curve) and "D_corr" in el.label]
    assert len(curves) == 1 and "Q = 2β" in curves[0].label
    np.testing.assert_allclose(curves[0].dimension_values(0), q / 2)
