"""otviz: train, see and debug optimal-transport generative models for particle physics."""
__version__ = "0.1.0"
