"""One registry for the three ways to extend synth: teacher providers, curation steps and
generation recipes.

Each kind has a :class:`Registry`: synth's own entries register when their module is
imported (the registry imports it on first lookup), and any installed package adds more
through an entry point, with no edit to synth::

    # a plugin's pyproject.toml
    [project.entry-points."synth.providers"]
    myapi = "synth_myapi:factory"          # (model, TeacherOptions) -> Teacher, .traits
    [project.entry-points."synth.steps"]
    shouty = "synth_shouty:Shouty"         # a curation Step subclass, name = "shouty"
    [project.entry-points."synth.recipes"]
    haiku = "synth_haiku:Haiku"            # a generation Recipe subclass, name = "haiku"

An entry point is loaded only when its name is looked up or every name is listed, so an
unused plugin costs nothing at start-up, and one that fails to import breaks only the
lookups that need it (the error names the plugin and why). Each stage owns its registry —
``synth.teachers.PROVIDERS``, ``synth.curate.STEPS``, ``synth.recipes.RECIPES`` — built
from :class:`Registry`. Ground floor: imports nothing of synth's stages. Written here rather than taken from pluggy/stevedore: those add hook
specifications and managers for what is, for synth, a dict plus ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any, Callable, Generic, TypeVar

from synth.errors import PluginError

__all__ = ["Registry", "named_class", "GROUPS"]

log = logging.getLogger("synth")
T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind. A read-only mapping (``reg[name]``, ``name in reg``,
    ``sorted(reg)``) that fills itself: first from ``builtins`` (modules whose import
    registers synth's own entries), then from the entry-point ``groups``."""

    def __init__(self, kind: str, groups: tuple[str, ...], *, builtins: tuple[str, ...] = (),
                 check: Callable[[str, Any], Any] | None = None) -> None:
        self.kind, self.groups, self.builtins = kind, groups, builtins
        self._check = check  # validates (and may convert) what an entry point gave
        self._entries: dict[str, T] = {}
        self._builtins_loaded = not builtins
        self._scanned: set[str] = set()  # entry points already tried (loaded or failed)
        self._broken: dict[str, str] = {}  # name → why its entry point failed
        self._warned: set[str] = set()  # broken names a listing has already reported

    # ----------------------------------------------------------------- registration
    def register(self, name: str, entry: T) -> T:
        """Add (or replace) ``name``. Returns ``entry``, so a class decorator can use it."""
        self._entries[name] = entry
        self._broken.pop(name, None)
        return entry

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests; a plugin withdrawing an entry)."""
        self._entries.pop(name, None)

    # the registries were plain dicts once: ``STEPS["x"] = cls`` and ``del`` still work
    __setitem__ = register

    def __delitem__(self, name: str) -> None:
        if name not in self._entries:
            raise KeyError(name)
        self.unregister(name)

    # ----------------------------------------------------------------------- lookup
    def find(self, name: str) -> T | None:
        """The entry called ``name``, loading synth's own and then plugins as needed; None
        if nothing provides it. A plugin that failed to load raises :class:`PluginError`."""
        if name not in self._entries:
            self._load_builtins()
        if name not in self._entries:
            self._load_entry_points(only=name)
        if name not in self._entries and name in self._broken:
            raise PluginError(f"{self.kind} {name!r}: {self._broken[name]}")
        return self._entries.get(name)

    def names(self) -> list[str]:
        """Every name, plugins included (a plugin that fails to load is left out, with a
        warning in the log, once)."""
        self._load_builtins()
        self._load_entry_points()
        for name in sorted(set(self._broken) - self._warned):  # a lookup raises instead
            self._warned.add(name)
            log.warning("%s %r left out: %s", self.kind, name, self._broken[name])
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        entry = self.find(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def __contains__(self, name: object) -> bool:
        """True if ``name`` can be had: a plugin that fails to load is not in."""
        try:
            return isinstance(name, str) and self.find(name) is not None
        except PluginError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # ---------------------------------------------------------------------- loading
    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True  # first: a builtin module may look itself up
            for module in self.builtins:
                importlib.import_module(module)

    def _load_entry_points(self, only: str | None = None) -> None:
        for group in self.groups:
            for ep in metadata.entry_points(group=group):
                key = f"{group}:{ep.name}"
                if (only is not None and ep.name != only) or key in self._scanned:
                    continue
                self._scanned.add(key)
                if ep.name in self._entries:  # synth's own (or an earlier group) wins
                    continue
                try:
                    entry = ep.load()
                    if self._check is not None:
                        entry = self._check(ep.name, entry)
                except Exception as e:  # noqa: BLE001 - any plugin failure: named, not fatal
                    why = (f"the plugin {ep.value!r} (entry point {group}) failed to load: "
                           f"{type(e).__name__}: {e}")
                    self._broken[ep.name] = why
                    continue
                self._entries[ep.name] = entry


def named_class(base: type) -> Callable[[str, Any], Any]:
    """A check for class entries: an entry point must give a ``base`` subclass whose
    ``name`` is the entry point's name (a mismatch would answer to two names)."""

    def check(name: str, obj: Any) -> Any:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise TypeError(f"expected a {base.__module__}.{base.__qualname__} subclass, got "
                            f"{obj!r}")
        own = getattr(obj, "name", None)
        if own != name:
            raise TypeError(f"{obj.__name__}.name is {own!r}, the entry point says {name!r}")
        return obj

    return check


#: Entry-point groups, by kind (``synth.teachers`` is the providers' group's first name).
GROUPS = {"provider": ("synth.providers", "synth.teachers"), "step": ("synth.steps",),
          "recipe": ("synth.recipes",)}
