"""Errors shared by the library, the CLI and the dashboard, and the range checks of the config
dataclasses.

Every config dataclass (``TrainConfig``, ``Stage``, ``AnnealConfig``, ``EMDVAEConfig``,
``OTUSConfig``/``GeneratorConfig``, ``DetectorConfig``) carries a class attribute
``BOUNDS: dict[str, tuple[lo, hi]]`` — field name → inclusive (min, max), ``None`` for an open
end — that its ``validate()`` checks and that the dashboard uses as widget bounds. A field whose
default is ``None`` may also be ``None``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers


_UNSET = object()


class ConfigError(ValueError):
    """A configuration value is out of its allowed range or of the wrong type. ``field`` names
    the field (as in the dataclass), ``value`` the value (``has_value``: one was given),
    ``allowed`` what is allowed, ``reason`` the message without the field and value (``allowed
    1 … 5000``), ``path`` where the field sits in a JSON config (``stages[1].epochs``), so the CLI
    can say ``--epochs 0: allowed 1 … 5000`` or ``config.json: stages[1].epochs = 0: …``."""

    def __init__(self, message: str, field: str | None = None, value=_UNSET, allowed: str | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.has_value = value is not _UNSET
        self.field, self.value, self.allowed = field, (None if value is _UNSET else value), allowed
        self.reason = reason or message
        self.path = field

    def nested(self, prefix: str) -> "ConfigError":
        """Put the field under ``prefix`` in :attr:`path` (``model_config`` → ``model_config.latent``)."""
        if self.path is not None:
            self.path = f"{prefix}.{self.path}"
        return self


class RunExistsError(FileExistsError):
    """A run directory holds a run with other settings (``differences``: field → (stored, new)),
    or a finished run that a new start would overwrite."""

    def __init__(self, message: str, differences: dict | None = None):
        super().__init__(message)
        self.differences = differences or {}


class RunBusyError(RuntimeError):
    """Another live process (or thread) is training in the run directory."""


class InsufficientResources(ValueError):
    """A job needs more memory or disk than is free."""


def describe_range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"[{lo:g}, {hi:g}]" if isinstance(lo, float) or isinstance(hi, float) else f"{lo} … {hi}"
    if lo is not None:
        return f"≥ {lo:g}"
    if hi is not None:
        return f"≤ {hi:g}"
    return "any number"


def check_number(owner: str, name: str, value, lo=None, hi=None, integer: bool = False, optional: bool = False):
    """Raise :class:`ConfigError` unless ``value`` is a finite number in [lo, hi] (an int when
    ``integer``; ``None`` when ``optional``)."""
    if value is None and optional:
        return
    what = "an integer" if integer else "a number"
    allowed = describe_range(lo, hi) + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value, numbers.Integral)):
        raise ConfigError(f"{owner}.{name} = {value!r}: must be {what} in {allowed}", name, value, allowed,
                          reason=f"must be {what} in {allowed}")
    if not math.isfinite(float(value)) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{owner}.{name} = {value!r} is out of range: allowed {allowed}", name, value, allowed,
                          reason=f"allowed {describe_range(lo, hi)}")


def check_choice(owner: str, name: str, value, choices):
    if value not in choices:
        allowed = " | ".join(map(str, choices))
        raise ConfigError(f"{owner}.{name} = {value!r}: must be one of {allowed}", name, value, allowed,
                          reason=f"must be one of {allowed}")


def check_bounds(obj) -> None:
    """Check every field of the dataclass ``obj`` named in ``type(obj).BOUNDS``. Integer fields
    (default an ``int``) must hold ints; a field whose default or type annotation is ``None``
    (``int | None``) may be ``None``."""
    cls = type(obj)
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, (lo, hi) in cls.BOUNDS.items():
        if name not in fields:
            continue
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        integer = (isinstance(default, int) and not isinstance(default, bool)) or (
            default is None and isinstance(lo, int) and not isinstance(lo, bool))
        check_number(cls.__name__, name, getattr(obj, name), lo, hi, integer=integer,
                     optional=f.default is None or "None" in str(f.type))
