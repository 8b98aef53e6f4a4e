"""Generative models: OTUS."""
from .otus import OTUS, GeneratorConfig, OTUSConfig  # noqa: F401
