"""HadML's model: exact two-body kinematics for any masses through the model, charge conservation
of the sampled species, the Gumbel-softmax head, the Deep Sets event discriminator's invariances
and the state dict (weights and condition scaler)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from otviz.errors import ConfigError
from otviz.models.hadml import (PAIR_CHARGE, PAIRS, EventDiscriminator, HadML, HadMLModelConfig, charge_mask,
                                flavour_onehot, gumbel_softmax, hadron_features, pair_index, pair_masses,
                                parton_charge)
from otviz.physics import twobody
from otviz.physics.masses import mass_of_pid

SMALL = HadMLModelConfig(g_hidden=(16,), d_hidden=(16,), phi_hidden=(8,), phi_out=8, f_hidden=(8,))


def clusters(n, seed=0, m_lo=0.5, m_hi=6.0):
    rng = np.random.default_rng(seed)
    M = rng.uniform(m_lo, m_hi, n)
    p3 = rng.normal(0, 20, (n, 3))
    return np.concatenate([p3, np.sqrt(M ** 2 + (p3 ** 2).sum(1))[:, None]], 1), M


def model(seed=0, cfg=SMALL):
    torch.manual_seed(seed)
    m = HadML(cfg)
    m.fit_scaler(clusters(100, 99)[0])
    return m


def test_pion_masses_are_the_pdg_values_never_scaled():
    pm = pair_masses()
    assert pm[0, 0] == pytest.approx(0.1349768, abs=0) and pm[1, 0] == pytest.approx(0.13957039, abs=0)
    assert np.array_equal(pm, [[mass_of_pid(a), mass_of_pid(b)] for a, b in PAIRS])
    assert torch.equal(HadML(SMALL).pair_mass, torch.as_tensor(pm))


@pytest.mark.parametrize("masses", [(0.0, 0.0), (0.1349768, 0.13957039), (0.5, 1.2), (1.9, 0.05), (0.77, 0.77)])
def test_model_outputs_conserve_four_momentum_and_sit_on_shell_for_any_masses(masses):
    """Every pair given the masses (m₀, m₁): Σ hadrons = cluster and hᵢ² = mᵢ² to rounding, and the
    rest-frame energies are E₀* = (M² + m₀² − m₁²)/2M, E₁* = M − E₀* (a p₀/2 boost, exact only for
    equal masses, fails this for m₀ ≠ m₁)."""
    m = model()
    m.pair_mass.copy_(torch.tensor([masses] * len(PAIRS), dtype=torch.float64))
    c, M = clusters(500, 1, m_lo=sum(masses) + 0.05)
    h, pid = m.sample_with_pid(c, generator=torch.Generator().manual_seed(3))
    assert h.shape == (500, 2, 4) and h.dtype == np.float64
    scale = c[:, 3:4]
    assert np.abs(h.sum(1) - c).max() / scale.max() < 1e-12
    m2 = h[..., 3] ** 2 - (h[..., :3] ** 2).sum(-1)
    assert np.allclose(m2, np.square(masses)[None, :], atol=1e-9 * scale.max() ** 2)
    rest = twobody.boost_to_rest(h, c[:, None, :])
    e0 = (M ** 2 + masses[0] ** 2 - masses[1] ** 2) / (2 * M)
    assert np.allclose(rest[:, 0, 3], e0, atol=1e-9) and np.allclose(rest[:, 1, 3], M - e0, atol=1e-9)
    p = twobody.rest_momentum(M, *masses)
    assert np.allclose(np.linalg.norm(rest[:, 0, :3], axis=1), p, atol=1e-8)
    assert np.allclose(rest[:, 0, :3], -rest[:, 1, :3], atol=1e-8)


def test_generated_angles_are_those_of_hadron_zero_about_the_decay_axis():
    """The kinematics put hadron 0 at exactly the generator's (cos θ, φ) about the decay axis."""
    m = model()
    c, _ = clusters(200, 2)
    axis = np.random.default_rng(3).normal(size=(200, 3))
    from otviz.models.hadml import Decay

    cos, phi = np.random.default_rng(4).uniform(-1, 1, 200), np.random.default_rng(5).uniform(-3, 3, 200)
    pair = torch.nn.functional.one_hot(torch.randint(0, len(PAIRS), (200,)), len(PAIRS)).double()
    h = m.hadrons(torch.as_tensor(c), torch.as_tensor(axis), Decay(torch.as_tensor(cos), torch.as_tensor(phi), pair))
    c2, p2 = twobody.decay_angles(h[:, 0].numpy(), c, axis)
    assert np.allclose(c2, cos, atol=1e-9) and np.allclose(np.angle(np.exp(1j * (p2 - phi))), 0, atol=1e-7)


