"""The β-annealing trainer against a closed form: one-particle jets whose (η, φ) is Gaussian.

For such jets EMD = ΔR, so the EMD-VAE loss EMD²/(2β²) + KL is the linear-Gaussian VAE of seed 001
appendix A.3 in two dimensions: at its optimum a direction of width σ is encoded while σ > β,
with KL = log(σ/β) and distortion β² (σ² once it is not), so D₁ = D₂ = #{σ_i > β}. The whole
trainer runs (input standardisation, a rising production pass, plateau LR cuts, early stopping,
validation R and D) on the defaults of :class:`AnnealConfig`; only the sizes are reduced.
"""
import numpy as np
import pytest

from otviz.data.io import save
from otviz.data.toy import gaussian_jets
from otviz.metrics.dimension import dimensionalities, gaussian_optimum
from otviz.models.emdvae import EMDVAEConfig
from otviz.train.annealing import AnnealConfig, AnnealingRun, AnnealPass

SIGMAS = (0.3, 0.1)  # σ_η (wide), σ_φ (narrow)
BETAS = [0.02, 0.04, 0.14, 0.2, 0.5, 1.0]  # clean intervals: (0.02, 0.04) → 2, (0.14, 0.2) → 1, (0.5, 1) → 0


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gauss")
    data = save(gaussian_jets(5000, *SIGMAS, seed=0), tmp / "gaussian_jets.nc")
    cfg = AnnealConfig(model="emdvae-gaussian", train_data=str(data),
                       schedule=[AnnealPass("production", BETAS)],
                       model_config=EMDVAEConfig(n_particles=10, latent=8, width=64),
                       steps_per_epoch=100, device="cpu", threads=2, seed=0)
    run = AnnealingRun(tmp / "run", cfg)
    assert run.run_blocking() == "done", run.message
    return run


def test_rates_and_distortions_match_the_closed_form(gaussian_run):
    for s in gaussian_run.steps_done:
        rate, dist, kl = gaussian_optimum(SIGMAS, s["beta"])
        assert s["rate"] == pytest.approx(rate, abs=0.1 + 0.05 * rate), s
        # the two most informative directions carry log(σ_i/β) each (0 once σ_i < β)
        top = sorted(s["kl_per_dim"], reverse=True)[:2]
        np.testing.assert_allclose(top, sorted(kl, reverse=True), atol=0.15, err_msg=str(s["beta"]))
        assert s["distortion"] == pytest.approx(dist, rel=0.4, abs=0.004), s


def test_D1_D2_count_the_directions_wider_than_beta(gaussian_run):
    steps = gaussian_run.steps_done
    beta = [s["beta"] for s in steps]
    mid, d1, d2 = dimensionalities(beta, [s["rate"] for s in steps], [s["distortion"] for s in steps])
    exact = [gaussian_optimum(SIGMAS, b)[:2] for b in beta]
    _, e1, e2 = dimensionalities(beta, [r for r, _ in exact], [d for _, d in exact])
    clean = np.array([not any(lo < s < hi for s in SIGMAS) for lo, hi in zip(beta[:-1], beta[1:])])
    count = np.array([sum(s > m for s in SIGMAS) for m in mid])
    np.testing.assert_allclose(e1[clean], count[clean])  # the closed form's finite differences count
    np.testing.assert_allclose(d1[clean], count[clean], atol=0.35)
    np.testing.assert_allclose(d2[clean], count[clean], atol=0.35)
    # across a transition the finite differences of the closed form itself
    np.testing.assert_allclose(d1, e1, atol=0.35)
    np.testing.assert_allclose(d2, e2, atol=0.35)
