"""The Turbo-Sim objective: tests that would have caught each of the public code's four wiring bugs
(REFERENCE §4): an unused accumulator (only the last term back-propagated), a "paired" loader that
permutes x against z, one scalar standardisation for all features, and in-place input noise."""
import pytest
import torch

from otviz.data.toy import gaussian_smearing
from otviz.losses.turbosim import SUPERVISED, TERMS, TurboSimWeights, critic_loss, generator_loss
from otviz.models.turbosim import CRITICS, TurboSim, TurboSimModelConfig
from otviz.train.pairing import PairedSampler

# which generator each term's gradient must reach (and no other)
REACHES = {
    "l_z_tilde": {"encoder"}, "d_z_tilde": {"encoder"},
    "l_x_hat": {"encoder", "decoder"}, "d_x_hat": {"encoder", "decoder"},
    "l_x_tilde": {"decoder"}, "d_x_tilde": {"decoder"},
    "l_z_hat": {"encoder", "decoder"}, "d_z_hat": {"encoder", "decoder"},
}


def _model(noise=0.0, noise_dim=0, particles=("e-", "e+"), critic_masses=0):
    torch.manual_seed(0)
    m = TurboSim(TurboSimModelConfig(particles, particles, hidden=(32, 16), critic_hidden=(16,),
                                     noise_dim=noise_dim, input_noise=noise, critic_masses=critic_masses))
    z = torch.as_tensor(gaussian_smearing(400, seed=1).z.values).repeat(1, len(particles), 1)
    x = torch.as_tensor(gaussian_smearing(400, seed=2).x.values).repeat(1, len(particles), 1)
    m.fit_standardisation(x, z)
    return m, x[:64], z[:64]


def _only(term):
    return TurboSimWeights(**{t: float(t == term) for t in TERMS})


def _grads(model, parts=("encoder", "decoder", "critics")):
    out = {}
    for p in parts:
        gs = [q.grad for q in getattr(model, p).parameters()]
        out[p] = sum(float(g.abs().sum()) for g in gs if g is not None)
    return out


@pytest.mark.parametrize("term", TERMS)
def test_each_term_reaches_exactly_its_generators(term):
    model, x, z = _model()
    model.zero_grad()
    loss, terms = generator_loss(model, x, z, x, z, _only(term))
    assert set(terms) == {term, "loss"}  # a zero-weighted term is not even computed
    loss.backward()
    g = _grads(model, ("encoder", "decoder"))
    for part in ("encoder", "decoder"):
        assert (g[part] > 0) == (part in REACHES[term]), (term, part, g)


def test_every_weighted_term_enters_the_backpropagated_sum():
    """The public code accumulated the terms into a variable it never used: only the last term's
    gradient reached the networks. Here the gradient of the weighted sum equals Σ wₜ·∇(term t)."""
    model, x, z = _model()
    weights = TurboSimWeights(**{t: 0.5 + i for i, t in enumerate(TERMS)})
    params = model.generator_parameters()

    def grad_of(w):
        model.zero_grad()
        loss, _ = generator_loss(model, x, z, x, z, w)
        loss.backward()
        return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in params])

    total = grad_of(weights)
    parts = sum(getattr(weights, t) * grad_of(_only(t)) for t in TERMS)
    assert torch.allclose(total, parts, rtol=1e-4, atol=1e-6)
    _, terms = generator_loss(model, x, z, x, z, weights)
    assert terms["loss"] == pytest.approx(sum(getattr(weights, t) * terms[t] for t in TERMS), rel=1e-5)


def test_zero_weight_contributes_no_gradient():
    model, x, z = _model()
    w = TurboSimWeights(l_z_tilde=0.0, d_z_tilde=0.0, l_x_hat=0.0, d_x_hat=0.0, l_z_hat=0.0, d_z_hat=0.0)
    model.zero_grad()
    loss, _ = generator_loss(model, x, z, x, z, w)  # only the reverse supervised and adversarial x̃ terms
    loss.backward()
    assert _grads(model, ("encoder",))["encoder"] == 0.0


