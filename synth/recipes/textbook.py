"""``textbook``: synthetic textbooks, Phi / Cosmopedia style.

    recipe: textbook
    params: {topics: topics.txt, subtopics: 4, max_items: 2000, seed: 0}

The grid is topic × subtopic × audience × style × format. Topics come from ``topics``
(a text file, one topic a line, blank lines and lines starting with ``#`` skipped; or an
inline list); each topic has ``subtopics`` subtopic *slots*. The planned cells are fixed
before any request: every (topic, slot, audience, style, format), or, when that is more
than ``max_items``, ``max_items`` of them spread evenly over the topics (each topic gets
``max_items // topics`` cells, and the remainder goes one each to topics picked in a
seeded order), the cells within a topic picked in a seeded order too: the sha256 of
``seed`` and the cell, so the same parameters always give the same cells and adding a
topic never reshuffles another's.

Call ``subtopics``: one request per topic that has a planned cell (template
``textbook/subtopics``). The answer is read as a list (:func:`parse_subtopics`): a JSON
list of strings, else the numbered / bulleted lines, else every line; stripped of markers
and markdown, deduplicated (case-insensitively) and capped to ``subtopics``. Slot *k* of a
topic is its *k*-th subtopic. A topic whose request failed or whose answer lists none
is recorded with the reason, and its row goes to ``rejects``
(``dropped_by="textbook_subtopics"``).

Call ``write``: one request per planned cell whose slot has a subtopic (template
``textbook/write``); ``metadata`` holds ``topic``, ``subtopic``, ``audience``, ``style``,
``format`` (and the template ids). A failed request or an empty answer goes to
``rejects`` (``dropped_by="textbook_write"``).

``info["grid"]``: ``dims`` (``topic``, ``subtopic`` {topic: [names]}, ``audience``,
``style``, ``format``), ``cells`` (the planned cells, ``[topic, subtopic, audience, style,
format]``, ``subtopic`` null for a slot the teacher did not fill), ``planned``,
``written`` (planned cells with a row), ``coverage`` (written / planned) and ``missing``
([{``cell``, ``reason``}] for every planned cell without a row: a topic without
subtopics, a slot past the subtopics listed, a failed request, an empty answer).
``info["subtopics"]`` lists the topics without subtopics and why.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from synth.errors import ConfigError, InputError
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
from synth.recipes.responses import answer_failure, recipe_template, row_metadata, token_overrides

__all__ = ["Textbook", "parse_subtopics", "plan_cells", "read_topics", "FORMATS"]

Format = Literal["textbook section", "exercise with solution", "story", "how-to"]
FORMATS: tuple[str, ...] = ("textbook section", "exercise with solution", "story", "how-to")
AUDIENCES = ("young children", "high school students", "college students", "professionals")
STYLES = ("academic", "conversational", "step by step")

# ---------------------------------------------------------------------------- topics


def read_topics(topics: Path | str | list[str], base_dir: Path) -> list[str]:
    """The seed topics: an inline list, or a file of one topic a line (``#`` lines and
    blank lines skipped). A repeated topic is an error naming its line."""
    if isinstance(topics, list):
        where, items = "topics", [(i, t) for i, t in enumerate(topics, start=1)]
    else:
        from synth.inputs import text_lines

        path = resolve_path(topics, base_dir)
        where = str(path)
        items = list(text_lines(path, expected="a file of topics, one a line"))
    out: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in items:
        t = " ".join(raw.split())
        if not t or (not isinstance(topics, list) and t.startswith("#")):
            if isinstance(topics, list):
                raise InputError("empty topic", path=where, line=line)
            continue
        key = t.casefold()
        if key in seen:
            raise InputError(f"topic {t!r} repeats line {seen[key]}", path=where, line=line)
        seen[key] = line
        out.append(t)
    if not out:
        raise InputError("no topics (one topic a line; lines starting with # are comments)",
                         path=where)
    return out


# ---------------------------------------------------------------------------- subtopics

_MARKER = re.compile(r"^\s*(?:[-*•+·]|\(?\d{1,3}[.):]|\(?[A-Za-z][.)])\s+")
_BOLD_LEAD = re.compile(r"^(?:\*\*|__)(.+?)(?:\*\*|__)")
_SEP = re.compile(r"\s+[—–-]\s+|:\s+")
_MAX_LEN = 120


def _clean(item: str) -> str:
    s = " ".join(item.split())
    m = _BOLD_LEAD.match(s)
    if m:
        s = m.group(1)
    s = s.replace("**", "").replace("__", "").replace("`", "").strip()
    if len(s) > 80:  # "Name: a sentence describing it" → "Name"
        parts = _SEP.split(s, maxsplit=1)
        if len(parts) == 2 and 0 < len(parts[0]) <= 80:
            s = parts[0]
    s = s.strip().strip("\"'“”‘’").strip()
    if len(s) > 2 and s[0] == s[-1] and s[0] in "*_":  # *Evaporation* (markdown italics)
        s = s[1:-1].strip()
    return s.rstrip(".;,:").strip()


def parse_subtopics(text: str | None, n: int) -> list[str]:
    """At most ``n`` distinct subtopics from a teacher's answer (see the module doc)."""
    text = (text or "").strip()
    if not text:
        return []
    items: list[str] | None = None
    if text.startswith("["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list):
            items = [x for x in data if isinstance(x, str)]
    if items is None:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        marked = [_MARKER.sub("", ln, count=1) for ln in lines if _MARKER.match(ln)]
        items = marked or [ln for ln in lines if not ln.rstrip().endswith(":")]
    out: list[str] = []
    seen: set[str] = set()
    for raw in items:
        s = _clean(raw)
        if not s or len(s) > _MAX_LEN or s.casefold() in seen:
            continue
        seen.add(s.casefold())
        out.append(s)
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------------- grid


