"""Event data: Pythia 8 generation, parametrised detector, validated xarray storage."""
from .io import DataValidationError, load, make_dataset, save, validate  # noqa: F401
