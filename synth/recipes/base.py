"""What every generation recipe shares: how it reaches its teachers, how it makes prompts
from templates, and what it hands back.

A recipe is a small class with a parameter model (:class:`RecipeParams`, validated at the
edge) and a ``run`` method: ``run(params, teaching, base_dir=...) -> RecipeResult``. It
never talks to a provider itself: every request goes through :meth:`Teaching.ask`, which
runs :func:`synth.generate.generate` (licence check, request cache, rate limits, retries,
cost) once per teacher into ``<stage>/calls/<call>/<teacher>/``. A rerun of a recipe is
therefore free for every request it already made, and a killed recipe resumes from the
cache of the call it was in.

Rows are ordinary trace rows (:data:`synth.records.TRACE_SCHEMA`). The combination that
made a prompt (topic, audience, operation, round...) goes in ``metadata``, together with
``template_id`` / ``template_hash``, which the generation runner copies into their own
columns. A row a recipe drops (a rejected sample, an eliminated evolution) is not lost:
it is returned in ``RecipeResult.rejects`` with ``dropped_by`` and ``drop_reason``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from synth.errors import ConfigError
from synth.plugins import GROUPS, Registry, named_class
from synth.records import Prompt, messages_hash
from synth.templates import Template

__all__ = ["RecipeParams", "Recipe", "RecipeResult", "PlannedCall", "TeacherRoute",
           "Teaching", "RECIPES", "register_recipe", "get_recipe", "make_prompt",
           "route_prompts", "teacher_slug", "reject", "resolve_path"]


class RecipeParams(BaseModel):
    """Base of every recipe's parameters: keyword-only, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class RecipeResult:
    """``rows``: the kept trace rows. ``rejects``: rows the recipe dropped, each with
    ``dropped_by`` (the recipe's check) and ``drop_reason`` (``reason: detail``).
    ``info``: the recipe's own JSON-able summary (acceptance rates, grid, pool...)."""

    rows: list[dict[str, Any]]
    rejects: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedCall:
    """One teacher call a recipe expects to make, for ``synth estimate``: how many
    requests, and the prompts when they can be rendered before any answer exists (a
    later round's prompts depend on earlier answers: ``prompts`` is then a sample of
    look-alikes or empty, and ``requests`` an upper bound)."""

    name: str
    requests: int
    prompts: list[Prompt]
    max_tokens: int | None = None


class Recipe:
    """Base class: set ``name`` and ``Params``, implement ``run`` (and ``plan``)."""

    name: ClassVar[str]
    Params: ClassVar[type[RecipeParams]]
    description: ClassVar[str] = ""

    def run(self, params: Any, teaching: "Teaching", *, base_dir: Path) -> RecipeResult:
        raise NotImplementedError

    def plan(self, params: Any, *, base_dir: Path, samples: int = 1) -> list[PlannedCall]:
        raise NotImplementedError


#: name → :class:`Recipe` subclass: synth's own (registered as :mod:`synth.recipes` imports
#: their modules) and every installed plugin's ``synth.recipes`` entry point.
RECIPES: Registry[type[Recipe]] = Registry("recipe", GROUPS["recipe"],
                                           builtins=("synth.recipes",),
                                           check=named_class(Recipe))


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: make a recipe available to pipelines by its ``name``."""
    return RECIPES.register(cls.name, cls)


def get_recipe(name: str) -> type[Recipe]:
    cls = RECIPES.find(name)
    if cls is None:
        raise ConfigError(f"recipe: unknown recipe {name!r} (known: "
                          f"{', '.join(RECIPES.names())})")
    return cls


def resolve_path(path: str | Path, base_dir: Path) -> Path:
    """A recipe's file parameter, relative to the pipeline file's folder (a
    ``benchmark:NAME`` input is not a file and stays as it is)."""
    from synth.inputs import BENCHMARK_PREFIX

    if str(path).startswith(BENCHMARK_PREFIX):
        return Path(str(path))
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


# ---------------------------------------------------------------------------- prompts


def make_prompt(template: Template, variables: dict[str, Any], *, prefix: str,
                metadata: dict[str, Any] | None = None, reference: str | None = None
                ) -> Prompt:
    """Render ``template`` into a :class:`Prompt` whose id is ``prefix-<hash of the
    messages>`` (stable across runs, so a rerun finds its cached answers) and whose
    metadata records the template and the combination that made it."""
    messages = template.render(**variables)
    meta = {"template_id": template.id, "template_hash": template.hash, **(metadata or {})}
    return Prompt(id=f"{prefix}-{messages_hash(messages)}", messages=messages,
                  reference=reference, metadata=meta)


def reject(row: dict[str, Any], by: str, reason: str) -> dict[str, Any]:
    """A copy of ``row`` marked as dropped by check ``by`` for ``reason``."""
    return {**row, "dropped_by": by, "drop_reason": reason}


# ---------------------------------------------------------------------------- teachers


@dataclass(frozen=True)
class TeacherRoute:
    """One teacher of a stage: its spec, its share (``weight``) or fixed number of prompts
    (``quota``), and generate options for it alone (``base_url``, ``rpm``, ...)."""

    teacher: str
    weight: float | None = None
    quota: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def teacher_slug(spec: str) -> str:
    """A folder name for a teacher spec: ``openai:gpt-4o-mini`` → ``openai_gpt-4o-mini``."""
    return _SLUG.sub("_", spec).strip("_") or "teacher"


def _unit(key: str) -> float:
    """A prompt id's stable position in [0, 1): routing must not change between runs."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:13], 16) / float(1 << 52)


