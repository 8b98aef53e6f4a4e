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
