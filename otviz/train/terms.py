"""Names of the loss terms a training run reports (the keys of its ``step`` events and history
records) in words and symbols, for legends and tables: ``sw_z`` → "SW(z, z̃)"."""
from __future__ import annotations

LOSS_TERMS: dict[str, str] = {
    "loss": "total loss",
    "mse": "MSE(x, x̃)",
    "sw_z": "SW(z, z̃)",
    "sw_x": "SW(x, x′)",
    "anchor_e": "anchor E",
    "anchor_d": "anchor D",
    "p_accept": "P_D(S)",
    "rate": "rate R [nats]",
    "distortion": "distortion D (⟨EMD²⟩)",
}


def term_label(name: str) -> str:
    """The legend name of loss term ``name``; an unknown term keeps its code name."""
    return LOSS_TERMS.get(name, name)
