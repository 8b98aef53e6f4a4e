"""The Turbo-Sim model: shapes, the mass shell, pT-ordered jets."""
import torch

from otviz.models.turbosim import TurboSim, TurboSimModelConfig
from otviz.physics import fourvec as fv
from otviz.train.config import TTBAR_X, TTBAR_Z


def test_ttbar_decoder_outputs_pt_ordered_jets_on_their_mass_shell_with_gradients():
    torch.manual_seed(0)
    jets = ("jet1", "jet2", "jet3", "jet4")
    m = TurboSim(TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,), noise_dim=2,
                                     input_noise=0.1, pt_order=jets))
    z = fv.minkowski(torch.randn(500, 6, 3) * 50, 0.0)
    x = m.decode(z.requires_grad_(True))
    assert x.shape == (500, 6, 4) and m.encode(x).shape == (500, 6, 4)
    pt = fv.pt(x[:, 2:])
    assert (pt[:, :-1] >= pt[:, 1:]).all()
    assert torch.allclose(x[..., 3] ** 2, (x[..., :3] ** 2).sum(-1), rtol=1e-4, atol=1e-3)  # massless jets, MET
    zt = m.encode(x)
    b = m.cfg.masses["b"]
    assert torch.allclose(zt[:, 2, 3] ** 2, (zt[:, 2, :3] ** 2).sum(-1) + b ** 2, rtol=1e-4)  # b quark at 4.7 GeV
    x[:, 2:].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.decoder.net.parameters() if p.dim() == 2)


def test_critic_mass_features_are_the_invariant_masses_of_every_combination():
    """critic_masses = 3 on tt̄: 15 pairs, 20 triples and the whole event (36 masses) appended to
    the 24 standardised components; each equals log(1 + m/GeV) of fourvec.invariant_mass of that
    combination, standardised on the training sample; the critic's gradient reaches the decoder
    through them; a model saved without the option still loads."""
    import itertools

    import numpy as np

    from otviz.losses.turbosim import critic_loss, generator_loss
    from otviz.models.turbosim import log_combination_masses, mass_combinations

    combos = mass_combinations(6, 3)
    assert combos.shape == (36, 6) and sorted(set(combos.sum(1).tolist())) == [2.0, 3.0, 6.0]
    assert mass_combinations(2, 0).shape == (0, 2) and mass_combinations(1, 3).shape == (0, 1)
    assert mass_combinations(2, 3).tolist() == [[1.0, 1.0]]  # Z→ee: m_ee alone
    torch.manual_seed(1)
    z = fv.minkowski(torch.randn(400, 6, 3) * 40, torch.tensor([0.0, 0.0, 4.7, 4.7, 0.0, 0.0]))
    x = fv.minkowski(torch.randn(400, 6, 3) * 40, 0.0)
    lm = log_combination_masses(x.double(), combos)
    for i, c in enumerate([*itertools.combinations(range(6), 2), *itertools.combinations(range(6), 3), tuple(range(6))]):
        expect = np.log1p(fv.invariant_mass(x[:, list(c)].double().numpy()))
        np.testing.assert_allclose(lm[:, i].numpy(), expect, rtol=1e-6, atol=1e-6)
    cfg = TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,), critic_masses=3)
    assert TurboSim(cfg).critic_features("z", z).shape == (400, 24)  # default: the x critics only
    cfg = TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,), critic_masses=3,
                              critic_mass_spaces=("x", "z"))
    m = TurboSim(cfg)
    assert m.critic_features("z", z).shape == (400, 24 + 36)
    m.fit_standardisation(x, z)
    f = m.critic_features("x", x)
    assert f.shape == (400, 24 + 36)
    torch.testing.assert_close(f[:, 24:].mean(0), torch.zeros(36), atol=1e-4, rtol=0)
    torch.testing.assert_close(f[:, 24:].std(0), torch.ones(36), atol=1e-3, rtol=0)
    loss, _ = critic_loss(m, x, z)
    assert torch.isfinite(loss)
    m.zero_grad()
    total, _ = generator_loss(m, x, z, weights=None)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.decoder.net.parameters())
    plain = TurboSim(TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,)))
    state = {k: v for k, v in plain.state_dict().items() if not k.endswith("_combos")}  # as saved before the option
    again = TurboSim(TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,)))
    again.load_state_dict(state)
    assert again.critic_features("x", x).shape == (400, 24)


def test_critic_masses_of_one_particle_is_refused():
    import pytest

    from otviz.errors import ConfigError

    with pytest.raises(ConfigError, match="critic_masses"):
        TurboSimModelConfig(TTBAR_Z, TTBAR_X, critic_masses=1)
    with pytest.raises(ConfigError, match="critic_mass_spaces"):
        TurboSimModelConfig(TTBAR_Z, TTBAR_X, critic_masses=3, critic_mass_spaces=("y",))


def test_canonical_frame_makes_both_maps_equivariant_under_beam_rotations_and_reflections():
    """canonical_frame: for the same noise, E(R x) = R E(x) and D(R z) = R D(z) for R a rotation about
    the beam and p_z → −p_z (up to float32 rounding of GeV-scale momenta), which the default map is
    not; outputs stay on their mass shells; the config option is a strict bool and defaults off."""
    import pytest

    from otviz.errors import ConfigError

    torch.manual_seed(0)
    jets = ("jet1", "jet2", "jet3", "jet4")
    z = fv.minkowski(torch.randn(400, 6, 3) * 50, 0.0)
    x = fv.minkowski(torch.randn(400, 6, 3) * 50, 0.0)
    phi, sign = torch.rand(400) * 6.0 - 3.0, torch.where(torch.rand(400) < 0.5, -1.0, 1.0)

    def gap(m, method, a):
        with torch.no_grad():
            moved = getattr(m, method)(fv.to_frame(a, phi, sign, inverse=True), torch.Generator().manual_seed(1))
            then = fv.to_frame(getattr(m, method)(a, torch.Generator().manual_seed(1)), phi, sign, inverse=True)
        return (moved - then).abs().max().item()

    for frame in (True, False):
        torch.manual_seed(1)
        m = TurboSim(TurboSimModelConfig(TTBAR_Z, TTBAR_X, hidden=(32,), critic_hidden=(8,), noise_dim=2,
                                         input_noise=0.1, input_residual=True, pt_order=jets, canonical_frame=frame))
        m.fit_standardisation(x, z)
        if frame:
            assert gap(m, "encode", x) < 1e-3 and gap(m, "decode", z) < 1e-3
            zt = m.encode(x)
            assert torch.allclose(zt[:, 2, 3] ** 2, (zt[:, 2, :3] ** 2).sum(-1) + m.cfg.masses["b"] ** 2, rtol=1e-4)
        else:
            assert gap(m, "encode", x) > 1.0 and gap(m, "decode", z) > 1.0
    assert TurboSimModelConfig(TTBAR_Z, TTBAR_X).canonical_frame is False
    with pytest.raises(ConfigError, match="canonical_frame"):
        TurboSimModelConfig(TTBAR_Z, TTBAR_X, canonical_frame="yes")
