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


# --------------------------------------------------------------------------- residual_pairing = "ttbar"
TT_Z = ("e-", "nu_e~", "b", "b~", "u", "d~")
TT_X = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")


def ttbar_events(n=3000):
    """Real parton-level tt̄ events (data/ttbar_test.nc) and x built from them: e⁻, MET = ν̄'s
    transverse momentum, jets = the four quarks in a random order (per event)."""
    import xarray as xr

    from otviz.paths import resolve

    with xr.open_dataset(resolve("data/ttbar_test.nc"), engine="h5netcdf") as ds:
        assert tuple(ds.z_particle.values) == TT_Z and tuple(ds.x_particle.values) == TT_X
        z = torch.as_tensor(ds.z.values[:n], dtype=torch.float64)
        x_real = torch.as_tensor(ds.x.values[:n], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    perm = torch.argsort(torch.rand(n, 4, generator=g), 1)  # jet j = quark perm[:, j]
    jets = torch.gather(z[:, 2:], 1, perm[..., None].expand(-1, -1, 4))
    nu = z[:, 1]
    met = torch.stack([nu[:, 0], nu[:, 1], torch.zeros(n, dtype=torch.float64), fv.pt(nu)], -1)
    return z, torch.cat([z[:, :1], met[:, None], jets], 1), perm, x_real


def identity_ttbar_model(x_real, z, pairing="ttbar", **kw):
    """The tt̄ preset's generators with out_init_scale 0: the core outputs 0, so each output
    slot is exactly its residual 3-momentum (and the Minkowski energy)."""
    g = GeneratorConfig(hidden=16, conditional_noise=False, noise_dim=18, residual_core=True, input_residual=True,
                        out_init_scale=0.0)
    model = OTUS(OTUSConfig(z_particles=TT_Z, x_particles=TT_X, encoder=g, decoder=g, residual_pairing=pairing,
                            **kw)).double()
    model.fit_standardisation(x_real, z)
    return model.eval()


def test_ttbar_pairing_decoder_sends_the_quarks_to_the_jets_in_decreasing_pt():
    """(a) D(z) with the identity core: e⁻ → e⁻, ν̄ → MET (p_z its constant 0), b b̄ u d̄ sorted by
    decreasing pT → jet1..jet4, with massless energies E = |p|."""
    z, _, _, x_real = ttbar_events(500)
    out = identity_ttbar_model(x_real, z).decode(z)
    q = z[:, 2:, :3]
    order = torch.argsort(fv.pt(z[:, 2:]), 1, descending=True)
    want = torch.gather(q, 1, order[..., None].expand(-1, -1, 3))
    torch.testing.assert_close(out[:, 2:, :3], want, rtol=0, atol=1e-9)
    torch.testing.assert_close(out[:, 2:, 3], want.norm(dim=-1), rtol=1e-12, atol=1e-9)
    assert torch.all(fv.pt(out[:, 2]) >= fv.pt(out[:, 3])) and torch.all(fv.pt(out[:, 4]) >= fv.pt(out[:, 5]))
    torch.testing.assert_close(out[:, 0, :3], z[:, 0, :3], rtol=0, atol=1e-9)
    torch.testing.assert_close(out[:, 1, :2], z[:, 1, :2], rtol=0, atol=1e-9)
    assert torch.equal(out[:, 1, 2], torch.zeros(500, dtype=torch.float64))
    # the slot pairing (default) adds b → jet1, b̄ → jet2, u → jet3, d̄ → jet4 instead
    slot = identity_ttbar_model(x_real, z, pairing="slot").decode(z)
    torch.testing.assert_close(slot[:, 2:, :3], q, rtol=0, atol=1e-9)


def test_ttbar_pairing_encoder_puts_the_chi2_assigned_jets_in_their_quark_slots():
    """(b) E(x) with the identity core, x's jets = the event's quarks in random order: where the
    χ² assignment is unambiguous (the true one is the minimum by Δχ² > 4) the output is the quarks
    in their slots: hadronic b jet → b, leptonic b jet → b̄, the harder W jet → u, the other → d̄."""
    from otviz.physics.ttbar import JET_ASSIGNMENTS, assignment_chi2, neutrino

    z, x, perm, x_real = ttbar_events()
    n = len(z)
    # χ² of all 12 assignments and the true one's index, computed here from the quarks
    jets, lw = x[:, 2:], x[:, 0] + neutrino(x[:, 0], x[:, 1])
    chi2 = torch.stack([assignment_chi2(fv.mass(lw + jets[:, bl]), fv.mass(jets[:, w1] + jets[:, w2]),
                                        fv.mass(jets[:, bh] + jets[:, w1] + jets[:, w2]))
                        for bl, bh, w1, w2 in JET_ASSIGNMENTS], 1)
    pos = torch.argsort(perm, 1)  # pos[:, k]: the jet holding quark k (b, b̄, u, d̄)
    w = torch.sort(pos[:, 2:], 1).values
    true = torch.tensor([JET_ASSIGNMENTS.index((int(a), int(b), int(c), int(d)))
                         for a, b, c, d in zip(pos[:, 1], pos[:, 0], w[:, 0], w[:, 1])])
    top2 = torch.topk(chi2, 2, 1, largest=False).values
    clear = (chi2.argmin(1) == true) & (top2[:, 1] - top2[:, 0] > 4)
    assert clear.double().mean() > 0.2  # 26 % of these 3,000 events
    out = identity_ttbar_model(x_real, z).encode(x)[clear]
    zc = z[clear]
    harder = (fv.pt(zc[:, 4]) >= fv.pt(zc[:, 5]))[:, None]
    want = torch.stack([zc[:, 0, :3], zc[:, 1, :3], zc[:, 2, :3], zc[:, 3, :3],
                        torch.where(harder, zc[:, 4, :3], zc[:, 5, :3]),
                        torch.where(harder, zc[:, 5, :3], zc[:, 4, :3])], 1)
    want[:, 1, 2] = 0.0  # ν̄ ← MET: no p_z
    torch.testing.assert_close(out[..., :3], want, rtol=0, atol=1e-9)
    torch.testing.assert_close(fv.mass(out[:, 2:4]), torch.full((len(zc), 2), 4.7, dtype=torch.float64))


def test_ttbar_pairing_config_round_trip_old_default_and_errors():
    """(c) residual_pairing is persisted; configs without it load as "slot"; bad values name the field."""
    from otviz.errors import ConfigError
    from otviz.train.config import TtbarConfig, otus_ttbar_config

    cfg = OTUSConfig(z_particles=TT_Z, x_particles=TT_X, residual_pairing="ttbar")
    d = cfg.to_dict()
    assert d["residual_pairing"] == "ttbar" and OTUSConfig.from_dict(d) == cfg
    del d["residual_pairing"]  # a config.json written before the option
    assert OTUSConfig.from_dict(d).residual_pairing == "slot"
    train = otus_ttbar_config(epochs=3)
    assert train.model_config.residual_pairing == "slot"  # off by default
    train.model_config.residual_pairing = "ttbar"
    back = TtbarConfig.from_json(train.validate().to_json())
    assert back == train and back.model_config.residual_pairing == "ttbar"
    with pytest.raises(ConfigError, match=r"^OTUSConfig.residual_pairing = 'pt': must be one of slot \| ttbar$"):
        OTUSConfig(z_particles=TT_Z, x_particles=TT_X, residual_pairing="pt")
    with pytest.raises(ConfigError, match="residual_pairing = 'ttbar': needs z particles") as exc:
        OTUSConfig(residual_pairing="ttbar")  # e⁺e⁻
    assert exc.value.field == "residual_pairing"
    train.model_config.residual_pairing = "bogus"  # set after construction: caught by validate
    with pytest.raises(ConfigError) as exc:
        train.validate()
    assert exc.value.path == "model_config.residual_pairing"
    # any order of the tt̄ particles is fine: slots are found by name
    shuffled = OTUS(OTUSConfig(z_particles=TT_Z[::-1], x_particles=TT_X[::-1], residual_pairing="ttbar"))
    assert shuffled._ttbar == ([5, 4, 3, 2, 1, 0], [5, 4, 3, 2, 1, 0])


def test_ttbar_pairing_gradient_flows_through_the_residual_values():
    """(d) The permutation has no gradient, the picked momenta do: with the identity core,
    ∂(Σ jet p_x)/∂(quark p_x) = 1 for every quark (each feeds exactly one jet), 0 for e⁻ and ν̄;
    likewise the encoder's ∂(Σ quark p_x)/∂(jet p_x) = 1."""
    z, x, _, x_real = ttbar_events(200)
    model = identity_ttbar_model(x_real, z)
    z = z.clone().requires_grad_(True)
    model.decode(z)[:, 2:, 0].sum().backward()
    want = torch.zeros_like(z)
    want[:, 2:, 0] = 1.0
    torch.testing.assert_close(z.grad, want, rtol=0, atol=0)
    x = x.clone().requires_grad_(True)
    model.encode(x)[:, 2:, 0].sum().backward()
    want = torch.zeros_like(x)
    want[:, 2:, 0] = 1.0
    torch.testing.assert_close(x.grad, want, rtol=0, atol=0)
