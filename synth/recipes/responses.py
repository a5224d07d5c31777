"""``responses``: prompts in, one (or a few) teacher answers out — Alpaca-style response
distillation.

    recipe: responses
    params: {input: prompts.jsonl, template: my/wrap.j2, system: "Be brief."}

The prompts come from a JSONL file in ``synth generate``'s input format (``input``) or
from an inline list (``prompts``: strings, or objects in the same format as a line of the
file). Without ``template`` each prompt is sent as it is, under its own id. With one, the
template renders each prompt's user message from ``prompt`` (the input's text),
``reference``, ``metadata`` (the input's object) and every metadata key as a variable of
its own; the prompt's id is then ``<input id>-<hash of the rendered messages>``. A system
prompt is the template's when it has one, else the line's own, else ``system``.

Every row keeps the input's ``reference`` and ``metadata`` (with ``template_id`` /
``template_hash`` added when a template made it). A failed request or an empty answer is
not a row: it goes to ``rejects`` (``dropped_by="responses"``, ``failed: ...`` /
``empty: ...``). ``info``: ``prompts``, ``samples``, ``requests``, ``answered``,
``failed``, ``empty``, ``unrouted``, ``template``.

The helpers below (reading the prompts, loading a template, rendering a prompt through
it) are shared with :mod:`synth.recipes.cot`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, model_validator

from synth.errors import ConfigError, InputError
from synth.inputs import parse_prompt, read_prompts
from synth.recipes.base import (
    PlannedCall,
    Recipe,
    RecipeParams,
    RecipeResult,
    Teaching,
    make_prompt,
    register_recipe,
    reject,
    resolve_path,
)
from synth.records import Prompt
from synth.templates import SUFFIX, Template, load_template

__all__ = ["Responses", "source_prompts", "recipe_template", "prompt_text",
           "render_source", "row_metadata"]

# keys a template render sets on a prompt's metadata: an input's own are replaced
_TEMPLATE_KEYS = ("template_id", "template_hash")


# ---------------------------------------------------------------------------- helpers


def source_prompts(input: Path | None, prompts: list[str | dict[str, Any]] | None,
                   system: str | None, base_dir: Path) -> list[Prompt]:
    """The recipe's input prompts: ``input`` read as ``synth generate`` reads its file, or
    the inline ``prompts`` (a string is ``{"prompt": string}``), parsed the same way, with
    ``system`` as the default system prompt."""
    if input is not None:
        return read_prompts(resolve_path(input, base_dir), system=system)
    out: list[Prompt] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(prompts or [], start=1):
        obj = {"prompt": item} if isinstance(item, str) else item
        p = parse_prompt(obj, path="prompts", line=i, system=system)
        if p.id in seen:
            raise InputError(f"repeats item {seen[p.id]} (id {p.id!r})", path="prompts",
                             line=i, field="id")
        seen[p.id] = i
        out.append(p)
    if not out:
        raise ConfigError("prompts: the list is empty")
    return out


def recipe_template(name: str, base_dir: Path, *, option: str = "template",
                    needs: str | None = None) -> Template:
    """A template parameter: a ``.j2`` path (relative to the pipeline's folder) or a
    shipped name (``cot/solve``). ``needs``: a variable the template must use."""
    t = load_template(resolve_path(name, base_dir) if str(name).endswith(SUFFIX) else name)
    if needs is not None and needs not in t.variables + t.optional:
        raise ConfigError(f"{option}: {t.path} does not use {{{{ {needs} }}}} (declare it in "
                          "its variables): every prompt would render the same")
    return t


def _split_system(p: Prompt) -> tuple[str | None, list[dict[str, str]]]:
    msgs = list(p.messages)
    system = msgs.pop(0)["content"] if msgs and msgs[0]["role"] == "system" else None
    return system, msgs


def prompt_text(p: Prompt, *, path: str) -> str:
    """The user text of a one-turn prompt (a template renders one user message)."""
    _, turns = _split_system(p)
    if len(turns) != 1 or turns[0]["role"] != "user":
        raise InputError(f"a template renders one user message, but this prompt is a "
                         f"conversation of {len(turns)} messages", path=path, line=p.line,
                         field="messages")
    return turns[0]["content"]


def render_source(template: Template, p: Prompt, *, path: str,
                  extra: dict[str, Any] | None = None,
                  metadata: dict[str, Any] | None = None) -> Prompt:
    """``p`` rendered through ``template``: its text as ``prompt``, its ``reference``,
    ``metadata`` and each metadata key as variables (plus ``extra``). The input's system
    prompt is kept when the template has none."""
    system, _ = _split_system(p)
    text = prompt_text(p, path=path)
    meta = {k: v for k, v in p.metadata.items() if k not in _TEMPLATE_KEYS}
    variables = {k: v for k, v in meta.items() if isinstance(k, str)}
    variables.update({"prompt": text, "reference": p.reference, "metadata": meta,
                      "id": p.id, **(extra or {})})
    # the rendered prompt descends from the input prompt: the held-out split keys on the
    # input's id (synth.rows.source_key), set after the variables so no request changes
    source = {"source_id": meta.get("source_id") or p.id}
    out = make_prompt(template, variables, prefix=p.id,
                      metadata={**meta, **(metadata or {}), **source}, reference=p.reference)
    if system and out.messages[0]["role"] != "system":
        out.messages = [{"role": "system", "content": system}, *out.messages]
    out.line = p.line
    return out


def row_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """A trace row's ``metadata`` column as a dict."""
    raw = row.get("metadata")
    return orjson.loads(raw) if raw else {}


def set_metadata(row: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A copy of ``row`` with ``values`` merged into its metadata."""
    meta = {**row_metadata(row), **values}
    return {**row, "metadata": orjson.dumps(meta).decode()}


def answer_failure(row: dict[str, Any]) -> str | None:
    """Why a row holds no usable answer, as ``reason: detail``; None when it does."""
    if row.get("status") != "ok":
        return f"failed: {row.get('error') or 'request failed'}"
    if not (row.get("response") or "").strip():
        return "empty: the answer is empty"
    return None


class SourceParams(RecipeParams):
    """Where a recipe's prompts come from (shared by ``responses`` and ``cot``)."""

    input: Path | None = Field(
        None, description="Prompts JSONL in synth generate's input format (one "
        '{"id", "prompt" | "messages", "system", "reference", "metadata"} a line), '
        "relative to the pipeline file. Exactly one of input or prompts.")
    prompts: list[str | dict[str, Any]] | None = Field(
        None, min_length=1, description="Inline prompts instead of input: strings, or "
        "objects in the input file's line format.")
    system: str | None = Field(None, description="System prompt for prompts without one "
                               "(a template's own system prompt wins).")
    max_tokens: int | None = Field(None, ge=1, strict=True, description="Answer tokens per "
                                   "request; default: the stage's.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.input is None) == (self.prompts is None):
            raise ValueError("give exactly one of input (a prompts JSONL file) or prompts "
                             "(an inline list)")
        return self

    def source_name(self) -> str:
        return str(self.input) if self.input is not None else "prompts"


def token_overrides(max_tokens: int | None) -> dict[str, Any]:
    return {} if max_tokens is None else {"max_tokens": max_tokens}


# ---------------------------------------------------------------------------- recipe


@register_recipe
class Responses(Recipe):
    """Prompts → teacher answers; see the module docstring."""

    name = "responses"
    description = "prompts → answers (Alpaca-style response distillation)"

    class Params(SourceParams):
        template: str | None = Field(
            None, description="Template (shipped name like responses/answer, or a .j2 "
            "file) that renders each prompt from prompt, reference, metadata and the "
            "metadata keys; default: send the prompts as they are.")
        samples: int = Field(1, ge=1, le=100, strict=True,
                             description="Answers per prompt.")

    def _prompts(self, params: Params, base_dir: Path) -> list[Prompt]:
        src = source_prompts(params.input, params.prompts, params.system, base_dir)
        if params.template is None:
            return src
        t = recipe_template(params.template, base_dir, needs="prompt")
        where = params.source_name()
        return [render_source(t, p, path=where) for p in src]

    def plan(self, params: Params, *, base_dir: Path, samples: int = 1) -> list[PlannedCall]:
        prompts = self._prompts(params, base_dir)
        return [PlannedCall("answer", len(prompts) * params.samples, prompts,
                            params.max_tokens)]

    def run(self, params: Params, teaching: Teaching, *, base_dir: Path) -> RecipeResult:
        prompts = self._prompts(params, base_dir)
        before = teaching.unrouted
        rows = teaching.ask("answer", prompts, samples=params.samples,
                            **token_overrides(params.max_tokens))
        kept, rejects = [], []
        failed = empty = 0
        for r in rows:
            why = answer_failure(r)
            if why is None:
                kept.append(r)
                continue
            failed += why.startswith("failed")
            empty += why.startswith("empty")
            rejects.append(reject(r, "responses", why))
        info = {"prompts": len(prompts), "samples": params.samples, "requests": len(rows),
                "answered": len(kept), "failed": failed, "empty": empty,
                "unrouted": teaching.unrouted - before,
                "template": prompts[0].metadata.get("template_id")
                if params.template is not None else None}
        return RecipeResult(kept, rejects, info)
