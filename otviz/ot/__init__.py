"""Optimal-transport distances."""
from .sliced import random_directions, sliced_wasserstein  # noqa: F401
