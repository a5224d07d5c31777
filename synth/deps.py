"""Optional dependencies, checked before work starts.

A step or teacher that needs a package names it (import name, pip name) and the extra that
brings it; :func:`require` fails with the install command when one is missing, at recipe
load or before the first request, never halfway through a run, and never by quietly marking
every row "unverifiable".
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Iterable

from synth.errors import ConfigError

__all__ = ["Requirement", "missing", "require"]

#: ``(import name, pip name)``
Requirement = tuple[str, str]


def _installed(module: str) -> bool:
    if module in sys.modules:  # a module set to None is one Python refuses to import
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def missing(requirements: Iterable[Requirement]) -> list[str]:
    """The pip names of the requirements that are not importable here."""
    return [pip for module, pip in requirements if not _installed(module)]


def require(requirements: Iterable[Requirement], *, what: str, extra: str | None = None,
            install: str | None = None) -> None:
    """Raise a :class:`ConfigError` naming what to install if any requirement is missing:
    ``install`` when given, else the pip names (and the synth ``extra`` that has them)."""
    absent = missing(requirements)
    if not absent:
        return
    if install:
        how = f"`{install}`"
    else:
        how = f"`pip install {' '.join(absent)}`"
        if extra:
            how += f" or `pip install 'synth[{extra}]'`"
    verb = "is" if len(absent) == 1 else "are"
    raise ConfigError(f"{what} needs {', '.join(absent)}, which {verb} not installed "
                      f"(install with {how})")
