import pytest
import torch

from otviz.models.otus import OTUS, GeneratorConfig, OTUSConfig
from otviz.physics import fourvec as fv
from otviz.physics.masses import mass_of

M_E = 0.51099895e-3  # GeV


def toy(n=256, particles=2, seed=0, mass=0.0):
    g = torch.Generator().manual_seed(seed)
    p3 = torch.randn(n, particles, 3, generator=g, dtype=torch.float64) * 40
    return fv.minkowski(p3, mass)


def test_shapes_and_minkowski_invariant():
    """Outputs satisfy E² − |p|² = m² for the table masses (OTUS Eq. 10)."""
    model = OTUS(OTUSConfig()).double()
    x, z = toy(seed=1), toy(seed=2, mass=M_E)
    model.fit_standardisation(x, z)
    zt = model.encode(x)
    xt = model.decode(z)
    assert zt.shape == (256, 2, 4) and xt.shape == (256, 2, 4)
    for out in (zt, xt):
        torch.testing.assert_close(fv.mass2(out), torch.full((256, 2), M_E**2, dtype=torch.float64), atol=1e-10, rtol=0)


def test_masses_come_from_the_table_not_from_the_data():
    """Training data whose median mass is not the particle's (here 0.3 GeV electrons, as float32
    rounding produces at a smaller scale) must not move the Minkowski-layer masses."""
    model = OTUS(OTUSConfig()).double()
    x, z = toy(seed=1, mass=0.3), toy(seed=2, mass=0.3)
    model.fit_standardisation(x, z)
    for out in (model.encode(x), model.decode(z)):
        torch.testing.assert_close(fv.mass(out), torch.full((256, 2), M_E, dtype=torch.float64), atol=1e-6, rtol=0)


def test_config_masses_round_trip_and_old_configs_load(tmp_path):
    from otviz.train.config import otus_zee_config, TrainConfig

    cfg = OTUSConfig(z_particles=("e-", "nu_e~", "b", "b~"), x_particles=("e-", "MET", "jet1", "jet2"),
                     masses={"b": 4.5})
    assert cfg.masses == {"e-": M_E, "nu_e~": 0.0, "b": 4.5, "b~": 4.7, "MET": 0.0, "jet1": 0.0, "jet2": 0.0}
    assert OTUSConfig.from_dict(cfg.to_dict()) == cfg
    train = otus_zee_config(epochs=3)
    assert train.model_config.masses == {"e-": M_E, "e+": M_E}
    back = TrainConfig.from_json(train.to_json())
    assert back == train and back.model_config.masses == {"e-": M_E, "e+": M_E}
    old = cfg.to_dict()
    del old["masses"]  # a config.json written before the mass table
    assert OTUSConfig.from_dict(old).masses["b"] == 4.7
    with pytest.raises(ValueError, match="no mass for particle 'graviton'"):
        OTUSConfig(z_particles=("graviton",))
    model = OTUS(cfg)
    assert model.encoder.out_mass.tolist() == pytest.approx([M_E, 0.0, 4.5, 4.7])
    assert model.decoder.out_mass.tolist() == pytest.approx([M_E, 0.0, 0.0, 0.0])


def test_ttbar_variant_fixed_noise_residual_core_and_input_residual():
    zp = ("e-", "nu_e~", "b", "b~", "u", "d~")
    xp = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")
    gcfg = GeneratorConfig(hidden=64, conditional_noise=False, noise_dim=18, residual_core=True, input_residual=True)
    model = OTUS(OTUSConfig(z_particles=zp, x_particles=xp, encoder=gcfg, decoder=gcfg)).double()
    masses = torch.tensor([mass_of(p) for p in zp], dtype=torch.float64)
    assert masses.tolist() == [M_E, 0.0, 4.7, 4.7, 0.0, 0.0]
    z, x = toy(particles=6, mass=masses), toy(particles=6, seed=3)
    model.fit_standardisation(x, z)
    assert model.decoder.noise_net is None
    core = model.decoder.core
    assert core.inp.in_features == 24 + 18 and core.out.out_features == 18 and core.inp.out_features == 64
    xt = model.decode(z)
    torch.testing.assert_close(fv.mass(model.encode(x)), masses.expand(256, 6), atol=1e-5, rtol=0)
    x_masses = torch.tensor([M_E, 0, 0, 0, 0, 0], dtype=torch.float64)  # e-, MET, 4 jets
    torch.testing.assert_close(fv.mass(xt), x_masses.expand(256, 6), atol=1e-5, rtol=0)
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
        OTUS(OTUSConfig(z_particles=("e-",), x_particles=("e-", "e+"), decoder=GeneratorConfig(input_residual=True)))


