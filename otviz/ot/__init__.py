"""Optimal-transport distances."""
from .emd import emd  # noqa: F401
from .sliced import random_directions, sliced_wasserstein  # noqa: F401