def test_critic_step_reaches_only_the_active_critics_never_the_generators():
    model, x, z = _model()
    w = TurboSimWeights(d_z_hat=0.0, d_x_hat=0.0)
    model.zero_grad()
    loss, terms = critic_loss(model, x, z, w, gp_weight=10.0)
    loss.backward()
    g = _grads(model)
    assert g["encoder"] == 0.0 and g["decoder"] == 0.0
    for name in CRITICS:
        got = sum(float(p.grad.abs().sum()) for p in model.critics[name].parameters() if p.grad is not None)
        assert (got > 0) == (name in ("z_tilde", "x_tilde")), name
    assert {"w_z_tilde", "gp_z_tilde", "w_x_tilde", "gp_x_tilde"} <= set(terms) and "w_z_hat" not in terms


def test_supervised_terms_need_pairs_and_the_rest_do_not():
    model, x, z = _model()
    _, terms = generator_loss(model, x, z, None, None, TurboSimWeights())
    assert not set(SUPERVISED) & set(terms) and len(terms) == len(TERMS) - len(SUPERVISED) + 1
    with pytest.raises(ValueError, match="no active term"):
        generator_loss(model, x, z, None, None, TurboSimWeights(**{t: float(t in SUPERVISED) for t in TERMS}))


def test_supervised_term_is_zero_only_for_true_pairs():
    """A perfect map on true pairs has zero supervised loss; the same events permuted do not."""
    model, x, z = _model()
    w = _only("l_x_tilde")
    with torch.no_grad():
        x_exact = model.decode(z)  # a deterministic decoder's own output: the perfect "x" for these z
    _, paired = generator_loss(model, x, z, x_exact, z, w)
    _, shuffled = generator_loss(model, x, z, x_exact[torch.roll(torch.arange(len(z)), 1)], z, w)
    assert paired["l_x_tilde"] < 1e-8 < shuffled["l_x_tilde"]


def test_paired_batches_are_the_same_events():
    n = 1000
    sampler = PairedSampler(n, 0.1, seed=3)
    assert sampler.n_paired == 100 and len(set(sampler.paired.tolist())) == 100
    event = torch.arange(n)
    x_id, z_id = event * 10, event * 10  # x and z of event i carry its number
    seen, unpaired_same = set(), 0
    for epoch in range(3):
        for ix, iz, ip in sampler.epoch(epoch, 200):
            assert torch.equal(x_id[ip], z_id[ip])  # a paired batch is paired
            assert set(ip.tolist()) <= set(sampler.paired.tolist())  # and only from the paired subset
            unpaired_same += int((ix == iz).sum())
            seen |= set(ix.tolist())
    assert seen == set(range(n))  # the unsupervised terms see every event
    assert unpaired_same < 20  # x and z batches are independent permutations (≈ 1 match per 1000 expected)
    assert PairedSampler(n, 0.1, seed=3).paired.tolist() == sampler.paired.tolist()  # the same subset on resume
    assert next(PairedSampler(n, 0.0, seed=3).epoch(0, 200))[2] is None


def test_standardisation_is_per_feature():
    """The public code used one scalar mean and std for all 24 features; here each feature has its own."""
    torch.manual_seed(0)
    m = TurboSim(TurboSimModelConfig(("e-", "e+"), ("e-", "e+"), hidden=(8,), critic_hidden=(8,)))
    scale = torch.tensor([1.0, 10.0, 100.0])
    p = torch.randn(5000, 2, 3) * scale + torch.tensor([5.0, -3.0, 50.0])
    from otviz.physics import fourvec as fv

    x = fv.minkowski(p, 0.0)
    m.fit_standardisation(x, x)
    flat = x.reshape(len(x), -1)
    assert torch.allclose(m.encoder.in_std, flat.std(0), rtol=1e-4)
    assert torch.allclose(m.encoder.in_mean, flat.mean(0), rtol=1e-4, atol=1e-3)
    assert m.encoder.in_std[2] / m.encoder.in_std[0] > 50  # pz and px keep their own scales
    f = m.x_features(x)
    assert torch.allclose(f.mean(0), torch.zeros(8), atol=1e-3) and torch.allclose(f.std(0), torch.ones(8), atol=1e-3)
    state = m.state_dict()
    assert state["encoder.in_std"].shape == (8,) and state["decoder.out_std"].shape == (6,)  # stored with the model