def test_out_init_scale_starts_near_the_identity():
    z = toy(seed=5).float()
    dev = {}
    for scale in (0.0, 0.1, 1.0):
        torch.manual_seed(0)
        model = OTUS(OTUSConfig(decoder=GeneratorConfig(input_residual=True, out_init_scale=scale)))
        model.fit_standardisation(z, z)
        dev[scale] = float((model.decode(z)[..., :3] - z[..., :3]).abs().mean())
    assert dev[0.0] == 0.0 and 0.05 < dev[0.1] / dev[1.0] < 0.2


def test_mass_coordinate_is_the_breit_wigner_cdf_of_the_truth_batch():
    """u = (2/π)·atan((m − m₀)/γ) with m₀, γ from the truth batch: uniform on (−1, 1) for a
    Breit–Wigner truth; a 1.4× wider peak is seen."""
    from otviz.ot.sliced import sliced_wasserstein
    from otviz.losses.otus import features, mass_transform

    g = torch.Generator().manual_seed(0)
    n = 20000

    def pairs(width):  # back-to-back massless e+e- at rest with a Breit–Wigner mass, random axis
        m = 91.19 + width * torch.tan(torch.pi * (torch.rand(n, generator=g, dtype=torch.float64) - 0.5))
        m = m.clamp(60, 200)
        axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
        p = axis * (m / 2)[:, None]
        return torch.stack([fv.minkowski(p, 0.0), fv.minkowski(-p, 0.0)], 1)

    truth, same, wide = pairs(1.25), pairs(1.25), pairs(1.75)
    m0, gamma = mass_transform(truth)
    assert float(m0) == pytest.approx(91.19, abs=0.1) and float(gamma) == pytest.approx(1.25, rel=0.05)
    u = features(truth, 1.0, (m0, gamma))[:, -1]
    assert torch.histc(u, bins=4, min=-1, max=1).div(n).sub(0.25).abs().max() < 0.02
    scale = truth.reshape(n, -1).std(0)
    th = torch.nn.functional.normalize(torch.randn(500, 9, generator=g, dtype=torch.float64), dim=1)
    sw = [float(sliced_wasserstein(features(truth, scale, (m0, gamma)), features(b, scale, (m0, gamma)), theta=th))
          for b in (same, wide)]
    assert sw[1] > 3 * sw[0]  # a 1.4× wider peak stands out of the sampling noise


def test_constant_output_components_stay_constant_and_pt_order_sorts_the_jets():
    """MET has p_z ≡ 0 in the data (σ = 0): the decoder outputs exactly 0 there (a zero spread
    must not turn the input residual's ν̄ p_z into a 10¹² loss in standardised units). With
    ``pt_order`` the named slots come out in decreasing pT, the others untouched."""
    zp, xp = ("e-", "nu_e~", "b", "b~"), ("e-", "MET", "jet1", "jet2")
    g = GeneratorConfig(hidden=16, conditional_noise=False, noise_dim=4, residual_core=True, input_residual=True)
    z = toy(particles=4, seed=4)
    x = toy(particles=4, seed=5)
    x[:, 1, 2] = 0.0  # MET p_z
    x[:, 1, 3] = fv.pt(x[:, 1])
    for order in ((), ("jet1", "jet2")):
        torch.manual_seed(0)
        model = OTUS(OTUSConfig(z_particles=zp, x_particles=xp, encoder=g, decoder=g, pt_order=order)).double()
        model.fit_standardisation(x, z)
        out = model.decode(z, torch.Generator().manual_seed(0))
        assert torch.equal(out[:, 1, 2], torch.zeros(256, dtype=torch.float64))
        assert torch.all(out[:, 0, 2] != 0)  # the electron's p_z is not constant
        if order:
            pt = fv.pt(out[:, 2:])
            assert torch.all(pt[:, 0] >= pt[:, 1]) and not torch.all(fv.pt(unsorted[:, 2]) >= fv.pt(unsorted[:, 3]))
            torch.testing.assert_close(out[:, :2], unsorted[:, :2])  # same weights (seeded), same e⁻ and MET
            torch.testing.assert_close(torch.sort(pt, 1).values, torch.sort(fv.pt(unsorted[:, 2:]), 1).values)
        else:
            unsorted = out
    with pytest.raises(ValueError, match="'jet7' is not an x particle"):
        OTUSConfig(z_particles=zp, x_particles=xp, pt_order=("jet7",))
