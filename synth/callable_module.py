"""A package that is also its own verb: ``synth.train(...)`` calls the trainer while
``import synth.train.config`` imports the package's module — one object, so importing a
submodule can never rebind the verb (Python sets ``synth.train`` to the package on every
``import synth.train.X``; a function of that name would be silently replaced).

Module subclasses are the documented way to give a module behaviour (the import system keeps
``__class__`` assignments on modules); no library offers this, hence these few lines.
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Callable

__all__ = ["make_callable"]


def make_callable(module: types.ModuleType, fn: Callable[..., Any]) -> None:
    """Make ``module(...)`` call ``fn(...)``; ``inspect.signature(module)`` is ``fn``'s and
    ``inspect.unwrap(module)`` is ``fn`` (``help(module)`` still shows the package)."""

    name = module.__name__

    class _VerbModule(types.ModuleType):
        __call__ = staticmethod(fn)

        def __reduce__(self) -> tuple[Any, tuple[str]]:
            # pickled (a process pool's task) and copied by name, as a function is
            return importlib.import_module, (name,)

        @property
        def __signature__(self) -> Any:
            # computed when asked: importing inspect would cost `import synth` ~6 ms
            import inspect

            return inspect.signature(fn)

    _VerbModule.__name__ = f"{module.__name__}  (callable: {fn.__name__})"
    module.__class__ = _VerbModule
    module.__wrapped__ = fn  # type: ignore[attr-defined]