def test_inputs_are_never_modified_in_place():
    model, x, z = _model(noise=0.5, noise_dim=2)
    x0, z0 = x.clone(), z.clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        closs, _ = critic_loss(model, x, z, TurboSimWeights())
        opt.zero_grad()
        closs.backward()
        opt.step()
        loss, _ = generator_loss(model, x, z, x, z, TurboSimWeights())
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.encode(x), model.decode(z)
    assert torch.equal(x, x0) and torch.equal(z, z0)


def test_input_noise_makes_the_maps_stochastic_and_zero_noise_deterministic():
    noisy, x, z = _model(noise=0.3)
    assert not torch.equal(noisy.decode(z), noisy.decode(z))
    quiet, x, z = _model()
    assert torch.equal(quiet.decode(z), quiet.decode(z))


@pytest.mark.parametrize("critic_masses", [0, 2])
def test_marginal_sw_on_the_feature_axes_is_the_mean_exact_1d_w2_of_pot(critic_masses):
    """With no random directions, the marginal term is the mean over the critic's features of the
    exact 1-D Wasserstein-2² of each marginal (POT's ``wasserstein_1d``, p = 2) — with
    ``critic_masses`` the standardised log m_ee is one of those features."""
    import ot

    from otviz.losses.turbosim import marginal_sw

    model, x, z = _model(critic_masses=critic_masses)
    assert model.critic_features("x", x).shape[1] == 8 + (critic_masses > 0)
    fake = model.decode(z)
    got = float(marginal_sw(model, "x", fake, x, n_projections=0).detach())
    a, b = model.critic_features("x", fake).detach().double().numpy(), model.critic_features("x", x).double().numpy()
    want = sum(float(ot.wasserstein_1d(a[:, j], b[:, j], p=2)) for j in range(a.shape[1])) / a.shape[1]
    assert got == pytest.approx(want, rel=1e-4)
    assert float(marginal_sw(model, "x", x.clone(), x, n_projections=16).detach()) == pytest.approx(0.0, abs=1e-10)


def test_marginal_sw_terms_are_off_by_default_and_each_reaches_its_own_map_only():
    """sw_weight = 0 is the published objective (no SW term computed); with sw_weight = 2 the loss
    is 2·(SW_z̃ + SW_x̃); through ``sw_spaces`` SW_z̃ = SW²(E(x), z) alone trains the encoder
    only, SW_x̃ alone the decoder only, and neither touches a critic."""
    model, x, z = _model()
    _, terms = generator_loss(model, x, z, None, None, TurboSimWeights())
    assert not {"sw_z_tilde", "sw_x_tilde"} & set(terms)
    off = TurboSimWeights(**dict.fromkeys(TERMS, 0.0))
    loss, terms = generator_loss(model, x, z, None, None, off, sw_weight=2.0)
    assert set(terms) == {"sw_z_tilde", "sw_x_tilde", "loss"}
    assert float(loss) == pytest.approx(2 * (terms["sw_z_tilde"] + terms["sw_x_tilde"]), rel=1e-5)
    for space, part, other in (("z", "encoder", "decoder"), ("x", "decoder", "encoder")):
        model.zero_grad()
        loss, terms = generator_loss(model, x, z, None, None, off, sw_weight=2.0, sw_spaces=(space,))
        assert set(terms) == {f"sw_{space}_tilde", "loss"}
        loss.backward()
        g = _grads(model)
        assert g[part] > 0 and g[other] == 0 and g["critics"] == 0, (space, g)
