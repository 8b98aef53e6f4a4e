"""Optimal-transport distances and maps."""
from .emd import emd  # noqa: F401
from .sliced import random_directions, sliced_wasserstein  # noqa: F401
from .icnn import FitCancelled, FitFailed, OTMap, OTMapConfig, fit_ot_map, load_ot_map  # noqa: F401
