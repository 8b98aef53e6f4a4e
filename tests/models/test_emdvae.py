"""EMD-VAE model: decoded jets are valid, the encoder is permutation and padding invariant,
and a few optimisation steps on real jets lower the loss."""
import math
from pathlib import Path

import numpy as np
import torch

from otviz.data import load
from otviz.losses.emdvae import emdvae_loss, kl_per_dimension
from otviz.models.emdvae import EMDVAE, EMDVAEConfig

DATA = Path(__file__).resolve().parents[2] / "data"


def real_jets(n=64):
    c = load(DATA / "wjets_centred.nc")["x"].values.astype(np.float32)[:n].copy()
    c[..., 0] /= c[..., 0].sum(1, keepdims=True)  # pT / H_T
    return torch.as_tensor(c)


def test_decoded_jets_are_valid():
    model = EMDVAE(EMDVAEConfig(latent=8, width=32))
    jets = model.decode(torch.randn(10, 8))
    assert jets.shape == (10, 50, 3)
    torch.testing.assert_close(jets[..., 0].sum(1), torch.ones(10))
    assert (jets[..., 0] > 0).all()
    assert (jets[..., 2].abs() <= math.pi).all()


def test_encoder_is_permutation_and_padding_invariant():
    torch.manual_seed(0)
    model = EMDVAE(EMDVAEConfig(latent=8, width=32))
    jets = real_jets(4)
    perm = torch.randperm(50)
    mu1, lv1 = model.posterior(jets)
    mu2, lv2 = model.posterior(jets[:, perm])
    torch.testing.assert_close(mu1, mu2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv1, lv2, rtol=1e-5, atol=1e-5)
    padded = torch.cat([jets, torch.zeros(4, 10, 3)], 1)
    torch.testing.assert_close(model.posterior(padded)[0], mu1, rtol=1e-5, atol=1e-5)


def test_paper_sizes_and_kl():
    cfg = EMDVAEConfig.paper()
    assert (cfg.width, cfg.latent, cfg.particle_layers, cfg.encoder_layers, cfg.decoder_layers) == (1024, 256, 4, 4, 5)
    mu = torch.zeros(5, 3)
    assert torch.allclose(kl_per_dimension(mu, torch.zeros(5, 3)), torch.zeros(3))
    assert kl_per_dimension(torch.ones(5, 3), torch.zeros(5, 3))[0] == 0.5


def test_training_steps_lower_the_loss_on_real_jets():
    torch.manual_seed(1)
    model = EMDVAE(EMDVAEConfig(latent=8, width=64))
    jets = real_jets(64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(30):
        loss, terms = emdvae_loss(model, jets, beta=0.1, backend="exact", generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else terms
    assert terms["distortion"] < 0.7 * first["distortion"]
    assert terms["kl_per_dim"].shape == (8,)
