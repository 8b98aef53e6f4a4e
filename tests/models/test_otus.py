import pytest
import torch

from otviz.models.otus import OTUS, GeneratorConfig, OTUSConfig
from otviz.physics import fourvec as fv


def toy(n=256, particles=2, seed=0, mass=0.0):
    g = torch.Generator().manual_seed(seed)
    p3 = torch.randn(n, particles, 3, generator=g, dtype=torch.float64) * 40
    return fv.minkowski(p3, mass)


def test_shapes_and_minkowski_invariant():
    model = OTUS(OTUSConfig()).double()
    x, z = toy(seed=1), toy(seed=2, mass=0.000511)
    model.fit_standardisation(x, z)
    zt = model.encode(x)
    xt = model.decode(z)
    assert zt.shape == (256, 2, 4) and xt.shape == (256, 2, 4)
    torch.testing.assert_close(fv.mass2(zt), torch.full((256, 2), 0.000511**2, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(fv.mass2(xt), torch.zeros(256, 2, dtype=torch.float64), atol=1e-8, rtol=0)


def test_ttbar_variant_fixed_noise_residual_core_and_input_residual():
    zp = ("e-", "nu_e~", "b", "b~", "u", "d~")
    xp = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")
    gcfg = GeneratorConfig(hidden=64, conditional_noise=False, noise_dim=18, residual_core=True, input_residual=True)
    model = OTUS(OTUSConfig(z_particles=zp, x_particles=xp, encoder=gcfg, decoder=gcfg)).double()
    masses = torch.tensor([0.0, 0.0, 4.7, 4.7, 0.0, 0.0], dtype=torch.float64)
    z, x = toy(particles=6, mass=masses), toy(particles=6, seed=3)
    model.fit_standardisation(x, z)
    assert model.decoder.noise_net is None
    core = model.decoder.core
    assert core.inp.in_features == 24 + 18 and core.out.out_features == 18 and core.inp.out_features == 64
    xt = model.decode(z)
    torch.testing.assert_close(fv.mass(model.encode(x)), masses.expand(256, 6), atol=1e-4, rtol=0)
    # input-to-output residual: zero core output means the identity on 3-momenta
    for p in model.decoder.core.out.parameters():
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(model.decode(z)[..., :3], z[..., :3])
    assert xt.shape == (256, 6, 4)


def test_stochastic_and_seedable():
    model = OTUS(OTUSConfig())
    z = toy(seed=4).float()
    model.fit_standardisation(z, z)
    a = model.decode(z[:1].expand(500, 2, 4))
    assert a[:, 0, 0].std() > 0  # one z decoded many times gives a distribution
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    torch.testing.assert_close(model.decode(z, g1), model.decode(z, g2))
    # the noise network starts wide: σ = softplus(1) ≈ 1.31
    with torch.no_grad():
        h = model.decoder.noise_net(torch.zeros(1, 8))
    assert float(torch.nn.functional.softplus(h[0, 6:]).mean()) == pytest.approx(1.31, abs=0.3)


def test_input_residual_needs_matching_particles():
    with pytest.raises(ValueError, match="same number"):
        OTUS(OTUSConfig(z_particles=("a",), x_particles=("b", "c"), decoder=GeneratorConfig(input_residual=True)))
