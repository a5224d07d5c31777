"""Read YAML data files (price tables, licences, filter sets, pipeline files, template
front matter) with line numbers, so a mistake is reported as ``file:line: field 'x': what is
wrong``.

Aliases (``*name``) are checked before anything is built from a document: a few hundred
bytes of nested aliases (a "billion laughs" bomb) expand to billions of values, which any
code that walks or hashes the data would never finish. An alias that refers to a node
containing it, or aliases that add more than :data:`MAX_ALIAS_EXPANSION` values and
characters to what the file writes out, are refused with the anchor's line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synth.errors import InputError

__all__ = ["load_yaml", "parse_yaml", "field_lines", "MAX_ALIAS_EXPANSION"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: The most values and characters aliases may add to a YAML document beyond what it writes
#: out (about 1 MB of repeated text): shared option blocks and repeated lists stay far below
#: it, while six levels of a ten-fold alias bomb (600 bytes) would add millions.
MAX_ALIAS_EXPANSION = 1_000_000


def load_yaml(path: str | Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path``; return the data and its node tree (for :func:`item_lines`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start})", path=str(path)) from None
    return parse_yaml(text, path=str(path))


def parse_yaml(text: str, *, path: str, first_line: int = 1,
               what: str = "YAML") -> tuple[Any, yaml.Node | None]:
    """Parse ``text`` (called ``path`` in errors; its first line is ``first_line`` of that
    file); return the data and its node tree. Aliases are checked (module docstring)
    before the data is built."""
    # One parse (the node tree carries the line numbers; the data is built from it), with
    # libyaml's C parser when present: the pure-Python one costs ~0.5 s on the registry.
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_aliases(node, path, first_line)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        prefix = "not valid YAML" if what == "YAML" else f"{what} is not valid YAML"
        raise InputError(f"{prefix}: {problem}", path=path, line=line) from None
    except RecursionError:  # nesting deeper than Python's stack, whatever the aliases
        raise InputError("YAML nested too deeply", path=path) from None
    finally:
        loader.dispose()
    return data, node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, path: str, first_line: int) -> None:
    """Refuse a recursive alias, or aliases expanding the document by more than
    :data:`MAX_ALIAS_EXPANSION` (module docstring). A node's size is 1, plus its text for a
    scalar; the composer gives every alias of an anchor the anchor's own node object, so
    sizes are computed once per node (linear in the file, however much it expands)."""
    size: dict[int, int] = {}      # id -> expanded size, once finished
    active: set[int] = set()       # entered, not finished: the current path from the root
    refs: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    written = 0                    # each node counted once: what the file writes out
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finish = stack.pop()
        k = id(node)
        if finish:
            active.discard(k)
            own = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
            written += own
            size[k] = own + sum(size[id(c)] for c in _children(node))
            continue
        if k in size:
            continue
        nodes[k] = node
        active.add(k)
        stack.append((node, True))
        for c in _children(node):
            refs[id(c)] = refs.get(id(c), 0) + 1
            if id(c) in active:
                raise InputError("an alias refers to a node that contains it (a recursive "
                                 "structure): write the values out", path=path,
                                 line=c.start_mark.line + first_line)
            if id(c) not in size:
                stack.append((c, False))
    if size[id(root)] - written > MAX_ALIAS_EXPANSION:
        worst = max((k for k, n in refs.items() if n > 1), key=lambda k: size[k])
        raise InputError(f"YAML aliases of the anchor here expand the document to "
                         f"{size[id(root)]:,} values and characters from {written:,} "
                         f"written: more than {MAX_ALIAS_EXPANSION:,} added is refused (an "
                         "alias bomb?); write the repeated values out instead", path=path,
                         line=nodes[worst].start_mark.line + first_line)


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
