"""The dry run: a few real requests per teacher, to learn how long its answers are.

``dry_run`` prompts per teacher, a seeded sample of the prompts routed to it by the first
call that has prompts, go through :func:`synth.generate.generate` into
``<out>/calls/<call>/<teacher slug>/``, the folder :meth:`~synth.recipes.base.Teaching.ask`
uses, so the answers land in the cache the real run reads. A previous run's outputs in
that folder are put back as they were (only its cache grows).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synth.recipes.base import PlannedCall, TeacherRoute
    from synth.records import Prompt

__all__ = ["OUTPUTS", "sample", "dry_run", "dry_run_teacher", "outcome"]

OUTPUTS = ("traces.parquet", "run.json", "README.md")  # what a run writes besides its cache


def sample(prompts: list[Prompt], k: int, seed: int) -> list[Prompt]:
    """``k`` prompts, the same ones for the same seed (so a second estimate finds them
    cached)."""
    pool = sorted(prompts, key=lambda p: p.id)
    return random.Random(seed).sample(pool, min(k, len(pool)))


def dry_run(call: PlannedCall, route: TeacherRoute, prompts: list[Prompt],
            opts: dict[str, Any], out: Path, *, rename: bool) -> dict[str, Any]:
    """Send ``prompts`` as ``Teaching.ask`` would send call ``call`` to ``route``, keeping
    a previous run's outputs in that folder as they were. The dry run's rows and counts."""
    from synth.generate import generate
    from synth.io import exclusive_dir, write_atomic
    from synth.recipes.base import teacher_slug
    from synth.records import Prompt

    slug = teacher_slug(route.teacher)
    folder = out / "calls" / call.name / slug
    if rename:  # "all" mode: Teaching.ask names each teacher's copy of a prompt apart
        prompts = [Prompt(id=f"{p.id}@{slug}", messages=p.messages, reference=p.reference,
                          metadata=p.metadata, line=p.line) for p in prompts]
    kept = {name: (folder / name).read_bytes() for name in OUTPUTS
            if (folder / name).is_file()}
    try:
        result = generate(prompts=prompts, out=folder, teacher=route.teacher, **opts)
        rows = result.table().to_pylist()  # before the previous outputs are put back
    finally:
        if kept:
            with exclusive_dir(folder):
                for name, data in kept.items():
                    write_atomic(folder / name, data)
    return {"dir": str(folder), "rows": rows, "prompts": {p.id: p for p in prompts},
            "sent": result.summary["sent"], "from_cache": result.summary["from_cache"]}


def dry_run_teacher(calls: list[PlannedCall], groups: list[list[list[Prompt]] | None],
                    k: int, route: TeacherRoute, opts: dict[str, Any], out: Path, *,
                    size: int, seed: int, rename: bool) -> tuple[dict[str, Any] | None,
                                                                  list[str]]:
    """Route ``k``'s dry run on the first call with prompts routed to it (``groups``: per
    call, the prompts of each route, None when unknown): ``(dry run or None, notes)``."""
    notes: list[str] = []
    first = next((i for i, g in enumerate(groups) if g is not None and g[k]), None)
    if size > 0 and first is not None:
        call = calls[first]
        picked = sample(groups[first][k], size, seed)
        dopts = dict(opts)
        # synchronous even for a batch: true stage, so the estimate never waits on a batch
        # window (the real run finds these answers in the same cache)
        dopts.pop("batch", None)
        if call.max_tokens is not None:
            dopts["max_tokens"] = call.max_tokens
        dry = dry_run(call, route, picked, dopts, out, rename=rename)
        dry["call"] = call.name
        if call.requests > len(call.prompts):
            notes.append(f"call {call.name}: {call.requests} requests for "
                         f"{len(call.prompts)} prompts (samples or rounds): the dry run "
                         "sent one sample per prompt")
        return dry, notes
    if size > 0:
        notes.append("no prompts known before the run: no dry run")
    return None, notes


def outcome(dry: dict[str, Any] | None, size: int) -> tuple[list[dict[str, Any]], bool,
                                                            list[str]]:
    """``(answered rows, worst case?, notes)``: the rows whose output tokens are known; the
    worst case (every answer at ``max_tokens``) when there are none."""
    notes: list[str] = []
    rows = dry["rows"] if dry else []
    ok = [r for r in rows if r["status"] == "ok" and r["output_tokens"] is not None]
    if dry and len(ok) < len(rows):
        notes.append(f"dry run: {len(rows) - len(ok)} of {len(rows)} requests failed")
    worst = not ok
    if worst:
        notes.append("output tokens: worst case, every answer uses max_tokens"
                     + (" (dry_run 0)" if size == 0 else ""))
    else:
        cut = sum(1 for r in ok if r["finish_reason"] in ("length", "max_tokens"))
        if cut:
            notes.append(f"dry run: {cut} of {len(ok)} answers stopped at max_tokens "
                         "(outputs may be longer with a higher limit)")
    return ok, worst, notes
