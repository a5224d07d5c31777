"""``self_instruct``: grow a task pool from seed tasks, as Self-Instruct (Wang et al. 2022)
does, then have the teacher answer the tasks it kept.

Each round sends ``per_round`` proposal requests (call ``propose-r<N>``). A proposal lists
``in_context`` tasks numbered ``Task 1:`` ... (``from_seed`` of them seed tasks, the rest
tasks generated so far, fewer generated ones filled from the seeds; shuffled: the paper's
6 human + 2 generated of 8) and asks the teacher to continue the list. The numbered
continuation is parsed (``Task 9: ...``, ``9. ...``, ``**Task 9:**``, a first task written
straight after the prompt's ``Task 9:``...), and every proposed task goes through the
paper's filters, in the order of its code (``bootstrap_instructions.py``):

* ``length``: 3 words or fewer, or more than 150 (``str.split`` words);
* ``keyword``: a word a language model cannot act on (image(s), graph(s), picture(s),
  file(s), map(s), draw, plot, go to, video, audio, music, flowchart, diagram; whole
  words, any case; the list of the paper's later code and of Alpaca);
* ``write a program``: starting with "Write a program". The paper's code drops these in
  every version (the model added the phrase to many tasks, leaving it unclear whether a
  program or a result was wanted); it compares after ``str.capitalize()``, which lowers the
  rest of the text, so the match is case-insensitive here too;
* ``punctuation`` / ``non-english``: the first character is ASCII punctuation / not ASCII;
* ``rouge``: ROUGE-L F (rouge-score's tokens, no stemming) above ``rouge_threshold`` (0.7)
  against any task in the pool: the seeds and every task kept so far, those kept earlier in
  the same round included. The check is :class:`synth.recipes.text.RougePool`: MinHash-LSH
  candidates, exact ROUGE-L on those only (see :mod:`synth.recipes.text` for the bound and
  the miss probability, < 1e-6 per pair).

Two more reasons keep the books straight: ``truncated`` (the last task of an answer cut at
``max_tokens``; the paper drops the whole answer, Alpaca only that task, as here) and
``target`` (tasks beyond ``target`` in the round that reaches it). The paper capitalises
each task (``str.capitalize``, which also lowers every other letter); here only the first
letter is raised, so names and acronyms survive.

Rows: one per kept task, its answer from call ``answer`` (``answer: true``; the prompt is
the task itself, template ``self_instruct/answer``), or with ``answer: false`` the task
alone (``response`` empty, ``status`` ok, provenance of the proposal that made it) for a
later stage to answer. Rejects: one row per dropped proposed task (the task is the user
message), proposals that failed or held no numbered task, and answers that failed or came
back empty (``failed: ...`` / ``empty: ...``, as the ``responses`` recipe files them).
Both templates can be replaced (``propose_template``, ``answer_template``: a shipped name
or a ``.j2`` file). Metadata of every task:
``round``, ``origin`` (``seed`` | ``generated``), ``proposal_prompt_id`` and the position
in that answer; seeds are answered too with ``answer_seeds: true`` (round 0).
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ConfigDict, Field, model_validator

from synth.errors import InputError
from synth.inputs import iter_jsonl
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
from synth.recipes.text import RougePool, rouge_tokens
from synth.records import Prompt
from synth.templates import Template

__all__ = ["SelfInstruct", "SelfInstructParams", "parse_tasks", "paper_filter",
           "read_seeds", "KEYWORDS"]

BY = "self_instruct"

#: Words that make a task one a language model cannot do (the paper's code, later list).
KEYWORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
            "map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart",
            "diagram")
_KEYWORD_RX = [(w, re.compile(rf"\b({re.escape(w)})\b", re.I)) for w in KEYWORDS]


class SelfInstructParams(RecipeParams):
    """Parameters of the ``self_instruct`` recipe."""

    model_config = ConfigDict(strict=True)

    seeds: str = Field(description="JSONL file of seed tasks, one "
                       '{"instruction": ..., "input"?: ..., "output"?: ...} a line '
                       "(relative to the pipeline file)")
    target: int = Field(100, ge=1, le=10_000_000,
                        description="generated tasks to keep (seeds not counted); rounds "
                        "stop once the pool has this many")
    rounds: int = Field(20, ge=1, le=100_000, description="most rounds of proposals")
    per_round: int = Field(8, ge=1, le=1_000_000,
                           description="proposal requests per round")
    new_per_request: int = Field(8, ge=1, le=100,
                                 description="new tasks each proposal asks for")
    in_context: int = Field(8, ge=1, le=100,
                            description="tasks listed in each proposal (the paper: 8)")
    from_seed: int = Field(6, ge=0, le=100,
                           description="of those, seed tasks (the paper: 6); the rest are "
                           "generated tasks, filled from the seeds while there are too "
                           "few")
    rouge_threshold: float = Field(0.7, gt=0.0, le=1.0,
                                   description="a task is kept only if its ROUGE-L F "
                                   "against every pool task is at most this")
    seed: int = Field(0, description="seed of the in-context sampling (and of the MinHash "
                      "pre-filter)")
    answer: bool = Field(True, description="answer the kept tasks (call 'answer'); false: "
                         "rows are the tasks alone")
    answer_seeds: bool = Field(False, description="answer the seed tasks too (rows with "
                               "origin 'seed', round 0)")
    propose_template: str = Field("self_instruct/propose", description="template of the "
                                  "proposals (a shipped name or a .j2 file): variables "
                                  "tasks (the in-context list) and count")
    answer_template: str = Field("self_instruct/answer", description="template of the "
                                 "answers: variables instruction and optional input")

    @model_validator(mode="after")
    def _check(self) -> "SelfInstructParams":
        if self.from_seed > self.in_context:
            raise ValueError(f"from_seed ({self.from_seed}) cannot exceed in_context "
                             f"({self.in_context})")
        if self.answer_seeds and not self.answer:
            raise ValueError("answer_seeds: needs answer: true")
        return self


# ---------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    id: str
    instruction: str
    input: str | None
    output: str | None
    line: int


_SEED_FIELDS = {"id", "instruction", "input", "output", "name", "instances",
                "is_classification", "metadata"}


def read_seeds(path: Path) -> list[Seed]:
    """Seed tasks of a JSONL file; an :class:`InputError` names the file, line and field
    of the first bad one. ``id``, ``name``, ``instances``, ``is_classification`` and
    ``metadata`` (the keys of Self-Instruct's own ``seed_tasks.jsonl``) are allowed and
    only ``id`` is used; any other key is refused (a typo would otherwise go unnoticed)."""
    p = str(path)
    out: list[Seed] = []
    seen: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=p,
                             line=n)
        for k in obj:
            if k not in _SEED_FIELDS:
                raise InputError("unknown field (expected instruction, input, output, id)",
                                 path=p, line=n, field=k)
        inst = obj.get("instruction")
        if not isinstance(inst, str) or not inst.strip():
            raise InputError("required: a non-empty string", path=p, line=n,
                             field="instruction")
        for k in ("input", "output"):
            if obj.get(k) is not None and not isinstance(obj[k], str):
                raise InputError("must be a string", path=p, line=n, field=k)
        sid = obj.get("id")
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, (str, int))
                                or sid == ""):
            raise InputError("must be a non-empty string or an integer", path=p, line=n,
                             field="id")
        sid = f"seed-{sid}" if sid is not None else f"seed-{n}"
        if sid in seen:
            raise InputError(f"duplicate id (first on line {seen[sid]})", path=p, line=n,
                             field="id")
        seen[sid] = n
        out.append(Seed(id=sid, instruction=inst.strip(), input=obj.get("input") or None,
                        output=obj.get("output"), line=n))
    if not out:
        raise InputError("file is empty: expected one seed task per line", path=p)
    return out


# ---------------------------------------------------------------------------- parsing

_LABEL = re.compile(
    r"^[ \t>*_#-]*(?:(?:task|instruction)[ \t]*\#?[ \t]*(\d{1,4})[ \t]*[:.)-]?"
    r"|(\d{1,4})[ \t]*[:.)])[*_]*(?=\s|$)[ \t]*", re.I | re.M)
_PARA = re.compile(r"\n[ \t]*\n")
_WS = re.compile(r"\s+")


def _clean(segment: str) -> str:
    text = _PARA.split(segment.strip(), maxsplit=1)[0]  # trailing chatter is another paragraph
    text = _WS.sub(" ", text).strip()
    if len(text) > 4 and text[:2] in ("**", "__") and text[-2:] == text[:2]:
        text = text[2:-2].strip()
    return text[:1].upper() + text[1:]


def parse_tasks(text: str, first: int) -> list[str]:
    """The tasks of a numbered continuation, in order. ``first`` is the number the prompt
    left open (``Task 9:``): text before the first label is that task when the first label
    is ``first + 1``, chatter otherwise; an answer without any label is one task."""
    labels = list(_LABEL.finditer(text))
    if not labels:
        t = _clean(text)
        return [t] if t else []
    out = []
    head = _clean(text[:labels[0].start()])
    number = int(labels[0].group(1) or labels[0].group(2))
    if head and number == first + 1:
        out.append(head)
    for m, nxt in zip(labels, labels[1:] + [None]):
        t = _clean(text[m.end():nxt.start() if nxt else len(text)])
        if t:
            out.append(t)
    return out


def paper_filter(task: str) -> str | None:
    """The paper's filters before the ROUGE-L check: a drop reason, or None to keep."""
    n = len(task.split())
    if n <= 3 or n > 150:
        return f"length: {n} words"
    for word, rx in _KEYWORD_RX:
        if rx.search(task):
            return f"keyword: {word}"
    if task.lower().startswith("write a program"):
        return "write a program: starts with 'Write a program'"
    if task[0] in string.punctuation:
        return f"punctuation: starts with {task[0]!r}"
    if not task[0].isascii():
        return f"non-english: starts with {task[0]!r}"
    return None


# ---------------------------------------------------------------------------- the recipe


@dataclass
class _Task:
    id: str
    instruction: str
    prompt: Prompt  # the answer prompt (its id is the task's id)
    meta: dict[str, Any] = field(default_factory=dict)
    src: dict[str, Any] = field(default_factory=dict)  # the proposal's row


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip().rstrip(":")


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    m = row.get("metadata")
    if isinstance(m, str):
        try:
            m = orjson.loads(m)
        except orjson.JSONDecodeError:
            return {}
    return m if isinstance(m, dict) else {}


_COPY = ("provider", "model", "model_version", "base_url", "params", "created_at",
         "intent", "licence_entries", "terms_versions", "licence_rule", "licence_decision",
         "terms_accepted", "accepted_terms", "template_id", "template_hash")


def _task_row(src: dict[str, Any], task_id: str, text: str, meta: dict[str, Any]
              ) -> dict[str, Any]:
    """A row for one proposed task: the task as the user message, no answer, the provenance
    (teacher, licence, template) of the proposal that made it. Tokens and cost stay on the
    proposal's own row."""
    row = {k: None for k in src}
    row.update({k: src.get(k) for k in _COPY})
    row.update(id=f"{task_id}:0", prompt_id=task_id, sample_index=0,
               messages=[{"role": "user", "content": text}], status="ok",
               metadata=orjson.dumps(meta).decode())
    return row


def _failure(row: dict[str, Any]) -> str | None:
    """Why an answer row is no answer (``failed`` / ``empty``), or None."""
    if row.get("status") != "ok":
        return f"failed: {row.get('error') or 'request failed'}"
    if not (row.get("response") or "").strip():
        return "empty: the answer is empty"
    return None


def _fmt(score: float, threshold: float) -> str:
    s = f"{score:.2f}"
    return s if float(s) > threshold else f"{score:.6f}"


@register_recipe
class SelfInstruct(Recipe):
    name = "self_instruct"
    Params = SelfInstructParams
    description = ("Self-Instruct: grow a task pool from seed tasks (ROUGE-L <= 0.7 "
                   "against the pool, the paper's filters), then answer it")

    def _templates(self, p: SelfInstructParams, base_dir: Path) -> tuple[Template, Template]:
        return (recipe_template(p.propose_template, base_dir, option="propose_template",
                                needs="tasks"),
                recipe_template(p.answer_template, base_dir, option="answer_template",
                                needs="instruction"))

    def _proposal(self, p: SelfInstructParams, tmpl: Template, seeds: list[Seed],
                  generated: list[_Task], rnd: int, k: int) -> Prompt:
        rng = random.Random(f"self_instruct:{p.seed}:{rnd}:{k}")
        want_gen = min(p.in_context - p.from_seed, len(generated))
        n_seed = min(p.in_context - want_gen, len(seeds))
        n_gen = min(p.in_context - n_seed, len(generated))  # more when seeds run short
        chosen: list[tuple[str, str]] = [(t.id, t.instruction)
                                         for t in rng.sample(generated, n_gen)]
        chosen += [(s.id, s.instruction) for s in rng.sample(seeds, n_seed)]
        rng.shuffle(chosen)
        return make_prompt(
            tmpl, {"tasks": [_one_line(t) for _, t in chosen], "count": p.new_per_request},
            prefix=f"si-r{rnd}-p{k}",
            metadata={"recipe": BY, "call": "propose", "round": rnd, "proposal": k,
                      "in_context": [i for i, _ in chosen], "in_context_generated": n_gen})

    def _answer_prompt(self, tmpl: Template, instruction: str, inp: str | None,
                       meta: dict[str, Any]) -> Prompt:
        return make_prompt(tmpl, {"instruction": instruction, "input": inp}, prefix="si",
                           metadata={"recipe": BY, **meta})

    @staticmethod
    def _reject(row: dict[str, Any], text: str, meta: dict[str, Any], reason: str
                ) -> dict[str, Any]:
        return reject(_task_row(row, f"{row['prompt_id']}-t{meta['proposal_task']}", text,
                                meta), BY, reason)

    # ------------------------------------------------------------------------ run

    def run(self, params: SelfInstructParams, teaching: Teaching, *, base_dir: Path
            ) -> RecipeResult:
        p = params
        seeds = read_seeds(resolve_path(p.seeds, base_dir))
        tmpl, ans_t = self._templates(p, base_dir)
        pool = RougePool(p.rouge_threshold, seed=p.seed)
        toks = [rouge_tokens(s.instruction) for s in seeds]
        for s, t, g in zip(seeds, toks, pool.signatures(toks)):
            pool.add(s.id, s.instruction, tokens=t, sig=g)

        generated: list[_Task] = []
        rejects: list[dict[str, Any]] = []
        drops: Counter[str] = Counter()
        per_round: list[dict[str, Any]] = []
        n_props = n_tasks = 0
        stopped = "rounds"
        for rnd in range(1, p.rounds + 1):
            if len(generated) >= p.target:
                stopped = "target"
                break
            prompts = [self._proposal(p, tmpl, seeds, generated, rnd, k)
                       for k in range(p.per_round)]
            order = {pr.id: k for k, pr in enumerate(prompts)}
            rows = teaching.ask(f"propose-r{rnd}", prompts)
            rows.sort(key=lambda r: order.get(str(r["prompt_id"]).split("@")[0],
                                              len(order)))
            r_drops: Counter[str] = Counter()
            r_tasks = r_kept = 0
            # the paper's filters first, then the pool check in proposal order
            survivors: list[tuple[int, dict, str, dict]] = []
            r_rejects: list[tuple[tuple[int, int], dict[str, Any]]] = []  # proposal order
            for ri, row in enumerate(rows):
                if row["status"] != "ok":
                    r_rejects.append(((ri, -1), reject(row, BY, f"error: {row.get('error')}")))
                    r_drops["error"] += 1
                    continue
                pmeta = _meta(row)
                first = len(pmeta.get("in_context") or []) + 1
                texts = parse_tasks(row.get("response") or "", first)
                if not texts:
                    r_rejects.append(((ri, -1), reject(row, BY, "no tasks: the answer holds "
                                                       "no numbered task")))
                    r_drops["no tasks"] += 1
                    continue
                r_tasks += len(texts)
                cut = row.get("finish_reason") == "length"
                for j, text in enumerate(texts):
                    meta = {"recipe": BY, "round": rnd, "origin": "generated",
                            "proposal_prompt_id": row["prompt_id"], "proposal_task": j,
                            "teacher": f"{row.get('provider')}:{row.get('model')}"}
                    reason = ("truncated: the answer was cut at max_tokens"
                              if cut and j == len(texts) - 1 else paper_filter(text))
                    if reason:
                        r_rejects.append(((ri, j), self._reject(row, text, meta, reason)))
                        r_drops[reason.split(":")[0]] += 1
                        continue
                    survivors.append((ri, row, text, meta))
            stoks = [rouge_tokens(t) for _, _, t, _ in survivors]
            for (ri, row, text, meta), tk, sig in zip(survivors, stoks,
                                                      pool.signatures(stoks)):
                if len(generated) >= p.target:
                    reason = f"target: {p.target} generated tasks already kept"
                else:
                    hit = pool.match(text, tokens=tk, sig=sig)
                    if hit is None:
                        prompt = self._answer_prompt(ans_t, text, None, meta)
                        pool.add(prompt.id, text, tokens=tk, sig=sig)
                        generated.append(_Task(prompt.id, text, prompt, meta, row))
                        r_kept += 1
                        continue
                    reason = f"rouge: {_fmt(hit.score, p.rouge_threshold)} vs {hit.id}"
                    meta = {**meta, "similar_to": hit.id, "rouge_l": hit.score}
                r_rejects.append(((ri, meta["proposal_task"]),
                                  self._reject(row, text, meta, reason)))
                r_drops[reason.split(":")[0]] += 1
            rejects += [r for _, r in sorted(r_rejects, key=lambda x: x[0])]
            n_props += len(rows)
            n_tasks += r_tasks
            drops.update(r_drops)
            per_round.append({"round": rnd, "proposals": len(rows), "proposed": r_tasks,
                              "kept": r_kept, "dropped": dict(sorted(r_drops.items())),
                              "pool": len(pool), "generated": len(generated)})
        else:
            if len(generated) >= p.target:
                stopped = "target"

        rows_out: list[dict[str, Any]] = []
        answered = 0
        if p.answer:
            prompts = []
            if p.answer_seeds:
                seen = set()
                for s in seeds:
                    pr = self._answer_prompt(ans_t, s.instruction, s.input,
                                             {"round": 0, "origin": "seed",
                                              "seed_id": s.id, "seed_line": s.line})
                    if pr.id not in seen:
                        seen.add(pr.id)
                        prompts.append(pr)
            prompts += [t.prompt for t in generated]
            for r in teaching.ask("answer", prompts) if prompts else []:
                why = _failure(r)
                if why is None:
                    rows_out.append(r)
                else:
                    rejects.append(reject(r, BY, why))
                    drops[why.split(":")[0]] += 1
            answered = len(rows_out)
        else:
            rows_out = [_task_row(t.src, t.id, t.instruction, t.meta) for t in generated]

        pc = pool.pairs
        info = {
            "seeds": len(seeds), "target": p.target, "generated": len(generated),
            "stopped": stopped, "rounds": per_round, "proposals": n_props,
            "proposed": n_tasks, "kept": len(generated),
            "dropped": dict(sorted(drops.items())), "answered": answered,
            "pool_check": {"pairs": pc, "candidates": pool.candidates,
                           "rouge_computed": pool.scored,
                           "candidate_share": (pool.candidates / pc) if pc else 0.0,
                           "lsh": pool.lsh},
        }
        return RecipeResult(rows=rows_out, rejects=rejects, info=info)

    # ------------------------------------------------------------------------ plan

    def plan(self, params: SelfInstructParams, *, base_dir: Path, samples: int = 1
             ) -> list[PlannedCall]:
        """Round 1's proposals exactly (they sample seeds only); later rounds as look-alikes
        (seeds in every slot) with ``per_round`` requests each, an upper bound since the
        run stops at ``target``; ``answer``: at most ``target`` tasks (plus the seeds),
        ``samples`` answers each, seed tasks standing in for the generated ones."""
        p = params
        seeds = read_seeds(resolve_path(p.seeds, base_dir))
        tmpl, ans_t = self._templates(p, base_dir)
        calls = [PlannedCall(f"propose-r{rnd}", p.per_round,
                             [self._proposal(p, tmpl, seeds, [], rnd, k)
                              for k in range(p.per_round)])
                 for rnd in range(1, p.rounds + 1)]
        if p.answer:
            look = [self._answer_prompt(ans_t, s.instruction, s.input,
                                        {"round": 0, "origin": "seed", "seed_id": s.id})
                    for s in seeds]
            uniq = list({pr.id: pr for pr in look}.values())
            n = p.target + (len(uniq) if p.answer_seeds else 0)
            calls.append(PlannedCall("answer", n * samples, uniq[:n]))
        return calls
