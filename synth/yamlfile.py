"""Read YAML data files (price tables, later licences and recipes) with line numbers, so
a mistake is reported as ``file:line: field 'x': what is wrong``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synth.errors import InputError

__all__ = ["load_yaml", "field_lines"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path``; return the data and its node tree (for :func:`item_lines`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start})", path=str(path)) from None
    # One parse (the node tree carries the line numbers; the data is built from it), with
    # libyaml's C parser when present: the pure-Python one costs ~0.5 s on the registry.
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"not valid YAML: {problem}", path=str(path), line=line) from None
    finally:
        loader.dispose()
    return data, node


def field_lines(node: yaml.Node | None, key: str) -> list[dict[str, int]]:
    """For each item of the list under top-level ``key``: its fields' 1-based lines
    (``""`` holds the item's own line), so an error can point at the offending field."""
    out = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key and isinstance(v, yaml.SequenceNode):
                for item in v.value:
                    lines = {"": item.start_mark.line + 1}
                    if isinstance(item, yaml.MappingNode):
                        for fk, _ in item.value:
                            lines[str(fk.value)] = fk.start_mark.line + 1
                    out.append(lines)
    return out
