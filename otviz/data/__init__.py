"""Event data: Pythia 8 generation, parametrised detector, validated xarray storage.

``load``, ``save``, ``make_dataset``, ``validate`` and ``DataValidationError`` (from
:mod:`otviz.data.io`) are imported on first use, so a generation worker that only needs
:mod:`otviz.data.pythia` does not import xarray.
"""
_IO = ("DataValidationError", "load", "make_dataset", "save", "validate")
_HERWIG = ("read_herwig_clusters", "write_herwig_clusters")
__all__ = list(_IO) + list(_HERWIG)


def __getattr__(name):
    if name in _IO:
        from . import io

        return getattr(io, name)
    if name in _HERWIG:
        from . import herwig

        return getattr(herwig, name)
    raise AttributeError(f"module 'otviz.data' has no attribute {name!r}")