def test_sampled_species_conserve_charge_exactly():
    m = model()
    rng = np.random.default_rng(0)
    # quark (parton 0) and antiquark (parton 1) of u/d flavour: charges +1, 0, 0, −1
    q = rng.choice([1, 2], 4000)
    qbar = -rng.choice([1, 2], 4000)
    pid = np.stack([q, qbar], 1)
    c, _ = clusters(4000, 5)
    _, hp = m.sample_with_pid(c, parton_pid=pid, generator=torch.Generator().manual_seed(1))
    charge = (hp == 211).sum(1) - (hp == -211).sum(1)
    expect = parton_charge(pid)
    assert np.array_equal(charge, expect) and set(np.unique(expect)) == {-1, 0, 1}
    assert (pair_index(hp) >= 0).all()
    # a given charge overrides; NaN (unknown) allows every pair
    _, hp = m.sample_with_pid(c, charge=1, generator=torch.Generator().manual_seed(2))
    assert ((hp == 211).sum(1) - (hp == -211).sum(1) == 1).all()
    _, hp = m.sample_with_pid(c, generator=torch.Generator().manual_seed(2))
    assert len(np.unique(pair_index(hp))) == len(PAIRS)
    with pytest.raises(ValueError, match="charge 2 has no pion pair"):
        charge_mask([2.0])


def test_flavour_and_charge_helpers():
    assert np.array_equal(parton_charge([[2, -1], [1, -1], [1, -2], [2, -2], [0, -2], [21, -1]])[:4], [1, 0, -1, 0])
    assert np.isnan(parton_charge([[0, -2], [21, -1]])).all()
    oh = flavour_onehot([[2, -1], [0, 0]])
    assert oh.shape == (2, 20) and oh[0, 1] == 1 and oh[0, 10 + 5] == 1 and oh.sum() == 2
    mask = charge_mask([0, 1, -1, np.nan])
    assert mask.sum(1).tolist() == [3, 2, 2, 7]
    assert [PAIR_CHARGE[k] for k in np.flatnonzero(mask[1])] == [1, 1]


def test_gumbel_softmax_temperature_mask_and_hard_draws():
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5, 0.0]])).expand(20000, 4).clone()
    logits[:, 3] = float("-inf")
    gen = torch.Generator().manual_seed(0)
    for tau, peaked in ((10.0, False), (0.1, True)):
        y = gumbel_softmax(logits, tau, gen)
        assert torch.allclose(y.sum(1), torch.ones(len(y))) and (y[:, 3] == 0).all()
        top = y.max(1).values.mean()
        assert (top > 0.95) if peaked else (top < 0.45)
    hard = gumbel_softmax(logits, 1.0, gen, hard=True)
    assert set(hard.sum(1).tolist()) == {1.0} and hard[:, 3].sum() == 0
    freq = hard.mean(0)[:3].numpy()
    assert np.allclose(freq, [0.2, 0.3, 0.5], atol=4 * np.sqrt(0.25 / 20000))  # Gumbel-max: a draw from softmax(ℓ)


def _events(seed, n_ev=6, width=10):
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(3, width + 1, (n_ev,), generator=g)
    mask = torch.arange(width)[None, :] < n[:, None]
    p3 = torch.randn((n_ev, width, 3), generator=g, dtype=torch.float64) * 5
    h = torch.cat([p3, torch.sqrt((p3 ** 2).sum(-1, keepdim=True) + 0.0195)], -1) * mask[..., None]
    sp = torch.nn.functional.one_hot(torch.randint(0, 3, (n_ev, width), generator=g), 3).double() * mask[..., None]
    return h, sp, mask


