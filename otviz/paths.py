"""Where otviz keeps its data and runs: the one place that decides.

The *home* holds ``data/`` (the shipped samples, ``data/pretrained/`` the shipped runs) and
``runs/`` (new runs). It is, in order: ``$OTVIZ_HOME`` (``otviz --data-dir DIR`` sets it), the
source checkout when otviz runs from one (so ``data/`` is the checkout's), else the user data
directory (``~/.local/share/otviz`` on Linux). ``otviz data fetch`` / ``otviz data regenerate``
fill it. ``$OTVIZ_RUNS`` moves ``runs/`` alone. Every name is looked up when used, so a change of
``$OTVIZ_HOME`` applies at once.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent  # the source tree's root when otviz runs from a checkout
REPO = CHECKOUT  # (older name; the app files under apps/ are found from here)


def in_checkout() -> bool:
    """True when this otviz is imported from its source checkout (not an installed wheel)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "data").is_dir()


def user_home() -> Path:
    """The per-user data directory (``$XDG_DATA_HOME/otviz``, by default ``~/.local/share/otviz``)."""
    from platformdirs import user_data_path

    return user_data_path("otviz", appauthor=False)


def home() -> Path:
    """The root holding ``data/`` and ``runs/`` (see the module docstring)."""
    env = os.environ.get("OTVIZ_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return CHECKOUT if in_checkout() else user_home()


def data_dir() -> Path:
    return home() / "data"


def pretrained_dir() -> Path:
    return data_dir() / "pretrained"


def runs_dir() -> Path:
    env = os.environ.get("OTVIZ_RUNS")
    return Path(env).expanduser() if env else home() / "runs"


def resolve(path) -> Path:
    """A path as given if it exists or is absolute, else relative to the home (shipped configs
    record ``data/…`` paths), else as given."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    alt = home() / p
    return alt if alt.exists() else p


def missing_hint(path) -> str:
    """For a missing relative path under ``data/`` (a shipped sample): where it would be and how
    to put it there; else ''."""
    p = Path(path).expanduser()
    if p.is_absolute() or not p.parts or p.parts[0] != "data":
        return ""
    return (f"; run `otviz data fetch --from CHECKOUT` or `otviz data regenerate` to put the shipped samples "
            f"into OTVIZ_HOME ({data_dir()})")


def app_file(name: str = "latent_explorer.py") -> Path:
    """A Panel app script: the checkout's ``apps/NAME``, else the copy an installed wheel puts in
    ``<prefix>/share/otviz/apps/``."""
    local = CHECKOUT / "apps" / name
    return local if local.exists() else Path(sys.prefix) / "share" / "otviz" / "apps" / name


_LAZY = {"DATA": data_dir, "PRETRAINED": pretrained_dir, "RUNS": runs_dir}


def __getattr__(name):  # DATA, PRETRAINED, RUNS: computed when asked for
    if name in _LAZY:
        return _LAZY[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
