"""Prompt templates as data: ``prompts/<family>/<name>.j2`` files shipped with synth (or a
user's own file), each a YAML front matter between ``---`` lines and a Jinja2 body::

    ---
    id: judge/quality
    description: Rate one response 1-5.
    version: 1
    variables: [prompt, response]   # required at render time
    optional: [reference]           # may be left out; they render as None
    system: You are a strict grader.  # optional; a Jinja2 template too
    ---
    Rate this response to {{ prompt }} ...

``render(**vars)`` gives chat messages: the system message (when the front matter has one),
then the body as the user message. Rendering is sandboxed and strict: a variable that is
used but neither given nor optional is an error, never an empty string. Other front-matter
keys are kept in ``Template.meta`` for the code that uses the template to check. Every
mistake is an :class:`~synth.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from synth.errors import InputError
from synth.yamlfile import parse_yaml

__all__ = ["Template", "load_template", "parse_template", "template_names", "SUFFIX"]

SUFFIX = ".j2"
_KNOWN = ("id", "description", "version", "variables", "optional", "system")
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True, trim_blocks=True,
                                     lstrip_blocks=True)
_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
#: tags that would read another file: a template is one self-contained file
_OTHER_FILES = {nodes.Include: "include", nodes.Import: "import",
                nodes.FromImport: "from ... import", nodes.Extends: "extends"}


@dataclass(frozen=True)
class Template:
    """A parsed template. ``hash`` is the sha256 of the file's text, so any edit (front
    matter included) gives rows a different ``template_hash``."""

    id: str
    description: str
    version: str
    variables: tuple[str, ...]
    optional: tuple[str, ...]
    system: str | None
    body: str
    path: str
    hash: str
    meta: dict[str, Any] = field(default_factory=dict)
    _lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _body_line: int = field(default=1, repr=False, compare=False)
    _compiled: tuple = field(default=(), repr=False, compare=False)

    def line_of(self, key: str) -> int | None:
        """The file line of a front-matter key, for errors about its value."""
        return self._lines.get(key)

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """Chat messages for these variables. Undeclared extra variables are ignored, so a
        caller may pass a whole row."""
        for name in self.variables:
            if variables.get(name) is None:
                raise InputError("required variable not given", path=self.path,
                                 line=self._lines.get("variables"), field=name)
        values = {n: variables.get(n) for n in self.optional}
        values.update({n: variables[n] for n in self.variables})
        system_t, body_t = self._compiled
        out = []
        if system_t is not None:
            out.append({"role": "system",
                        "content": self._run(system_t, values, self._lines.get("system"),
                                             "system")})
        out.append({"role": "user", "content": self._run(body_t, values, None, "body")})
        return out

    def _run(self, compiled: jinja2.Template, values: dict, line: int | None,
             where: str) -> str:
        try:
            return compiled.render(values).strip()
        except jinja2.UndefinedError as e:
            raise InputError(f"render failed: {e.message}", path=self.path,
                             line=line or self._error_line(e), field=where) from None
        except jinja2.TemplateError as e:  # sandbox refusals, filter errors
            raise InputError(f"render failed: {e}", path=self.path,
                             line=line or self._error_line(e), field=where) from None
        except Exception as e:  # the template's own expression: {{ 1 / 0 }}, {{ x + 1 }}
            raise InputError(f"render failed: {type(e).__name__}: {e}", path=self.path,
                             line=line or self._error_line(e), field=where) from None

    def _error_line(self, exc: BaseException) -> int | None:
        # Jinja rewrites tracebacks so the template's own frames carry its line numbers.
        tb, line = exc.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.path:
                line = tb.tb_lineno
            tb = tb.tb_next
        return None if line is None else self._body_line + line - 1


def _front_matter(text: str, path: str) -> tuple[str, int, str]:
    """(YAML text, 1-based line where the body starts, body)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise InputError("must start with a '---' line opening the YAML front matter",
                         path=path, line=1)
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), i + 2, "".join(lines[i + 1:])
    raise InputError("front matter is not closed by a '---' line", path=path, line=1)


def _first_use(body: str, name: str, body_line: int) -> int | None:
    rx = re.compile(rf"\b{re.escape(name)}\b")
    for i, ln in enumerate(body.splitlines()):
        if rx.search(ln):
            return body_line + i
    return None


