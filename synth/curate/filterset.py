"""Filter sets are data: a YAML file naming curation steps and their parameters.

    name: default
    steps:
      - drop_errors
      - length: {min_words: 3, max_words: 4000}
      - exact_dedup: {field: response}

A filter set name (``default``) resolves to ``filters/<name>.yaml`` shipped with synth.
Every mistake names the file, the line and the step.

("Filter set" is curation's word; "recipe" means a generation recipe, ``synth.recipes``.
The old curation spellings ``Recipe``, ``load_recipe`` and ``recipe_names`` still work,
as deprecated aliases in :mod:`synth.curate`.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from synth.curate.steps import STEPS
from synth.deps import require
from synth.errors import InputError, PluginError, UserError
from synth.yamlfile import load_yaml

__all__ = ["FilterSet", "Origin", "load_filter_set", "filter_set_names", "build_step"]


@dataclass(frozen=True)
class Origin:
    path: str
    line: int | None


@dataclass
class FilterSet:
    name: str
    steps: list
    origins: list[Origin]
    path: str | None = None


def filter_set_names() -> list[str]:
    """The shipped filter sets (``filters/*.yaml``), by name."""
    folder = resources.files("synth") / "filters"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def build_step(name: str, params: dict[str, Any], *, path: str, line: int | None):
    """One step from its filter set entry, or an InputError naming file, line and step."""
    try:
        cls = STEPS.get(name)
    except PluginError as e:  # installed, but its package fails to load
        raise InputError(str(e), path=path, line=line, field=name) from None
    if cls is None:
        raise InputError(f"unknown step (known: {', '.join(sorted(STEPS))})", path=path,
                         line=line, field=name)
    allowed = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)} (takes: "
                         f"{', '.join(sorted(allowed)) or 'nothing'})", path=path, line=line,
                         field=name)
    try:  # a missing package fails here, at load, not after the earlier steps ran
        require(cls.requires, what=f"the {name} step", extra=cls.extra)
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad parameters: {e}", path=path, line=line, field=name) from None
    except UserError as e:  # e.g. a benchmark file the step needs is missing
        raise InputError(str(e), path=path, line=line, field=name) from None


def load_filter_set(filters: str | Path) -> FilterSet:
    """A shipped filter set by name, or a YAML file by path."""
    path = Path(filters)
    if not path.suffix and not path.exists():
        shipped = resources.files("synth") / "filters" / f"{filters}.yaml"
        if not shipped.is_file():
            raise InputError(f"no such filter set (shipped: {', '.join(filter_set_names())})",
                             path=str(filters))
        with resources.as_file(shipped) as p:
            return _parse(p, display=f"filters/{filters}.yaml")
    return _parse(path, display=str(path))


def _parse(path: Path, *, display: str) -> FilterSet:
    data, node = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise InputError("expected a mapping with a 'steps' list", path=display, field="steps")
    lines = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == "steps" and isinstance(v, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in v.value]
    steps, origins = [], []
    for i, item in enumerate(data["steps"]):
        line = lines[i] if i < len(lines) else None
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = params or {}
            if not isinstance(params, dict):
                raise InputError("parameters must be a mapping", path=display, line=line,
                                 field=str(name))
        else:
            raise InputError("each step is a name or {name: {parameters}}", path=display,
                             line=line)
        steps.append(build_step(str(name), params, path=display, line=line))
        origins.append(Origin(display, line))
    return FilterSet(name=str(data.get("name") or path.stem), steps=steps, origins=origins,
                     path=display)
