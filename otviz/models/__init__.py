"""Generative models: OTUS, EMD-VAE."""
from .emdvae import EMDVAE, EMDVAEConfig  # noqa: F401
from .otus import OTUS, GeneratorConfig, OTUSConfig  # noqa: F401
