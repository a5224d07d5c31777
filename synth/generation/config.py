"""Every option of ``synth generate``, defined once.

:class:`GenerateConfig` is the single source: each field carries its default, its bounds,
its help text and (through :func:`flag`) the command-line option that sets it. The CLI
builds its ``generate`` command from these fields, the Python API validates keywords and
overrides through the same model, and error messages name the option the user typed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synth.errors import ConfigError
from synth.records import Prompt

__all__ = ["GenerateConfig", "make_config", "flag", "cli_fields", "error_text", "MAX_TOKENS"]

#: The most tokens one answer may ask for: more than any model writes in one reply, so a
#: larger ``max_tokens`` (``max_new_tokens``) is a typo (``1e14``), refused up front.
MAX_TOKENS = 1_000_000


def _opt(default: Any = ..., help: str = "", *, cli: str | bool = True, short: str | None = None,
         **bounds: Any) -> Any:
    """A field with its help text and how the CLI exposes it: ``cli=True`` derives the flag
    from the field name (``max_tokens`` → ``--max-tokens``), a string names it, ``False``
    keeps the field Python-only. Numbers are ``strict``: ``True``, ``"5"`` or ``2.0`` for a
    count is a mistake to report, not a value to coerce."""
    return Field(default, description=help, json_schema_extra={"cli": cli, "short": short},
                 **bounds)


class GenerateConfig(BaseModel):
    """Everything ``synth generate`` takes. Keyword-only, validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    command: ClassVar[str] = "generate"

    input: Path | None = _opt(None, 'Prompts, one JSON object a line: {"id", "prompt"} or '
                              '{"id", "messages"}; optional "system", "reference", '
                              '"metadata".', cli="INPUT")
    prompts: list[Prompt] | None = _opt(None, "Instead of input, from Python.", cli=False)
    teacher: str = _opt(..., "PROVIDER:MODEL, e.g. openai:gpt-4o-mini, "
                        "anthropic:claude-sonnet-4-5, local:smollm2-135m-instruct (embedded, "
                        "no key).", short="-t")
    out: Path = _opt(..., "Run directory: traces.parquet, cache.sqlite, run.json. Rerun the "
                     "same command to resume.", short="-o")
    samples: int = _opt(1, "Samples per prompt.", ge=1, strict=True)
    temperature: float | None = _opt(None, "Default: 0 (greedy) for one sample, 1.0 for "
                                     "several.", ge=0, le=2, strict=True)
    top_p: float | None = _opt(None, "Nucleus sampling.", gt=0, le=1, strict=True)
    max_tokens: int = _opt(512, "Answer tokens per request.", ge=1, le=MAX_TOKENS,
                           strict=True)
    seed: int | None = _opt(None, "Sampling seed, where the provider takes one.", strict=True)
    system: str | None = _opt(None, "System prompt for lines without one.")
    concurrency: int = _opt(64, "Requests in flight at once.", ge=1, le=4096, strict=True)
    rpm: float | None = _opt(None, "Requests per minute limit.", gt=0, strict=True)
    tpm: float | None = _opt(None, "Tokens per minute limit.", gt=0, strict=True)
    max_cost: float | None = _opt(None, "Stop sending before the run directory's total cost "
                                  "(cached answers included) would exceed this many USD.",
                                  ge=0, strict=True)
    logprobs: int | None = _opt(None, "Store the top-K alternatives per token.", ge=1, le=100, strict=True)
    reasoning: bool = _opt(False, "Ask for the teacher's reasoning (Anthropic extended "
                           "thinking; OpenAI reasoning_effort).")
    reasoning_effort: Literal["low", "medium", "high"] | None = _opt(
        None, "low | medium | high (implies --reasoning).")
    base_url: str | None = _opt(None, "Any OpenAI-compatible server: vLLM, DeepSeek, "
                                "llama.cpp, Ollama, Together.")
    api_key_env: str | None = _opt(None, "Read the key from this variable instead of "
                                   "OPENAI_API_KEY / ANTHROPIC_API_KEY.")
    timeout: float = _opt(600.0, "Seconds per attempt.", gt=0, strict=True)
    max_retries: int = _opt(5, "Retries per request (429, 5xx, timeouts, dropped "
                            "connections).", ge=0, le=50, strict=True)
    retry_initial_delay: float = _opt(0.5, "First backoff, seconds.", cli=False, ge=0, strict=True)
    dtype: Literal["fp32", "bf16"] = _opt("fp32", "Local teacher precision: fp32 | bf16. "
                                          "bf16 is ~2x faster on CPU but changes the answers "
                                          "(part of the hash).")
    price_file: Path | None = _opt(None, "YAML prices overriding the built-in table.")
    intent: Literal["research", "internal", "distributed", "competing"] | None = _opt(
        None, "What the data is for: research | internal | distributed | competing. "
        "Required for API teachers; checked against the teacher's terms.")
    accept_terms: tuple[str, ...] = _opt((), "Accept a registry entry's deny or warn (or "
                                         "'unknown' terms) after reading them; recorded on "
                                         "every row. Repeatable.")
    licence_file: Path | None = _opt(None, "YAML registry entries adding to or overriding "
                                     "the built-in licence registry.")
    progress: bool | None = _opt(None, "Default: on when stderr is a terminal.",
                                 cli="--progress/--no-progress")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"{v!r} must start with http:// or https://")
        return v

    @field_validator("accept_terms", mode="before")
    @classmethod
    def _terms(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v  # one entry id is a one-item tuple

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        if (self.input is None) == (self.prompts is None):
            raise ValueError("give exactly one of input (a JSONL path) or prompts")
        return self

    @property
    def effort(self) -> str | None:
        return self.reasoning_effort or ("medium" if self.reasoning else None)


def _declaration(name: str, cls: type[BaseModel] = GenerateConfig) -> str | None:
    """How the CLI declares field ``name``: ``--max-tokens`` (derived), as the field says
    (``INPUT``, ``--progress/--no-progress``), or None for a Python-only field."""
    info = cls.model_fields.get(name)
    cli = (info.json_schema_extra or {}).get("cli", True) if info is not None else True
    if cli is False:
        return None
    return cli if isinstance(cli, str) else "--" + name.replace("_", "-")


def flag(field: str, cls: type[BaseModel] = GenerateConfig) -> str:
    """The CLI option that sets ``field`` (``max_tokens`` → ``--max-tokens``)."""
    return (_declaration(field, cls) or "--" + field.replace("_", "-")).split("/")[0]


def cli_fields(cls: type[BaseModel] = GenerateConfig) -> list[tuple[str, Any, str, str | None]]:
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


def _message(err: dict[str, Any], names: str, cls: type[BaseModel] = GenerateConfig) -> str:
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
    cls = cls or (type(config) if config is not None else GenerateConfig)
    if config is not None:
        if not kwargs:
            return config
        kwargs = {**{k: getattr(config, k) for k in cls.model_fields}, **kwargs}
    try:
        return cls(**kwargs)
    except ValidationError as e:
        raise ConfigError(_message(e.errors()[0], names, cls)) from None
