"""The PFN tagger: a permutation- and padding-invariant latent z₁₂₈, and a head that takes any
(e.g. calibrated) latent to the same outputs as the full network."""
import numpy as np
import pytest
import torch

from otviz.data.toy import multiplicity_jets
from otviz.errors import ConfigError
from otviz.models.tagger import (LATENT, PFNTagger, TaggerModelConfig, particle_features, tagger_latents,
                                 tagger_outputs_from_latent)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = PFNTagger(TaggerModelConfig(phi_hidden=(32,), phi_out=32, f_hidden=(32,))).double()
    jets = torch.as_tensor(multiplicity_jets(200, 10, seed=3).x.values, dtype=torch.float64)
    m.fit_standardisation(jets)
    return m.eval(), jets[:40]


def test_latent_is_invariant_to_particle_order_and_zero_padding(model):
    m, jets = model
    z = m.latent(jets)
    assert z.shape == (40, LATENT)
    g = torch.Generator().manual_seed(1)
    shuffled = torch.stack([j[torch.randperm(j.shape[0], generator=g)] for j in jets])  # padding slots mixed in
    torch.testing.assert_close(m.latent(shuffled), z, atol=1e-5, rtol=0)
    padded = torch.cat([jets, torch.zeros(len(jets), 17, 3, dtype=jets.dtype)], 1)
    torch.testing.assert_close(m.latent(padded), z, atol=1e-5, rtol=0)
    trimmed = jets[:, : int((jets[..., 0] > 0).sum(1).max())]
    torch.testing.assert_close(m.latent(trimmed), z, atol=1e-5, rtol=0)
    # a real particle does change it
    assert not torch.allclose(m.latent(jets[:, :1]), z, atol=1e-3)


def test_features_are_the_documented_ones():
    jets = torch.tensor([[[30.0, 0.1, -0.2], [10.0, -0.3, 0.05], [0.0, 0.0, 0.0]]])
    f, mask = particle_features(jets)
    assert mask.tolist() == [[1.0, 1.0, 0.0]]
    expect = [[np.log(30.0), 0.75, 0.1, -0.2], [np.log(10.0), 0.25, -0.3, 0.05], [0, 0, 0, 0]]
    torch.testing.assert_close(f[0], torch.tensor(expect, dtype=torch.float32))


def test_head_from_latent_equals_forward_and_the_array_functions_agree(model):
    m, jets = model
    h = m.head_from_latent(m.latent(jets))
    torch.testing.assert_close(h["logit"], m(jets))
    torch.testing.assert_close(h["score"], torch.sigmoid(m(jets)))
    assert h["z128p"].shape == (40, LATENT)
    m32 = PFNTagger(m.config)
    m32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
    z = tagger_latents(m32, jets.numpy(), batch=7)  # batches of 7, each trimmed to its own padding
    assert z.shape == (40, LATENT) and z.dtype == np.float32
    np.testing.assert_allclose(z, m.latent(jets).detach().numpy(), atol=1e-4)
    out = tagger_outputs_from_latent(m32, z, batch=9)
    np.testing.assert_allclose(out["score"], h["score"].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(out["z128p"], h["z128p"].detach().numpy(), atol=1e-4)
    # a "calibrated" latent goes through the same head
    shifted = tagger_outputs_from_latent(m32, z + 0.5)
    with torch.no_grad():
        ref = m.head_from_latent(torch.as_tensor(z + 0.5, dtype=torch.float64))["score"].numpy()
    np.testing.assert_allclose(shifted["score"], ref, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(n, 128\)"):
        tagger_outputs_from_latent(m32, z[:, :64])
    with pytest.raises(ValueError, match="pT, eta, phi"):
        m32.latent(np.zeros((3, 5, 4)))


def test_model_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="phi_hidden"):
        TaggerModelConfig(phi_hidden=(0,))
    with pytest.raises(ConfigError, match="phi_out"):
        TaggerModelConfig(phi_out=0)