def parse_template(text: str, *, path: str) -> Template:
    """A template from its file text; ``path`` is what errors (and Jinja) call it."""
    fm, body_line, body = _front_matter(text, path)
    # the front matter starts on line 2; aliases are checked as in every YAML file synth reads
    data, node = parse_yaml(fm, path=path, first_line=2, what="front matter")
    if not isinstance(data, dict):
        raise InputError("front matter must be a YAML mapping", path=path, line=2)
    lines = {str(k.value): k.start_mark.line + 2 for k, _ in node.value} \
        if isinstance(node, yaml.MappingNode) else {}

    def bad(msg: str, key: str) -> InputError:
        return InputError(msg, path=path, line=lines.get(key, 2), field=key)

    for key in ("id", "description", "version", "variables"):
        if key not in data:
            raise InputError("missing", path=path, line=2, field=key)
    for key in ("id", "description"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise bad("must be a non-empty string", key)
    if isinstance(data["version"], bool) or not isinstance(data["version"], (str, int)):
        raise bad("must be a string or an integer", "version")
    names: dict[str, tuple[str, ...]] = {}
    for key in ("variables", "optional"):
        v = data.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str) and x.isidentifier()
                                              for x in v):
            raise bad("must be a list of variable names", key)
        names[key] = tuple(v)
    both = set(names["variables"]) & set(names["optional"])
    if both:
        raise bad(f"{', '.join(sorted(both))} cannot be both required and optional",
                  "optional")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise bad("must be a string", "system")

    declared = set(names["variables"]) | set(names["optional"])
    compiled = []
    for src, where, first_line in ((system, "system", lines.get("system")),
                                   (body, "body", body_line)):
        if src is None:
            compiled.append(None)
            continue
        try:
            ast = _ENV.parse(src, name=path, filename=path)
        except jinja2.TemplateSyntaxError as e:
            line = first_line if where == "system" else body_line + (e.lineno or 1) - 1
            raise InputError(f"Jinja2 syntax error: {e.message}", path=path, line=line,
                             field=where) from None
        # No loader, and refused here with its line rather than at the first render: a
        # template never reads another file ({% include "/etc/passwd" %}).
        for tag in ast.find_all(tuple(_OTHER_FILES)):
            line = first_line if where == "system" else body_line + tag.lineno - 1
            raise InputError(f"{{% {_OTHER_FILES[type(tag)]} %}} is not allowed: a template "
                             "is one self-contained file and never reads another",
                             path=path, line=line, field=where)
        # Catch an undeclared name now, not on the first row that happens to reach it.
        for name in sorted(jinja2.meta.find_undeclared_variables(ast) - declared):
            line = first_line if where == "system" else _first_use(src, name, body_line)
            raise InputError(f"uses {name!r}, which is not in variables or optional",
                             path=path, line=line, field=where)
        # Compiled under the file's name so a render error's traceback gives its line.
        code = _ENV.compile(ast, name=path, filename=path)
        compiled.append(_ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None)))
    if not body.strip():
        raise InputError("the body (the user message) is empty", path=path, line=body_line,
                         field="body")
    return Template(
        id=data["id"].strip(), description=data["description"].strip(),
        version=str(data["version"]), variables=names["variables"],
        optional=names["optional"], system=system, body=body, path=path,
        hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        meta={k: v for k, v in data.items() if k not in _KNOWN},
        _lines=lines, _body_line=body_line, _compiled=tuple(compiled))


def template_names() -> list[str]:
    """Names of the shipped templates, like ``judge/quality``."""
    root = resources.files("synth") / "prompts"
    out = []
    for family in root.iterdir():
        if family.is_dir():
            out += [f"{family.name}/{p.name[:-len(SUFFIX)]}" for p in family.iterdir()
                    if p.name.endswith(SUFFIX)]
    return sorted(out)


def load_template(name_or_path: str | Path) -> Template:
    """A shipped template by name (``judge/quality`` is ``prompts/judge/quality.j2``) or a
    template file by path (anything ending in ``.j2`` or naming an existing file)."""
    s = str(name_or_path)
    path = Path(s).expanduser()
    if s.endswith(SUFFIX) or path.is_file():
        display = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError("no such template file", path=display) from None
        except (IsADirectoryError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read template: {e}", path=display) from None
        return parse_template(text, path=display)
    if not _NAME.match(s):
        raise InputError(f"no such template file, nor a shipped template name (shipped: "
                         f"{', '.join(template_names())})", path=s)
    shipped = resources.files("synth") / "prompts" / f"{s}{SUFFIX}"
    if not shipped.is_file():
        raise InputError(f"no such template (shipped: {', '.join(template_names())})",
                         path=s)
    return parse_template(shipped.read_text(encoding="utf-8"), path=f"prompts/{s}{SUFFIX}")
