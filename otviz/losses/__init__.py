"""Training objectives, one module per model kind: OTUS (``otus``), EMD-VAE (``emdvae``)."""
from .emdvae import emdvae_loss, kl_per_dimension  # noqa: F401
from .otus import otus_loss  # noqa: F401
