"""Every option of ``synth generate``, defined once.

:class:`GenerateConfig` is the single source: each field carries its default, its bounds,
its help text and (through :func:`synth.options.option`) the command-line option that sets it. The CLI
builds its ``generate`` command from these fields, the Python API validates keywords and
overrides through the same model, and error messages name the option the user typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from synth.options import MAX_TOKENS, one_or_many, option
from synth.records import Prompt

__all__ = ["GenerateConfig", "MAX_TOKENS"]


class GenerateConfig(BaseModel):
    """Everything ``synth generate`` takes. Keyword-only, validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    command: ClassVar[str] = "generate"

    input: Path | None = option(None, 'Prompts, one JSON object a line: {"id", "prompt"} or '
                              '{"id", "messages"}; optional "system", "reference", '
                              '"metadata".', cli="INPUT")
    prompts: list[Prompt] | None = option(None, "Instead of input, from Python.", cli=False)
    teacher: str = option(..., "PROVIDER:MODEL, e.g. openai:gpt-4o-mini, "
                        "anthropic:claude-sonnet-4-5, local:smollm2-135m-instruct (embedded, "
                        "no key).", short="-t")
    out: Path = option(..., "Run directory: traces.parquet, cache.sqlite, run.json. Rerun the "
                     "same command to resume.", short="-o")
    samples: int = option(1, "Samples per prompt.", ge=1, strict=True)
    temperature: float | None = option(None, "Default: 0 (greedy) for one sample, 1.0 for "
                                     "several.", ge=0, le=2, strict=True)
    top_p: float | None = option(None, "Nucleus sampling.", gt=0, le=1, strict=True)
    max_tokens: int = option(512, "Answer tokens per request.", ge=1, le=MAX_TOKENS,
                           strict=True)
    seed: int | None = option(None, "Sampling seed, where the provider takes one.", strict=True)
    system: str | None = option(None, "System prompt for lines without one.")
    concurrency: int = option(64, "Requests in flight at once.", ge=1, le=4096, strict=True)
    rpm: float | None = option(None, "Requests per minute limit.", gt=0, strict=True)
    tpm: float | None = option(None, "Tokens per minute limit.", gt=0, strict=True)
    max_cost: float | None = option(None, "Stop sending before the run directory's total cost "
                                  "(cached answers included) would exceed this many USD.",
                                  ge=0, strict=True)
    logprobs: int | None = option(None, "Store the top-K alternatives per token.", ge=1, le=100, strict=True)
    reasoning: bool = option(False, "Ask for the teacher's reasoning (Anthropic extended "
                           "thinking; OpenAI reasoning_effort).")
    reasoning_effort: Literal["low", "medium", "high"] | None = option(
        None, "low | medium | high (implies --reasoning).")
    base_url: str | None = option(None, "Any OpenAI-compatible server: vLLM, DeepSeek, "
                                "llama.cpp, Ollama, Together. Several, comma-separated (a "
                                "fleet serving the same model): each request goes to the "
                                "least-loaded healthy one.")
    base_urls: tuple[str, ...] | None = option(None, "A fleet as a list (a pipeline's "
                                               "base_urls:); the same as a comma-separated "
                                               "base_url.", cli=False)
    api_key_env: str | None = option(None, "Read the key from this variable instead of "
                                   "OPENAI_API_KEY / ANTHROPIC_API_KEY.")
    timeout: float = option(600.0, "Seconds per attempt.", gt=0, strict=True)
    max_retries: int = option(5, "Retries per request (429, 5xx, timeouts, dropped "
                            "connections).", ge=0, le=50, strict=True)
    retry_initial_delay: float = option(0.5, "First backoff, seconds.", cli=False, ge=0, strict=True)
    batch: bool = option(False, "Send the requests through the provider's batch API "
                         "(OpenAI Batch API, Anthropic Message Batches): the batch price "
                         "(half, in the shipped price table), answers within 24 h. "
                         "Interrupted, the same command resumes the batches already "
                         "submitted.")
    wait: bool = option(True, "With --batch: wait for the batches to end (default). "
                        "--no-wait submits and exits; a later run, or `synth batch status "
                        "OUT`, picks up.", cli="--wait/--no-wait")
    poll_interval: float = option(30.0, "With --batch: seconds between polls at first; "
                                  "the wait grows while nothing changes (at most 5 min).",
                                  gt=0, strict=True)
    dtype: Literal["fp32", "bf16"] = option("fp32", "Local teacher precision: fp32 | bf16. "
                                          "bf16 is ~2x faster on CPU but changes the answers "
                                          "(part of the hash).")
    price_file: Path | None = option(None, "YAML prices overriding the built-in table.")
    intent: Literal["research", "internal", "distributed", "competing"] | None = option(
        None, "What the data is for: research | internal | distributed | competing. "
        "Required for API teachers; checked against the teacher's terms.")
    accept_terms: tuple[str, ...] = option((), "Accept a registry entry's deny or warn (or "
                                         "'unknown' terms) after reading them; recorded on "
                                         "every row. Repeatable.")
    licence_file: Path | None = option(None, "YAML registry entries adding to or overriding "
                                     "the built-in licence registry.")
    progress: bool | None = option(None, "Default: on when stderr is a terminal.",
                                 cli="--progress/--no-progress")

    @model_validator(mode="before")
    @classmethod
    def _fleet(cls, data: Any) -> Any:
        # one spelling inside: base_url, comma-separated (a list is accepted too)
        if isinstance(data, dict):
            urls = data.get("base_urls")
            if urls:
                if data.get("base_url"):
                    raise ValueError("give base_url or base_urls, not both")
                if isinstance(urls, str):
                    urls = [urls]
                data = {**data, "base_url": ",".join(map(str, urls)), "base_urls": None}
            elif isinstance(data.get("base_url"), (list, tuple)):
                data = {**data, "base_url": ",".join(map(str, data["base_url"]))}
        return data

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        urls = [u.strip() for u in v.split(",")]
        for u in urls:
            if urlsplit(u).scheme not in ("http", "https"):
                raise ValueError(f"{u!r} must start with http:// or https://")
        if len(set(urls)) != len(urls):
            raise ValueError("the same server is named twice")
        return ",".join(urls)

    @property
    def fleet(self) -> list[str]:
        """The servers ``base_url`` names (one, or a fleet); empty when none is given."""
        return self.base_url.split(",") if self.base_url else []

    _terms = field_validator("accept_terms", mode="before")(one_or_many)

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        if (self.input is None) == (self.prompts is None):
            raise ValueError("give exactly one of input (a JSONL path) or prompts")
        if not self.wait and not self.batch:
            raise ValueError("--no-wait: only with --batch (a synchronous run always "
                             "waits for its answers)")
        return self

    @property
    def effort(self) -> str | None:
        return self.reasoning_effort or ("medium" if self.reasoning else None)