def _rank(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def plan_cells(topics: list[str], slots: int, audiences: list[str], styles: list[str],
               formats: list[str], max_items: int | None, seed: int
               ) -> list[tuple[str, int, str, str, str]]:
    """The planned cells ``(topic, slot, audience, style, format)`` (slot 0-based), in
    grid order; sampled as the module docstring says when the grid has more than
    ``max_items``."""
    per_topic = [(k, a, s, f) for k in range(slots) for a in audiences for s in styles
                 for f in formats]
    if max_items is None or max_items >= len(topics) * len(per_topic):
        return [(t, *c) for t in topics for c in per_topic]
    q, extra = divmod(max_items, len(topics))
    lucky = set(sorted(topics, key=lambda t: _rank(seed, "topic", t))[:extra])
    out = []
    for t in topics:
        want = q + (t in lucky)
        picked = sorted(range(len(per_topic)),
                        key=lambda i: _rank(seed, t, *per_topic[i]))[:want]
        out += [(t, *per_topic[i]) for i in sorted(picked)]
    return out


def _check_unique(prompts: list, cells: list, option: str) -> None:
    """Two cells that render the same prompt would be one request: a template that
    ignores a dimension of the grid."""
    seen: dict[str, int] = {}
    for i, p in enumerate(prompts):
        if p.id in seen:
            raise ConfigError(f"{option}: cells {list(cells[seen[p.id]])} and "
                              f"{list(cells[i])} render the same prompt; the template "
                              "must use every dimension of the grid")
        seen[p.id] = i


def _nonempty_unique(v: list[str], what: str) -> list[str]:
    seen = set()
    for x in v:
        if not x.strip():
            raise ValueError(f"{what}: empty entry")
        if x.casefold() in seen:
            raise ValueError(f"{what}: {x!r} repeats")
        seen.add(x.casefold())
    return v


@register_recipe
class Textbook(Recipe):
    """Seed topics → subtopics → one document per grid cell; see the module docstring."""

    name = "textbook"
    description = "seed topics → subtopics → topic × audience × style × format documents"

    class Params(RecipeParams):
        topics: Path | list[str] = Field(
            description="Seed topics: a text file (one a line, # comments), relative to "
            "the pipeline file, or an inline list.")
        subtopics: int = Field(4, ge=1, le=100, strict=True,
                               description="Subtopics the teacher lists per topic.")
        audiences: list[str] = Field(list(AUDIENCES), min_length=1,
                                     description="Who each document is written for.")
        styles: list[str] = Field(list(STYLES), min_length=1,
                                  description="Writing styles.")
        formats: list[Format] = Field(list(FORMATS), min_length=1,
                                      description="Document formats: any of "
                                      + ", ".join(FORMATS) + ".")
        max_items: int | None = Field(None, ge=1, strict=True, description="At most this "
                                      "many documents: a bigger grid is sampled, evenly "
                                      "over the topics, in a seeded order.")
        seed: int = Field(0, strict=True, description="Seed of the sampling order.")
        words: int | None = Field(None, ge=20, le=10_000, strict=True, description="Ask "
                                  "for documents of about this many words (the write "
                                  "template's optional `words`); none: as long as the "
                                  "format needs.")
        subtopics_template: str = Field("textbook/subtopics", description="Template of "
                                        "call 1 (variables topic, n).")
        write_template: str = Field("textbook/write", description="Template of call 2 "
                                    "(variables topic, subtopic, audience, style, format).")
        max_tokens: int | None = Field(None, ge=1, strict=True, description="Tokens per "
                                       "document; default: the stage's.")

        @field_validator("topics")
        @classmethod
        def _topics(cls, v):
            if isinstance(v, list) and not v:
                raise ValueError("topics: the list is empty")
            return v

        @field_validator("audiences", "styles", "formats")
        @classmethod
        def _lists(cls, v, info):
            return _nonempty_unique(v, info.field_name)

    # ------------------------------------------------------------------ pieces

    def _setup(self, params: Params, base_dir: Path):
        topics = read_topics(params.topics, base_dir)
        sub_t = recipe_template(params.subtopics_template, base_dir,
                                option="subtopics_template", needs="topic")
        write_t = recipe_template(params.write_template, base_dir, option="write_template",
                                  needs="subtopic")
        cells = plan_cells(topics, params.subtopics, params.audiences, params.styles,
                           list(params.formats), params.max_items, params.seed)
        asked = [t for t in topics if any(c[0] == t for c in cells)]
        sub_prompts = [make_prompt(sub_t, {"topic": t, "n": params.subtopics},
                                   prefix="topic", metadata={"topic": t}) for t in asked]
        return topics, write_t, cells, sub_prompts

    @staticmethod
    def _write_prompt(tmpl, topic: str, subtopic: str, audience: str, style: str,
                      fmt: str, words: int | None = None):
        combo = {"topic": topic, "subtopic": subtopic, "audience": audience,
                 "style": style, "format": fmt}
        return make_prompt(tmpl, {**combo, "words": words}, prefix="doc", metadata=combo)

    def plan(self, params: Params, *, base_dir: Path, samples: int = 1) -> list[PlannedCall]:
        """Call 2's prompts are look-alikes: each cell rendered with a placeholder
        subtopic (``subtopic K of TOPIC``); ``requests`` is exact unless the teacher lists
        fewer subtopics than asked (then it is an upper bound)."""
        _, write_t, cells, sub_prompts = self._setup(params, base_dir)
        looks = [self._write_prompt(write_t, t, f"subtopic {k + 1} of {t}", a, s, f,
                                    params.words)
                 for t, k, a, s, f in cells]
        _check_unique(looks, cells, "write_template")
        return [PlannedCall("subtopics", len(sub_prompts), sub_prompts),
                PlannedCall("write", len(cells), looks, params.max_tokens)]

    # ------------------------------------------------------------------ run

    def run(self, params: Params, teaching: Teaching, *, base_dir: Path) -> RecipeResult:
        topics, write_t, cells, sub_prompts = self._setup(params, base_dir)
        before = teaching.unrouted
        rejects: list[dict[str, Any]] = []
        subs: dict[str, list[str]] = {}
        why_none: dict[str, str] = {}
        sub_rows = teaching.ask("subtopics", sub_prompts) if sub_prompts else []
        for r in sub_rows:  # several rows per topic when every teacher answers (mode all)
            topic = row_metadata(r)["topic"]
            failure = answer_failure(r)
            found = [] if failure else parse_subtopics(r["response"], params.subtopics)
            have = subs.setdefault(topic, [])
            for s in found:
                if len(have) < params.subtopics and \
                        s.casefold() not in {h.casefold() for h in have}:
                    have.append(s)
            if not found:
                why = ("no subtopics: the answer lists none" if failure is None else
                       f"no subtopics: request {failure}")
                why_none.setdefault(topic, why)
                rejects.append(reject(r, "textbook_subtopics", why))
        for p in sub_prompts:
            t = p.metadata["topic"]
            subs.setdefault(t, [])
            if subs[t]:
                why_none.pop(t, None)
            else:
                why_none.setdefault(t, "no subtopics: not routed to a teacher")

        missing: list[tuple[int, dict[str, Any]]] = []
        named: list[list[Any]] = []
        prompts, index_of = [], {}
        for i, (t, k, a, s, f) in enumerate(cells):
            sub = subs[t][k] if k < len(subs[t]) else None
            named.append([t, sub, a, s, f])
            if sub is None:
                reason = why_none.get(t) or (f"no subtopic: the teacher listed "
                                             f"{len(subs[t])} of {params.subtopics}")
                # the slot's number tells apart the missing cells of one topic
                missing.append((i, {"cell": named[i], "slot": k + 1, "reason": reason}))
                continue
            p = self._write_prompt(write_t, t, sub, a, s, f, params.words)
            prompts.append(p)
            index_of[p.id] = i
        _check_unique(prompts, [named[index_of[p.id]] for p in prompts], "write_template")
        rows = teaching.ask("write", prompts, **token_overrides(params.max_tokens)) \
            if prompts else []
        kept = []
        failures: dict[str, list[str]] = {}  # prompt id → why its rows failed
        done: set[str] = set()
        for r in rows:
            pid = r["prompt_id"]
            pid = pid if pid in index_of else pid.rsplit("@", 1)[0]  # mode all: id@teacher
            failure = answer_failure(r)
            if failure is None:
                kept.append(r)
                done.add(pid)
            else:
                rejects.append(reject(r, "textbook_write", failure))
                failures.setdefault(pid, []).append(failure)
        for p in prompts:
            if p.id not in done:
                why = failures.get(p.id, ["not sent: not routed to a teacher"])[0]
                missing.append((index_of[p.id], {"cell": named[index_of[p.id]],
                                                 "reason": why}))
        missing = [m for _, m in sorted(missing, key=lambda x: x[0])]
        n_written = len(cells) - len(missing)
        info = {
            "grid": {
                "dims": {"topic": topics,
                         "subtopic": {t: subs[t] for t in topics if t in subs},
                         "audience": list(params.audiences), "style": list(params.styles),
                         "format": list(params.formats)},
                "cells": named, "planned": len(cells), "written": n_written,
                "coverage": round(n_written / len(cells), 4) if cells else 0.0,
                "missing": missing,
            },
            "subtopics": {"asked": len(sub_prompts),
                          "without": [{"topic": t, "reason": why_none[t]}
                                      for t in topics if t in why_none]},
            "unrouted": teaching.unrouted - before,
        }
        return RecipeResult(kept, rejects, info)
