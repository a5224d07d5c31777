"""Options, declared once: the one source for a command's CLI flags, its Python keywords
and its pipeline keys.

A stage's options are a pydantic model (``GenerateConfig``, ``TrainConfig``, ``CurateConfig``
...) whose fields are made with :func:`option`: the default, the bounds, the help text and how
the command line spells it. The CLI builds each command from :func:`cli_fields`; the Python
API and the pipeline validate keywords with :func:`make_config`; an error names the option
as the user wrote it (:func:`flag`). Ground floor: imports nothing of synth but its errors.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from synth.errors import ConfigError

__all__ = ["option", "flag", "cli_fields", "make_config", "error_text", "one_or_many",
           "MAX_TOKENS"]

#: The most tokens one answer may ask for: more than any model writes in one reply, so a
#: larger ``max_tokens`` (``max_new_tokens``) is a typo (``1e14``), refused up front.
MAX_TOKENS = 1_000_000


def option(default: Any = ..., help: str = "", *, cli: str | bool = True, short: str | None = None,
           cli_required: bool = False, hidden: bool = False, **bounds: Any) -> Any:
    """A field with its help text and how the CLI exposes it: ``cli=True`` derives the flag
    from the field name (``max_tokens`` → ``--max-tokens``), a string names it (an
    upper-case name, ``INPUT``, is a positional argument), ``False`` keeps the field
    Python-only. ``cli_required``: the command line must give it although Python may leave
    it out; ``hidden``: accepted but not listed (an old spelling). Numbers are ``strict``:
    ``True``, ``"5"`` or ``2.0`` for a count is a mistake to report, not a value to coerce."""
    return Field(default, description=help, json_schema_extra={
        "cli": cli, "short": short, "cli_required": cli_required, "hidden": hidden}, **bounds)


def one_or_many(v: Any) -> Any:
    """A ``mode="before"`` field validator for a repeatable option (a tuple field): one
    value given alone (``accept_terms="unknown"``, a pipeline's ``compare: a.gguf``) is a
    one-item tuple, not a string to split into characters."""
    return (v,) if isinstance(v, str) else v


def _declaration(name: str, cls: type[BaseModel]) -> str | None:
    """How the CLI declares field ``name``: ``--max-tokens`` (derived), as the field says
    (``INPUT``, ``--progress/--no-progress``), or None for a Python-only field."""
    info = cls.model_fields.get(name)
    cli = (info.json_schema_extra or {}).get("cli", True) if info is not None else True
    if cli is False:
        return None
    return cli if isinstance(cli, str) else "--" + name.replace("_", "-")


def flag(field: str, cls: type[BaseModel]) -> str:
    """The CLI option that sets ``field`` (``max_tokens`` → ``--max-tokens``)."""
    return (_declaration(field, cls) or "--" + field.replace("_", "-")).split("/")[0]


def cli_fields(cls: type[BaseModel]) -> list[tuple[str, Any, str, str | None]]:
    """``(field, FieldInfo, flag declaration, short flag)`` of every CLI-visible field of a
    config model (``GenerateConfig``, ``TrainConfig``...), in definition order; the flag is
    an upper-case name (``INPUT``) for a positional argument."""
    return [(name, info, decl, (info.json_schema_extra or {}).get("short"))
            for name, info in cls.model_fields.items()
            if (decl := _declaration(name, cls)) is not None]


def error_text(err: dict[str, Any]) -> str:
    """One pydantic error as the text synth shows: the message, and the value given when
    it is a scalar (``must be >= 1, got 0``)."""
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and err["type"] != "missing" and \
            not isinstance(err["input"], (dict, list)):
        msg += f", got {err['input']!r}"
    return msg


def _message(err: dict[str, Any], names: str, cls: type[BaseModel]) -> str:
    field = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        near = difflib.get_close_matches(field, cls.model_fields, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"{field}: not an option of {getattr(cls, 'command', 'synth')}{hint}"
    msg = error_text(err) if field else err["msg"].removeprefix("Value error, ")
    where = (flag(field, cls) if names == "flags" else field) if field else "config"
    return f"{where}: {msg}"


def make_config(config: BaseModel | None, kwargs: dict[str, Any], *,
                names: Literal["flags", "fields"] = "flags",
                cls: type[BaseModel] | None = None) -> Any:
    """A validated config from keywords, or ``config`` with validated overrides: the same
    checks whether the values came from the CLI, from keywords or as overrides. A bad value
    is a :class:`ConfigError` naming its option (``--max-tokens``; ``max_tokens`` with
    ``names="fields"``, for a recipe's parameters)."""
    if cls is None:
        if config is None:
            raise TypeError("make_config needs a config or cls")
        cls = type(config)
    if config is not None:
        if not kwargs:
            return config
        kwargs = {**{k: getattr(config, k) for k in cls.model_fields}, **kwargs}
    try:
        return cls(**kwargs)
    except ValidationError as e:
        raise ConfigError(_message(e.errors()[0], names, cls)) from None