def test_deep_sets_discriminator_is_permutation_and_padding_invariant():
    torch.manual_seed(0)
    d = EventDiscriminator(SMALL).double()
    h, sp, mask = _events(1)
    ref = d(h, sp, mask)
    perm = torch.randperm(h.shape[1])
    assert torch.allclose(d(h[:, perm], sp[:, perm], mask[:, perm]), ref, atol=1e-12)
    pad = lambda x, v: torch.cat([x, torch.full(x.shape[:1] + (5,) + x.shape[2:], v, dtype=x.dtype)], 1)  # noqa: E731
    assert torch.allclose(d(pad(h, 7.0), pad(sp, 1.0), pad(mask, False)), ref, atol=1e-12)
    # features see the hadrons only: zero on padding, finite everywhere
    f = hadron_features(h, sp, mask)
    assert torch.isfinite(f).all() and (f[~mask] == 0).all()
    # one event's score depends on its own hadrons only
    h2 = h.clone()
    h2[0, 0, :3] *= 2
    out = d(h2, sp, mask)
    assert out[0] != ref[0] and torch.allclose(out[1:], ref[1:])


def test_state_dict_round_trip_includes_the_scaler():
    m = model(0)
    m.fit_scaler(clusters(300, 7)[0])
    state = m.state_dict()
    assert {"cond_lo", "cond_hi", "pair_mass"} <= set(state)
    other = HadML(SMALL)
    assert not torch.equal(other.cond_lo, m.cond_lo)
    other.load_state_dict(state)
    c, _ = clusters(50, 8)
    a = m.sample(c, generator=torch.Generator().manual_seed(4))
    b = other.sample(c, generator=torch.Generator().manual_seed(4))
    assert np.array_equal(a, b)
    # torch in → torch out (float64, the model's device)
    t = m.sample(torch.as_tensor(c), generator=torch.Generator().manual_seed(4))
    assert torch.is_tensor(t) and t.dtype == torch.float64 and np.allclose(t.numpy(), a)
    cond = m.condition(c)
    assert cond.shape[1] == 26 and cond[:, :5].abs().max() <= 1.5


def test_model_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="g_hidden"):
        HadMLModelConfig(g_hidden=(0,))
    with pytest.raises(ConfigError, match="noise_dim"):
        HadMLModelConfig(noise_dim=0)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        model().sample(np.zeros((3, 3)))


def test_sampling_refuses_impossible_clusters():
    """Non-finite, space-like (e.g. Herwig's E-first order read as px, py, pz, E) and
    below-threshold clusters are refused naming how many and the first index; at the threshold of
    the lightest pair the charge allows they decay, with the exact masses."""
    import xarray as xr

    m = model()
    m_pi0, m_pic = mass_of_pid(111), mass_of_pid(211)
    ok, _ = clusters(5, 1)
    herwig_order = ok[:, [3, 0, 1, 2]]  # E first
    with pytest.raises(ValueError, match=r"5 of 5 clusters have space-like .* first is index 0 .*\(px, py, pz, E\)"):
        m.sample(herwig_order)
    bad = ok.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 of 5 clusters have non-finite .* first is index 3"):
        m.sample_with_pid(bad)
    low = np.array([[0.0, 0.0, 0.0, 2 * m_pi0 - 1e-4], *ok])
    with pytest.raises(ValueError, match=r"1 of 6 clusters have masses below .* index 0 \(M = 0.26985 GeV < 0.26995"):
        m.sample(low)
    # charged: π⁰π± threshold; a neutral cluster between 2 m_π⁰ and m_π⁰ + m_π± still decays (π⁰π⁰)
    between = np.array([[0.0, 0.0, 0.0, m_pi0 + m_pic - 1e-4]])
    with pytest.raises(ValueError, match="index 0"):
        m.sample(between, charge=1.0)
    h, pid = m.sample_with_pid(between, charge=0.0)
    assert pid.tolist() == [[111, 111]] and np.abs(h.sum(1) - between).max() < 1e-12
    at = np.array([[0.0, 0.0, 0.0, m_pi0 + m_pic + 1e-9]])
    h, pid = m.sample_with_pid(at, charge=1.0)
    assert np.abs(h.sum(1) - at).max() < 1e-12
    # sample_dataset goes through the same check
    ds = xr.Dataset({"cluster": (("cluster", "component"), herwig_order),
                     "parton_pid": (("cluster", "parton"), np.zeros((5, 2), int)),
                     "parton_mask": (("cluster", "parton"), np.zeros((5, 2), bool)),
                     "parton": (("cluster", "parton", "component"), np.zeros((5, 2, 4))),
                     "perturbative": (("cluster", "parton"), np.zeros((5, 2), bool)),
                     "hadron_pid": (("cluster", "hadron"), np.tile([111, 111], (5, 1)))})
    with pytest.raises(ValueError, match="space-like"):
        m.sample_dataset(ds)
