"""Jets as weighted point clouds: the (pT/H_T, η, φ) arrays the EMD-VAE reads.

    w_i = pT_i / H_T,   H_T = Σ_i pT_i      (so Σ_i w_i = 1; zero-padded particles have w = 0)

EMDs between such jets are in units of H_T·R; multiplying by the jet's H_T (≈ 550 GeV for the
shipped W jets) converts a resolution β to GeV (EMD-VAE, Collins: "β ≃ 100 GeV").
"""
from __future__ import annotations

import numpy as np


def normalised_jets(ds, max_jets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(jets, H_T) from a wjets sample: jets (B, N, 3) float32 of (pT/H_T, η, φ), H_T (B,) in GeV."""
    if "x" not in ds or tuple(ds["x"].dims) != ("event", "constituent", "feature"):
        raise ValueError(
            f"{ds.attrs.get('source', 'dataset')}: not a jet sample — needs x(event, constituent, feature=[pt, eta, phi])"
        )
    x = np.asarray(ds["x"].values[:max_jets], dtype=np.float64)
    ht = x[..., 0].sum(1)
    if np.any(ht <= 0):
        bad = int(np.flatnonzero(ht <= 0)[0])
        raise ValueError(f"{ds.attrs.get('source', 'dataset')}: event {bad} has no constituent with pT > 0")
    jets = x.copy()
    jets[..., 0] /= ht[:, None]
    return jets.astype(np.float32), ht


def trim_padding(jets):
    """Drop trailing particle slots that are zero-padding in every jet of the batch."""
    n = int((jets[..., 0] > 0).sum(1).max())
    return jets[:, : max(n, 1)]
