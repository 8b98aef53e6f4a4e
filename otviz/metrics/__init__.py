"""Metrics comparing samples: resonance peaks, distances, closure."""
from .peak import PeakFit, fit_peak  # noqa: F401
