"""House rules for imports, checked on synth's source by ``tests/test_house.py`` (and by
hand: ``python tests/lint_imports.py``).

1. No module uses another module's private name (``from synth.a import _x``, or ``m._x``
   on a module it imported): what two modules share gets a public name. A package's own
   private modules (``curate/_minhash_jit.py``) may be imported inside that package only.
2. The ground floor (the modules directly under ``synth/`` that every stage shares) imports
   nothing from the stages above it.

Written here because ruff's PLC2701 (import-private-name) treats every module of one
top-level package as "the same package", so it never flags ``synth.train`` reaching into
``synth.generate``; and no linter knows our floors.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "synth"
#: The stages: everything else directly under synth/ is the ground floor.
STAGES = {"teachers", "licences", "recipes", "generate", "curate", "dataset", "train",
          "pipeline", "cli"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(mod: str, is_init: bool) -> str:
    return mod if is_init else mod.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, mod: str, is_init: bool) -> str:
    if not node.level:
        return node.module or ""
    base = _package(mod, is_init).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def check_file(path: Path, root: Path = ROOT) -> list[str]:
    """Every broken rule in one file of the package at ``root``, as ``path:line: message``."""
    mod, is_init = module_name(path, root), path.name == "__init__.py"
    pkg = _package(mod, is_init)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[str] = []
    aliases: dict[str, str] = {}  # local name → the synth module it names
    # the ground floor: modules directly under synth/ (not the API façade __init__/__main__)
    ground = mod.count(".") == 1 and mod.split(".")[1] not in STAGES | {"__main__"}

    def where(node: ast.AST) -> str:
        return f"{path.relative_to(root.parent)}:{node.lineno}"

    def check_module(src: str, node: ast.AST, floors: bool = True) -> None:
        parts = src.split(".")
        for i, p in enumerate(parts[1:], 1):
            # a private module may be imported only by its own package's modules
            if _private(p) and not pkg.startswith(".".join(parts[:i])):
                out.append(f"{where(node)}: {mod} imports private module {src}")
        if floors and ground and len(parts) > 1 and parts[1] in STAGES:
            out.append(f"{where(node)}: ground-floor {mod} imports stage {src}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "synth":
                    check_module(a.name, node)
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(node, mod, is_init)
            if src.split(".")[0] != "synth":
                continue
            check_module(src, node)
            for a in node.names:
                full = f"{src}.{a.name}"
                if _is_module(full, root):
                    check_module(full, node, floors=False)  # its package was checked
                    aliases[a.asname or a.name] = full
                elif _private(a.name) and src != mod:
                    out.append(f"{where(node)}: {mod} imports private name {a.name} "
                               f"from {src}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            dotted = []
            while isinstance(base, ast.Attribute):
                dotted.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                target = ".".join([aliases[base.id], *reversed(dotted)])
                if target != mod and _is_module(target, root):
                    out.append(f"{where(node)}: {mod} uses private name {node.attr} of "
                               f"{target}")
    return out


def check_tree(root: Path = ROOT) -> list[str]:
    return [msg for p in sorted(root.rglob("*.py")) for msg in check_file(p, root)]


def main() -> int:
    problems = check_tree()
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