def route_prompts(prompts: list[Prompt], routes: list[TeacherRoute],
                  mode: Literal["split", "all"] = "split"
                  ) -> tuple[list[list[Prompt]], list[Prompt]]:
    """Assign prompts to teachers: ``(per-route prompt lists, unrouted prompts)``.

    ``split``: each prompt goes to one teacher. Quotas are filled first, in route order,
    taking prompts in a stable hash order; the remaining prompts are shared among the
    routes with a weight (by a stable hash of the prompt id, so the same prompt always goes
    to the same teacher). Routes with neither share equally when no route has a quota or a
    weight. Prompts left over once every quota is full and no route has a weight are
    returned as unrouted. ``all``: every prompt to every teacher (mixing their answers)."""
    if not routes:
        raise ConfigError("teachers: at least one teacher is needed")
    if mode == "all" or len(routes) == 1:
        return [list(prompts) for _ in routes], []
    out: list[list[Prompt]] = [[] for _ in routes]
    order = sorted(prompts, key=lambda p: _unit("q:" + p.id))
    i = 0
    for k, r in enumerate(routes):
        if r.quota is not None:
            out[k] = order[i:i + r.quota]
            i += len(out[k])
    rest = order[i:]
    weights = [r.weight if r.weight is not None else 0.0 for r in routes]
    if not any(r.quota is not None or r.weight is not None for r in routes):
        weights = [1.0] * len(routes)
    total = sum(weights)
    if total <= 0:
        return out, rest
    keep = set(id(p) for p in rest)
    bounds, acc = [], 0.0
    for w in weights:
        acc += w / total
        bounds.append(acc)
    for p in prompts:  # input order within each teacher
        if id(p) not in keep:
            continue
        u = _unit("w:" + p.id)
        k = next((j for j, b in enumerate(bounds) if u < b and weights[j] > 0),
                 max(j for j, w in enumerate(weights) if w > 0))
        out[k].append(p)
    return out, []


class Teaching:
    """How a recipe reaches its teachers: the routes, the generate options every call
    shares (``max_tokens``, ``intent``, ``accept_terms``, ``price_file``...), and the stage
    folder the calls' run directories go under.

    ``calls`` records every call made (its name, teacher, run directory and the run's
    summary from ``run.json``), so a stage can report requests, tokens and cost per
    teacher."""

    def __init__(self, routes: list[TeacherRoute], options: dict[str, Any], out: Path, *,
                 mode: Literal["split", "all"] = "split"):
        self.routes, self.options, self.out, self.mode = list(routes), dict(options), out, mode
        self.calls: list[dict[str, Any]] = []
        self.unrouted: int = 0

    @property
    def teachers(self) -> list[str]:
        return [r.teacher for r in self.routes]

    def ask(self, name: str, prompts: list[Prompt], *, samples: int | None = None,
            **overrides: Any) -> list[dict[str, Any]]:
        """Send ``prompts`` (routed across the teachers) as call ``name``; the trace rows,
        every sample of every prompt, grouped by teacher in route order. ``samples``
        defaults to the stage's generate option (1 unless set); ``overrides`` are
        generate options for this call only (``max_tokens``, ``temperature``...). A prompt
        no quota had room for is left out and counted in ``unrouted``. Prompt ids must be
        unique within one call."""
        from synth.generate import generate

        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"call name {name!r}: letters, digits, '_', '-', '.' only")
        if len({p.id for p in prompts}) != len(prompts):
            raise ValueError(f"call {name!r}: prompt ids repeat")
        groups, unrouted = route_prompts(prompts, self.routes, self.mode)
        self.unrouted += len(unrouted)
        rows: list[dict[str, Any]] = []
        for route, group in zip(self.routes, groups):
            if not group:
                continue
            if self.mode == "all" and len(self.routes) > 1:  # one prompt, several answers
                slug = teacher_slug(route.teacher)
                # the answers of every teacher descend from one source prompt: the held-out
                # split keys on it (synth.rows.source_key), so they stay on one side
                group = [Prompt(id=f"{p.id}@{slug}", messages=p.messages,
                                reference=p.reference,
                                metadata={**p.metadata,
                                          "source_id": p.metadata.get("source_id") or p.id},
                                line=p.line)
                         for p in group]
            out = self.out / "calls" / name / teacher_slug(route.teacher)
            opts = {**self.options, **route.options, **overrides}
            if samples is not None:
                opts["samples"] = samples
            result = generate(prompts=group, out=out, teacher=route.teacher, **opts)
            self.calls.append({"call": name, "teacher": route.teacher,
                               "dir": str(out), "summary": result.summary})
            rows.extend(result.table().to_pylist())
        return rows
