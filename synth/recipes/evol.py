"""``evol``: Evol-Instruct (WizardLM, Xu et al. 2023): make instructions harder, round after
round, and keep every generation that survives the paper's elimination rules.

Each round, every item of the pool gets one operation (drawn from ``operations`` by a
seeded hash of the round and the item's root, so a rerun draws the same), rendered with
that operation's template (``prompts/evol/<operation>.j2``, the paper's prompts in other
words, with its ``#Given Prompt#`` / ``#Rewritten Prompt#`` scaffolding):

* in-depth: ``constraints`` (add a constraint or requirement), ``deepen`` (ask in more
  depth and breadth), ``concretize`` (general concepts made specific), ``reasoning``
  (ask for explicit multi-step reasoning), ``complicate_input`` (add input data: a table,
  code, JSON, a formula...);
* in-breadth: ``breadth`` (a new, rarer instruction in the same domain).

The teacher evolves the instruction (call ``evolve-r<N>``), then answers the evolved one
(call ``answer-r<N>``, the instruction itself as the user message, after the input's system
prompt when it had one). An evolution is eliminated, as in the paper, when

1. it brings no information gain over its parent. The paper asks ChatGPT; here the default
   ``equality: similarity`` is a cheap check (identical after normalisation, i.e. the same
   rouge-score tokens, or ROUGE-L F >= ``similarity``, 0.9), and ``equality: teacher``
   also asks the teacher with ``evol/equal`` (call ``equal-r<N>``) whether the two are
   Equal (an empty evolution counts here too);
2. the answer contains "sorry" (a whole word, any case) and has fewer than
   ``sorry_words`` (80) words: the teacher struggled with it;
3. the answer is only punctuation and stop words;
4. the evolved instruction copies the evolving prompt's scaffolding ("given prompt",
   "rewritten prompt", "#Rewritten Prompt#"...: each template's ``scaffolding`` list, plus
   "given instruction" / "rewritten instruction" / "created instruction").

Rules 1 and 4 need only the evolved instruction and are checked before it is answered (no
answer is paid for an eliminated evolution); 2 and 3 after. A failed evolution (or a
failed request) goes to the rejects (``dropped_by="evol"``, ``drop_reason`` such as
``rule1: no information gain (ROUGE-L 0.93 >= 0.9)``) and its parent goes back into the
pool for the next round, which draws it a new operation; a successful one replaces its
parent.

Rows: each surviving evolution of every round with its answer; metadata ``operation``,
``depth`` (the round), ``generation`` (evolutions since the root: lower than ``depth``
when some failed), ``parent_id`` (the parent's id: the input's id at depth 1, the previous
evolution's prompt id after), ``root_id`` (the input's id), ``source_id`` (the root's
``source_id`` or its id: the held-out split keeps every evolution of an instruction on its
side, :func:`synth.rows.source_key`), ``evolve_prompt_id``. Every
template can be replaced (``templates: {deepen: my/deepen.j2, ...}``, a shipped name or a
``.j2`` file; a replacement's own ``scaffolding`` front-matter list feeds rule 4).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from synth.errors import ConfigError, InputError
from synth.inputs import iter_jsonl, parse_prompt
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
from synth.recipes.responses import recipe_template
from synth.recipes.text import only_stop_words, rouge_l_f, rouge_tokens
from synth.records import Prompt, messages_hash
from synth.templates import Template

__all__ = ["Evol", "EvolParams", "OPERATIONS", "read_instructions", "copied_scaffolding",
           "no_information_gain", "struggled", "parse_equal"]

BY = "evol"
OPERATIONS = ("constraints", "deepen", "concretize", "reasoning", "complicate_input",
              "breadth")
Operation = Literal["constraints", "deepen", "concretize", "reasoning", "complicate_input",
                    "breadth"]
#: scaffolding words an evolved instruction must not contain (rule 4), besides those the
#: templates list in their ``scaffolding`` front-matter key
SCAFFOLDING = ("given instruction", "rewritten instruction", "created instruction")


class EvolParams(RecipeParams):
    """Parameters of the ``evol`` recipe."""

    model_config = ConfigDict(strict=True)

    input: str | None = Field(None, description='JSONL file: {"instruction": ..., '
                              '"input"?: ...} lines, or prompts as synth generate reads '
                              "them (one user message, optionally a system prompt)")
    instructions: list[str] | None = Field(None, description="the instructions, inline "
                                           "(instead of input)")
    rounds: int = Field(3, ge=1, le=100, description="rounds of evolution (the paper: 4)")
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS),
                                        description="operations to draw from: "
                                        + ", ".join(OPERATIONS))
    seed: int = Field(0, description="seed of the operation draws")
    equality: Literal["similarity", "teacher"] = Field(
        "similarity", description="rule 1 (no information gain): 'similarity' (identical "
        "or ROUGE-L >= similarity) or 'teacher' (that, then the teacher's Equal / Not "
        "Equal, call equal-r<N>)")
    similarity: float = Field(0.9, gt=0.0, le=1.0, description="ROUGE-L F at or above which "
                              "an evolution brings no information gain")
    sorry_words: int = Field(80, ge=1, le=100_000, description="rule 2: an answer with "
                             "'sorry' and fewer words than this is eliminated")
    templates: dict[str, str] = Field(default_factory=dict, description="templates in "
                                      "place of the shipped evol/<key>.j2 (a shipped name "
                                      "or a .j2 file), by key: an operation, equal or "
                                      "answer")

    @field_validator("templates")
    @classmethod
    def _template_keys(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - set(OPERATIONS) - {"equal", "answer"})
        if bad:
            raise ValueError(f"unknown key {', '.join(bad)} (expected an operation, equal "
                             "or answer)")
        return v

    @field_validator("operations")
    @classmethod
    def _ops(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one operation")
        dup = sorted({o for o in v if v.count(o) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    @field_validator("instructions")
    @classmethod
    def _inline(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one instruction")
            for i, t in enumerate(v):
                if not t.strip():
                    raise ValueError(f"instruction {i} is empty")
        return v

    @model_validator(mode="after")
    def _source(self) -> "EvolParams":
        if (self.input is None) == (self.instructions is None):
            raise ValueError("give input (a JSONL file) or instructions (a list), "
                             "exactly one of them")
        return self


# ---------------------------------------------------------------------------- input


@dataclass
class Item:
    """One member of the pool: the current generation of one input instruction."""

    id: str
    root: str
    instruction: str
    system: str | None = None
    depth: int = 0        # the round that made it (0: the input)
    generation: int = 0   # evolutions between it and its root (< depth after failures)
    parent: str | None = None
    operation: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


_FIELDS = {"id", "instruction", "input", "output", "metadata"}


def _read_line(obj: Any, path: str, n: int) -> Item:
    if isinstance(obj, dict) and "instruction" in obj:
        for k in obj:
            if k not in _FIELDS:
                raise InputError("unknown field (expected instruction, input, output, id, "
                                 "metadata)", path=path, line=n, field=k)
        inst = obj["instruction"]
        if not isinstance(inst, str) or not inst.strip():
            raise InputError("must be a non-empty string", path=path, line=n,
                             field="instruction")
        inp = obj.get("input")
        if inp is not None and not isinstance(inp, str):
            raise InputError("must be a string", path=path, line=n, field="input")
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InputError("must be a JSON object", path=path, line=n, field="metadata")
        pid = obj.get("id")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (str, int))
                                or pid == ""):
            raise InputError("must be a non-empty string or an integer", path=path, line=n,
                             field="id")
        text = inst.strip() + (f"\n\n{inp.strip()}" if inp and inp.strip() else "")
        return Item(id=str(pid) if pid is not None else f"line-{n}",
                    root="", instruction=text, metadata=meta)
    prompt = parse_prompt(obj, path=path, line=n)
    users = [m for m in prompt.messages if m["role"] == "user"]
    others = [m for m in prompt.messages if m["role"] not in ("user", "system")]
    systems = [m for m in prompt.messages if m["role"] == "system"]
    if len(users) != 1 or others or len(systems) > 1 or not users[0]["content"].strip():
        raise InputError("evol evolves one instruction: give one non-empty user message "
                         "(and at most one system message)", path=path, line=n,
                         field="messages" if "messages" in obj else "prompt")
    return Item(id=prompt.id, root="", instruction=users[0]["content"].strip(),
                system=systems[0]["content"] if systems else None,
                metadata=dict(prompt.metadata))


def read_instructions(path: Path) -> list[Item]:
    """The pool's first generation from a JSONL file; an :class:`InputError` names the
    file, line and field of the first bad line (or of a repeated id)."""
    p = str(path)
    items: list[Item] = []
    seen: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        it = _read_line(obj, p, n)
        if it.id in seen:
            raise InputError(f"duplicate id {it.id!r} (first on line {seen[it.id]})",
                             path=p, line=n, field="id")
        seen[it.id] = n
        it.root = it.id
        items.append(it)
    if not items:
        raise InputError("file is empty: expected one instruction per line", path=p)
    return items


def _source(it: Item) -> str:
    """The source prompt every evolution of ``it`` descends from (its root instruction, or the
    root's own ``source_id``): the held-out split keys on it (:func:`synth.rows.source_key`),
    so no evolution of a held-out instruction is trained on."""
    return str(it.metadata.get("source_id") or it.root)


# ---------------------------------------------------------------------------- the rules


def copied_scaffolding(instruction: str, terms: tuple[str, ...], parent: str = ""
                       ) -> str | None:
    """Rule 4: the first scaffolding term (case-insensitive) ``instruction`` contains and
    its ``parent`` does not (a term the parent already had was not copied from the
    evolving prompt)."""
    low, before = instruction.lower(), parent.lower()
    return next((t for t in terms if t.lower() in low and t.lower() not in before), None)


def no_information_gain(parent: str, evolved: str, threshold: float) -> str | None:
    """Rule 1, the cheap way: why ``evolved`` adds nothing to ``parent`` (or None)."""
    a, b = rouge_tokens(parent), rouge_tokens(evolved)
    if not evolved.strip():
        return "empty evolution"
    if a == b:
        return "identical after normalisation"
    f = rouge_l_f(a, b)
    if f >= threshold:
        return f"ROUGE-L {f:.2f} >= {threshold:g}"
    return None


_SORRY = re.compile(r"\bsorry\b", re.I)


def struggled(answer: str, words: int = 80) -> int | None:
    """Rule 2: the answer's word count when it says "sorry" in fewer than ``words``."""
    n = len(answer.split())
    return n if _SORRY.search(answer) and n < words else None


def parse_equal(text: str | None) -> bool | None:
    """The teacher's rule-1 verdict: True for Equal, False for Not Equal, None unclear."""
    low = (text or "").strip().lower()
    if re.search(r"\bnot\s+equal\b|\bunequal\b", low):
        return False
    if re.search(r"\bequal\b", low):
        return True
    return None


# ---------------------------------------------------------------------------- the recipe


_RULES = ("rule1", "rule2", "rule3", "rule4", "error")


@register_recipe
class Evol(Recipe):
    name = "evol"
    Params = EvolParams
    description = ("Evol-Instruct: in-depth / in-breadth evolution of instructions over "
                   "rounds, with the paper's elimination rules")

    def _items(self, p: EvolParams, base_dir: Path) -> list[Item]:
        if p.input is not None:
            return read_instructions(resolve_path(p.input, base_dir))
        return [Item(id=f"i{k}", root=f"i{k}", instruction=t.strip())
                for k, t in enumerate(p.instructions or [])]

    def _templates(self, p: EvolParams, base_dir: Path) -> dict[str, Template]:
        keys = [*p.operations, "answer"] + (["equal"] if p.equality == "teacher" else [])
        return {k: recipe_template(p.templates.get(k, f"evol/{k}"), base_dir,
                                   option=f"templates.{k}",
                                   needs="second" if k == "equal" else "instruction")
                for k in keys}

    @staticmethod
    def _operation(p: EvolParams, rnd: int, root: str) -> str:
        return random.Random(f"evol:{p.seed}:{rnd}:{root}").choice(p.operations)

    def _evolve_prompt(self, p: EvolParams, t: dict[str, Template], rnd: int, it: Item
                       ) -> Prompt:
        op = self._operation(p, rnd, it.root)
        return make_prompt(t[op], {"instruction": it.instruction}, prefix=f"ev{rnd}-{it.root}",
                           metadata={"recipe": BY, "call": "evolve", "operation": op,
                                     "depth": rnd, "parent_id": it.id, "root_id": it.root,
                                     "source_id": _source(it)})

    def _answer_prompt(self, t: dict[str, Template], rnd: int, it: Item, instruction: str,
                       meta: dict[str, Any]) -> Prompt:
        pr = make_prompt(t["answer"], {"instruction": instruction},
                         prefix=f"ans{rnd}-{it.root}", metadata=meta)
        if it.system:
            msgs = [{"role": "system", "content": it.system}, *pr.messages]
            pr = Prompt(id=f"ans{rnd}-{it.root}-{messages_hash(msgs)}", messages=msgs,
                        metadata=pr.metadata)
        return pr

    def _equal_prompt(self, t: dict[str, Template], rnd: int, it: Item, evolved: str
                      ) -> Prompt:
        return make_prompt(t["equal"], {"first": it.instruction, "second": evolved},
                           prefix=f"eq{rnd}-{it.root}",
                           metadata={"recipe": BY, "call": "equal", "depth": rnd,
                                     "parent_id": it.id, "root_id": it.root,
                                     "source_id": _source(it)})

    # ------------------------------------------------------------------------ run

    def run(self, params: EvolParams, teaching: Teaching, *, base_dir: Path) -> RecipeResult:
        p = params
        if teaching.mode == "all" and len(teaching.routes) > 1:
            raise ConfigError("route: evol evolves each instruction once a round; use "
                              "route: split (each instruction to one teacher)")
        pool = self._items(p, base_dir)
        t = self._templates(p, base_dir)
        terms = tuple(dict.fromkeys(
            [s for op in p.operations for s in t[op].meta.get("scaffolding", [])]
            + list(SCAFFOLDING)))
        rows: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        rounds: list[dict[str, Any]] = []
        ops: dict[str, Counter[str]] = {op: Counter() for op in p.operations}
        total: Counter[str] = Counter()

        for rnd in range(1, p.rounds + 1):
            elim: Counter[str] = Counter()
            evolve = [self._evolve_prompt(p, t, rnd, it) for it in pool]
            by_id = {r["prompt_id"]: r for r in teaching.ask(f"evolve-r{rnd}", evolve)}
            nxt: list[Item] = list(pool)
            failed: dict[int, tuple[dict[str, Any], str]] = {}
            cands: list[tuple[int, Item, dict[str, Any], str, str]] = []

            def fail(k: int, row: dict[str, Any], reason: str) -> None:
                failed[k] = (row, reason)

            for k, (it, pr) in enumerate(zip(pool, evolve)):
                op = pr.metadata["operation"]
                ops[op]["tried"] += 1
                row = by_id.get(pr.id)
                if row is None:  # no quota had room for it: the item waits a round
                    elim["unrouted"] += 1
                    continue
                if row["status"] != "ok":
                    fail(k, row, f"error: evolve: {row.get('error')}")
                    continue
                evolved = (row.get("response") or "").strip()
                why = no_information_gain(it.instruction, evolved, p.similarity)
                if why is not None:
                    fail(k, row, f"rule1: no information gain ({why})")
                    continue
                term = copied_scaffolding(evolved, terms, it.instruction)
                if term is not None:
                    fail(k, row, f"rule4: copies the prompt's scaffolding ({term!r})")
                    continue
                cands.append((k, it, row, evolved, op))

            if p.equality == "teacher" and cands:
                eq = [self._equal_prompt(t, rnd, it, ev) for _, it, _, ev, _ in cands]
                verdicts = {r["prompt_id"]: r for r in teaching.ask(f"equal-r{rnd}", eq)}
                keep = []
                for c, pr in zip(cands, eq):
                    v = verdicts.get(pr.id)
                    if v is not None and v["status"] == "ok" and \
                            parse_equal(v.get("response")) is True:
                        fail(c[0], c[2], "rule1: no information gain (teacher: Equal)")
                    else:
                        keep.append(c)
                cands = keep

            answers = [self._answer_prompt(
                t, rnd, it, ev,
                {**it.metadata, "recipe": BY, "call": "answer", "operation": op, "depth": rnd,
                 "generation": it.generation + 1, "parent_id": it.id, "root_id": it.root,
                 "source_id": _source(it), "evolve_prompt_id": row["prompt_id"],
                 "evolve_template": t[op].id}) for _, it, row, ev, op in cands]
            got = {r["prompt_id"]: r for r in teaching.ask(f"answer-r{rnd}", answers)} \
                if answers else {}
            for (k, it, _, ev, op), pr in zip(cands, answers):
                row = got.get(pr.id)
                if row is None:
                    elim["unrouted"] += 1
                    continue
                if row["status"] != "ok":
                    fail(k, row, f"error: answer: {row.get('error')}")
                    continue
                text = row.get("response") or ""
                n = struggled(text, p.sorry_words)
                if n is not None:
                    fail(k, row, f"rule2: 'sorry' in a {n}-word answer "
                                 f"(< {p.sorry_words})")
                    continue
                if only_stop_words(text):
                    fail(k, row, "rule3: the answer is only punctuation and stop words")
                    continue
                rows.append(row)
                ops[op]["evolved"] += 1
                nxt[k] = Item(id=pr.id, root=it.root, instruction=ev, system=it.system,
                              depth=rnd, generation=it.generation + 1, parent=it.id,
                              operation=op, metadata=it.metadata)

            for k in sorted(failed):
                row, reason = failed[k]
                rule = reason.split(":")[0]
                elim[rule] += 1
                ops[evolve[k].metadata["operation"]]["eliminated"] += 1
                rejects.append(reject(row, BY, reason))
            total.update(elim)
            rounds.append({"round": rnd, "pool": len(pool),
                           "evolved": sum(1 for a, b in zip(pool, nxt) if a is not b),
                           "eliminated": {r: elim.get(r, 0) for r in _RULES}
                           | ({"unrouted": elim["unrouted"]} if elim["unrouted"] else {}),
                           "back_to_pool": len(failed)})
            pool = nxt

        gen = Counter(it.generation for it in pool)
        info = {
            "inputs": len(pool), "rounds": rounds, "rows": len(rows),
            "eliminated": {r: total.get(r, 0) for r in _RULES},
            "operations": {op: {k: c.get(k, 0) for k in ("tried", "evolved", "eliminated")}
                           for op, c in ops.items()},
            "final_generations": {str(d): gen[d] for d in sorted(gen)},
            "equality": p.equality,
        }
        return RecipeResult(rows=rows, rejects=rejects, info=info)

    # ------------------------------------------------------------------------ plan

    def plan(self, params: EvolParams, *, base_dir: Path, samples: int = 1
             ) -> list[PlannedCall]:
        """Round 1's evolutions exactly; everything after them as upper bounds (every
        item in every call), with the inputs standing in for the instructions that later
        rounds evolve and answer (their operations drawn as the run draws them).
        ``samples`` answers per answer prompt."""
        p = params
        items = self._items(p, base_dir)
        t = self._templates(p, base_dir)
        n = len(items)
        calls: list[PlannedCall] = []
        for rnd in range(1, p.rounds + 1):
            calls.append(PlannedCall(f"evolve-r{rnd}", n,
                                     [self._evolve_prompt(p, t, rnd, it) for it in items]))
            if p.equality == "teacher":
                calls.append(PlannedCall(f"equal-r{rnd}", n,
                                         [self._equal_prompt(t, rnd, it, it.instruction)
                                          for it in items]))
            calls.append(PlannedCall(
                f"answer-r{rnd}", n * samples,
                [self._answer_prompt(t, rnd, it, it.instruction, {"recipe": BY})
                 for it in items]))
        return calls
