"""Trace rows → token ids, loss masks, batches (packed or padded), stored top-K targets.

What reaches the trainer:

* ``--data`` is a ``synth curate`` output directory (``curated.parquet``: the rejected rows
  are in ``rejects.parquet`` and never read), a ``synth generate`` run directory
  (``traces.parquet``; rows with ``status = error`` are skipped and counted) or a parquet /
  JSONL file of rows with ``messages`` (or ``prompt``) and ``response``. A rejects file is
  refused.
* Each row becomes one chat example: the request's messages, then one assistant turn whose
  text is the target. ``reasoning="keep"`` puts the teacher's chain of thought before the
  answer as ``<think>\\n{reasoning}\\n</think>\\n\\n{response}`` (the format of DeepSeek-R1
  and Qwen3 distillations; a row without reasoning is just its response);
  ``reasoning="drop"`` trains on the answer alone.
* The loss mask covers the assistant turn only, derived by rendering the chat template twice,
  with the generation prompt and without the answer, and with the answer: the target is what
  the second render adds after the longest common token prefix of the two. This needs no
  ``{% generation %}`` markers in the template, which most templates lack (TRL #4879: an
  all-zero assistant mask), and it includes the template's end-of-turn token, so the student
  learns to stop.
* Offline KD (stored top-K): the target is the teacher's own generated token ids (the
  ``logprobs`` column), appended to the rendered prompt, so each stored distribution lines up
  with the position it was produced at; the ids are checked against the student's
  vocabulary first (:func:`check_stored_ids`).
* Packing concatenates examples into rows of ``max_len`` tokens; ``position_ids`` restart at
  0 for each example, and transformers derives a block-diagonal causal mask from them on
  SDPA and eager attention (``masking_utils.find_packed_sequence_indices``), so attention
  never crosses examples; the first token of an example is never a target, so no loss crosses
  either. Without packing, micro-batches are right-padded to their longest example.
* Order is deterministic: examples are shuffled per epoch with ``seed + epoch``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from synth import rows as R
from synth.errors import InputError

__all__ = [
    "Example",
    "TrainRows",
    "load_rows",
    "target_text",
    "build_examples",
    "skipped_rows",
    "skipped_text",
    "check_stored_ids",
    "split_examples",
    "plan_epoch",
    "collate",
    "iter_steps",
    "StepPlan",
    "Batch",
    "FALLBACK_CHAT_TEMPLATE",
]

log = logging.getLogger(__name__)

#: For tokenizers without a chat template (base models): ChatML, which most small instruct
#: models use. The student is saved with it, so generation later renders the same way.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

THINK_FORMAT = R.THINK_FORMAT


@dataclass
class TrainRows:
    """The rows read from ``--data`` (by :func:`synth.rows.read_rows`), with what was left
    out and why."""

    rows: list[dict[str, Any]]
    path: Path                      # the file read
    source: str                     # where they came from: synth.rows.RowsPath.kind
    skipped: dict[str, int] = field(default_factory=dict)
    dataset_card: Path | None = None  # README.md that goes with the rows, if any


def load_rows(data: str | Path, *, need_logprobs: bool = False) -> TrainRows:
    """Read and check the rows to train on: located and read by :mod:`synth.rows` (the same
    answer as every other command), each row's conversation checked. Every problem is an
    :class:`~synth.errors.InputError` naming the file, the line (row number for parquet) and
    the field."""
    got = R.read_rows(data, action="train on")
    path = got.path
    kept = []
    for r in got.rows:
        conv = R.conversation(r, path=path)
        if need_logprobs:
            lp = r.get("logprobs")
            if not isinstance(lp, dict) or not lp.get("top_logprobs"):
                raise InputError("offline KD needs the teacher's stored top-K logprobs on every "
                                 "row: generate with --logprobs K (a local teacher, or an API "
                                 "teacher that shares the student's tokenizer), or train with "
                                 "--loss sft / an online --teacher", path=str(path),
                                 line=r["_line"], field="logprobs")
        msgs = conv.prompt + ([{"role": "assistant", "content": r["messages"][-1]["content"]}]
                              if conv.from_messages else [])
        kept.append({**r, "messages": msgs})
    return TrainRows(kept, path, got.where.kind, got.skipped, got.where.card)


def skipped_rows(data: dict[str, Any]) -> dict[str, int]:
    """The rows training left out, by reason, from a train summary's ``data``: rows read but
    skipped (``status=error``) and rows that made no example (longer than ``max_len``, no
    assistant text, stored logprobs that do not cover the answer)."""
    return {**(data.get("skipped_rows") or {}), **(data.get("dropped_examples") or {})}


def skipped_text(why: dict[str, int]) -> str:
    """``skipped 5 rows (status=error: 3, longer than max_len 64: 2)``, or ``""``: what the
    command line says after training, so no row is left out silently."""
    n = sum(why.values())
    if not n:
        return ""
    return (f"skipped {n:,} row{'s' if n != 1 else ''} ("
            + ", ".join(f"{k}: {v:,}" for k, v in why.items()) + ")")


def target_text(response: str | None, reasoning: str | None, mode: str) -> str:
    """The assistant text the student learns (:func:`synth.rows.target_text`)."""
    return R.target_text(response, reasoning, mode)


@dataclass(slots=True)
class Example:
    """One training example: ``ids[:start]`` is context, ``ids[start:]`` the target."""

    ids: np.ndarray                 # int32 token ids
    start: int                      # first target position
    row: int                        # index into TrainRows.rows
    group: str                      # source prompt (synth.rows.source_key): one side of a split
    top_ids: np.ndarray | None = None        # (targets, K) int32, -1 = no alternative
    top_logprobs: np.ndarray | None = None   # (targets, K) float32

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def targets(self) -> int:
        return len(self.ids) - self.start


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the ChatML fallback; True if it had one."""
    if getattr(tokenizer, "chat_template", None):
        return True
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return False


def _render(tokenizer: Any, messages: list[dict], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)


class _StringIds:
    """Token strings → ids in the student's vocabulary, as vocabulary entries first, then as
    text that encodes to exactly one known token; ``None`` for a string that maps to none.
    Cached: API rows repeat the same strings millions of times."""

    def __init__(self, tokenizer: Any):
        self.tok, self.vocab, self.cache = tokenizer, tokenizer.get_vocab(), {}

    def __call__(self, t: str) -> int | None:
        if t in self.cache:
            return self.cache[t]
        i = self.vocab.get(t)
        if i is None:
            enc = self.tok.encode(t, add_special_tokens=False)
            ok = len(enc) == 1 and (enc[0] != self.tok.unk_token_id or t == self.tok.unk_token)
            i = enc[0] if ok else None  # several tokens, or the tokenizer does not know it
        self.cache[t] = i
        return i


def _mismatch(msg: str, **where: Any) -> InputError:
    return InputError(f"{msg}: teacher and student tokenizers differ; KD needs a shared one "
                      "(train with --loss sft instead)", **where)


def check_stored_ids(rows: list[dict[str, Any]], tokenizer: Any, *, path: str
                     ) -> dict[str, int]:
    """Stored top-K token ids must mean the same tokens in the student's vocabulary; checked
    on every row (each distinct id or string once).

    Rows with ``token_ids`` (local teachers, vLLM) are checked by id: every generated and
    top-K id below the tokenizer's size, and the stored token strings equal to what the
    student's tokenizer calls those ids. Rows with token strings only (API teachers) are
    mapped string → id by the student's vocabulary: a generated token that maps to no single
    token is a mismatch; a top-K alternative that maps to none is left out on its own (its
    mass counts in the tail bucket, or is dropped with ``renormalise``) and counted. Raises an
    :class:`~synth.errors.InputError` naming the first bad row and what differs; returns
    ``{"top_k_slots": ..., "top_k_unmapped": ...}``.
    """
    size = len(tokenizer)
    to_id = _StringIds(tokenizer)
    seen: dict[int, tuple[str, int]] = {}  # id -> (stored string, row line) first seen
    slots = unmapped = 0
    for r in rows:
        lp = r["logprobs"]
        ids, toks = lp.get("token_ids"), lp.get("tokens")
        where = dict(path=path, line=r["_line"], field="logprobs")
        if ids:
            flat = np.fromiter((i for i in ids if i is not None), dtype=np.int64)
            tops = lp.get("top_token_ids") or []
            top = np.fromiter((i for t in tops for i in t if i is not None), dtype=np.int64)
            slots += int(top.size)
            for arr in (flat, top):
                if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= size):
                    bad = int(arr.max()) if int(arr.max()) >= size else int(arr.min())
                    raise _mismatch(f"stored token id {bad} is outside the student's "
                                    f"vocabulary ({size} tokens)", **where)
            if toks:
                for i, t in zip(ids, toks):
                    if i is not None and i not in seen:
                        seen[i] = (t, r["_line"])
        elif toks:
            for k, t in enumerate(toks):
                if to_id(t) is None:
                    raise _mismatch(f"the stored tokens (strings without ids) do not map "
                                    f"onto the student's vocabulary: token {k}, {t!r}, is no "
                                    "single token of it", **where)
            for alts in lp.get("top_tokens") or []:
                slots += len(alts)
                unmapped += sum(to_id(t) is None for t in alts)
    if seen:
        keys = sorted(seen)
        for i, mine in zip(keys, tokenizer.convert_ids_to_tokens(keys)):
            theirs, line = seen[i]
            if mine != theirs:
                raise _mismatch(f"a stored token is {theirs!r} (id {i}) but the student's "
                                f"tokenizer calls id {i} {mine!r}", path=path, line=line,
                                field="logprobs")
    return {"top_k_slots": slots, "top_k_unmapped": unmapped}


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token the student's chat template ends an assistant turn with (the first special
    token after the answer: ``<|im_end|>``, ``<|eot_id|>``...), else the eos token."""
    user = [{"role": "user", "content": "u"}]
    try:
        head = tokenizer(_render(tokenizer, user, generation_prompt=True),
                         add_special_tokens=False)["input_ids"]
        full = tokenizer(_render(tokenizer, user + [{"role": "assistant", "content": "x"}],
                                 generation_prompt=False), add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 - a template that needs more than this: fall back
        return tokenizer.eos_token_id
    target = full[_common_prefix(head, full):]
    content = tokenizer("x", add_special_tokens=False)["input_ids"]
    if target[:len(content)] == content:
        target = target[len(content):]  # what the template puts after the answer
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return next((i for i in target if i in special), tokenizer.eos_token_id)


def _stored(r: dict[str, Any], to_id: Callable[[str], int | None], end: int | None,
            ends: set[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The teacher's generated ids and its top-K (ids, logprobs) per generated token. A top-K
    string that maps to no token is ``-1`` in its own slot only. When the teacher stopped
    (``finish_reason`` stop) but the stored tokens do not end with the end-of-turn token (API
    logprobs leave it out), it is appended with a one-hot target: the teacher did stop
    there, and the student must learn to."""
    lp = r["logprobs"]
    ids = lp.get("token_ids")
    if not ids:
        ids = [to_id(t) for t in lp.get("tokens") or []]
    tops = lp["top_logprobs"]
    top_ids = lp.get("top_token_ids")
    if not top_ids:
        top_ids = [[-1 if (i := to_id(t)) is None else i for t in alts]
                   for alts in lp.get("top_tokens") or []]
    k = max((len(t) for t in tops), default=1)
    stop = end is not None and r.get("finish_reason") == "stop" and ids and ids[-1] not in ends
    n = len(tops) + (1 if stop else 0)
    ti = np.full((n, k), -1, dtype=np.int64)
    tl = np.full((n, k), -np.inf, dtype=np.float32)
    for j, (a, b) in enumerate(zip(top_ids, tops)):
        ti[j, :len(a)] = [-1 if x is None else x for x in a]
        tl[j, :len(b)] = b
    ids = list(ids)
    if stop:
        ids.append(end)
        ti[-1, 0], tl[-1, 0] = end, 0.0
    return ids, ti, tl


def _norm(text: str) -> str:
    return " ".join(text.split())


def _template_frame(tokenizer: Any) -> tuple[str, str]:
    """What the chat template itself puts around an assistant turn's text, as decoded
    (special tokens skipped): found by rendering a sentinel answer."""
    sentinel = "synthsentinelanswer"
    user = [{"role": "user", "content": "u"}]
    head = tokenizer(_render(tokenizer, user, generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    full = tokenizer(_render(tokenizer, user + [{"role": "assistant", "content": sentinel}],
                             generation_prompt=False), add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(full[_common_prefix(head, full):], skip_special_tokens=True)
    rt = tokenizer.decode(tokenizer(sentinel, add_special_tokens=False)["input_ids"],
                          skip_special_tokens=True)
    at = text.find(rt)
    return (text[:at], text[at + len(rt):]) if at >= 0 else ("", "")


def _check_targets(examples: list[Example], texts: list[str], tokenizer: Any, *, path: str,
                   lines: list[int]) -> None:
    """The tokens the render-twice mask marks as the target must decode to the target text
    (plus what the template always puts around a turn). A template that rewrites assistant
    content (DeepSeek-R1 distill templates keep only the text after ``</think>``) would
    otherwise train the student on something other than the answer, silently."""
    if not examples:
        return
    before, after = _template_frame(tokenizer)
    got = tokenizer.batch_decode([e.ids[e.start:].tolist() for e in examples],
                                 skip_special_tokens=True)
    want = tokenizer.batch_decode(tokenizer(texts, add_special_tokens=False)["input_ids"],
                                  skip_special_tokens=True)
    bad = [j for j, (g, w) in enumerate(zip(got, want))
           if _norm(g) != _norm(before + w + after)]
    if bad:
        j = bad[0]
        short = lambda x: repr(x if len(x) <= 80 else x[:77] + "...")  # noqa: E731
        raise InputError(
            f"the student's chat template changes the assistant text of {len(bad)} of "
            f"{len(examples)} rows: the target is {short(texts[j])} but the template renders "
            f"{short(got[j])} (templates that keep only the text after </think>, such as "
            "DeepSeek-R1's, do this to reasoning); train with --reasoning drop, or give the "
            "student a chat template that keeps assistant content as it is", path=path,
            line=lines[j], field="response")


def build_examples(rows: TrainRows, tokenizer: Any, *, reasoning: str = "keep",
                   max_len: int = 1024, offline: bool = False) -> tuple[list[Example],
                                                                         dict[str, int]]:
    """Tokenise every row; returns the examples and counts of rows left out by reason.

    The target is the row's answer (:func:`synth.rows.conversation`), or with ``offline``
    the teacher's own generated tokens, whose reasoning must then match ``reasoning``: the
    stored tokens include the teacher's ``<think>`` text or they do not, and offline KD can
    neither add nor remove it. Raises :class:`~synth.errors.InputError` when no row has
    assistant text, when every row is longer than ``max_len``, or when the chat template
    rewrites the target, before any training starts.
    """
    path = str(rows.path)
    convs = [R.conversation(r, path=path, reasoning=reasoning) for r in rows.rows]
    targets = [c.target or "" for c in convs]
    prompts = [_render(tokenizer, c.prompt, generation_prompt=True) for c in convs]
    fulls = [] if offline else [
        _render(tokenizer, c.prompt + [{"role": "assistant", "content": t}],
                generation_prompt=False) for c, t in zip(convs, targets)]
    enc = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    enc_full = tokenizer(fulls, add_special_tokens=False)["input_ids"] if not offline else None
    to_id = _StringIds(tokenizer) if offline else None
    end = end_of_turn_id(tokenizer) if offline else None
    ends = set(tokenizer.all_special_ids) | ({end} if end is not None else set())
    out: list[Example] = []
    checked: list[int] = []
    dropped: dict[str, int] = {}

    def drop(why: str) -> None:
        dropped[why] = dropped.get(why, 0) + 1

    for i, r in enumerate(rows.rows):
        group = R.source_key(r)
        if not offline and not targets[i].strip():
            drop("no assistant text")
            continue
        if offline:
            ids, ti, tl = _stored(r, to_id, end, ends)
            if not ids or any(x is None for x in ids) or len(ids) != len(ti):
                drop("stored logprobs do not cover the answer")
                continue
            _check_offline_reasoning(r, ids, tokenizer, reasoning, path)
            start = len(enc[i])
            ex = Example(np.asarray(enc[i] + ids, np.int32), start, i, group, ti, tl)
        else:
            start = _common_prefix(enc[i], enc_full[i])
            if start >= len(enc_full[i]):
                drop("no assistant text")
                continue
            ex = Example(np.asarray(enc_full[i], np.int32), start, i, group)
        if len(ex) > max_len:
            drop(f"longer than max_len {max_len}")
            continue
        out.append(ex)
        checked.append(i)
    if not offline:
        _check_targets(out, [targets[i] for i in checked], tokenizer, path=path,
                       lines=[rows.rows[i].get("_line") for i in checked])
    if not out:
        if set(dropped) == {"no assistant text"}:
            raise InputError(f"none of the {len(rows.rows)} rows has assistant text (response"
                             f"{' or reasoning' if reasoning == 'keep' else ''}): nothing to "
                             "learn from", path=path, field="response")
        if any(k.startswith("longer than") for k in dropped):
            longest = max(len(enc[i]) for i in range(len(rows.rows)))
            raise InputError(f"every row is longer than --max-len {max_len} tokens (prompts "
                             f"alone reach {longest}): raise --max-len or shorten the rows",
                             path=path)
        raise InputError("no usable rows: " + ", ".join(f"{k} ({v})" for k, v in
                                                         dropped.items()), path=path)
    return out, dropped


def _check_offline_reasoning(r: dict[str, Any], ids: list[int], tokenizer: Any,
                             reasoning: str, path: str) -> None:
    """Offline KD learns the teacher's stored tokens as they are: a local teacher stores its
    ``<think>`` text with the answer, an API teacher returns reasoning apart (without
    logprobs). ``--reasoning`` must ask for what the tokens hold."""
    if not (r.get("reasoning") or "").strip():
        return
    inline = "</think>" in tokenizer.decode(ids, skip_special_tokens=False)
    if inline and reasoning == "drop":
        why = ("the stored tokens hold the teacher's reasoning before its answer, and its "
               "distributions after it were computed with the reasoning in context: they "
               "cannot be cut out. Use --reasoning keep, or --loss sft")
    elif not inline and reasoning == "keep":
        why = ("the stored logprobs cover only the answer (the teacher returned its reasoning "
               "apart, without logprobs), so offline KD cannot teach the reasoning. Use "
               "--reasoning drop (answers only), or --loss sft to learn the reasoning as text")
    else:
        return
    raise InputError(f"--reasoning {reasoning} with offline KD: {why}", path=path,
                     line=r.get("_line"), field="reasoning")


def split_examples(examples: list[Example], share: float, *,
                   seed: int = R.VALIDATION_SEED) -> tuple[list[Example], list[Example]]:
    """``(train, held)``: ``--eval-split``'s validation examples, by source prompt with the one
    split function (:func:`synth.rows.is_heldout`), so every sample, teacher and evolution of
    a prompt is on one side. The default seed is :data:`synth.rows.VALIDATION_SEED`, another
    draw than the held-out split of ``synth run`` and ``synth export`` (seed 0): rows a
    pipeline already split have no key below its share at seed 0, and would leave nothing to
    validate on."""
    return R.split_rows(examples, share, seed=seed, key=lambda e: e.group)


def plan_epoch(examples: list[Example], *, batch_size: int, packing: bool, max_len: int,
               seed: int, epoch: int, shuffle: bool = True) -> list[list[list[int]]]:
    """One epoch's micro-batches: each is a list of rows, each row a list of example indices
    (one index per row without packing). Deterministic for (seed, epoch); in file order
    without ``shuffle``."""
    order = np.random.default_rng(seed + epoch).permutation(len(examples)).tolist() \
        if shuffle else list(range(len(examples)))
    if not packing:
        return [[[i] for i in order[s:s + batch_size]]
                for s in range(0, len(order), batch_size)]
    # Next-fit with a few open bins: near first-fit packing density at O(n) (full first-fit
    # scans every open bin for every example).
    rows: list[list[int]] = []
    fill: list[int] = []
    open_bins: list[int] = []
    for i in order:
        n = len(examples[i])
        for b in open_bins:
            if fill[b] + n <= max_len:
                rows[b].append(i)
                fill[b] += n
                break
        else:
            rows.append([i])
            fill.append(n)
            open_bins.append(len(rows) - 1)
            if len(open_bins) > 8:
                open_bins.pop(0)
    return [rows[s:s + batch_size] for s in range(0, len(rows), batch_size)]


@dataclass
class Batch:
    """Tensors of one micro-batch. ``select`` are flat indices into ``(B * L)`` of the
    positions whose next token is a target; ``labels`` ``(N,)`` those targets."""

    input_ids: Any          # (B, L) int64
    position_ids: Any       # (B, L) int64
    attention_mask: Any     # (B, L) int64, or None when packed (positions carry the mask)
    select: Any             # (N,) int64
    labels: Any             # (N,) int64
    tokens: int             # real (non-pad) tokens in the batch
    top_ids: Any = None     # (N, K) int64
    top_logprobs: Any = None  # (N, K) float32

    def to(self, device: Any) -> Batch:
        def mv(t):
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(mv(self.input_ids), mv(self.position_ids), mv(self.attention_mask),
                     mv(self.select), mv(self.labels), self.tokens, mv(self.top_ids),
                     mv(self.top_logprobs))


def collate(examples: list[Example], rows: list[list[int]], *, pad_id: int,
            packed: bool) -> Batch:
    """Build one micro-batch's tensors from rows of example indices."""
    import torch

    lengths = [sum(len(examples[i]) for i in row) for row in rows]
    width = max(lengths)
    B = len(rows)
    ids = np.full((B, width), pad_id, dtype=np.int64)
    pos = np.zeros((B, width), dtype=np.int64)
    attn = np.zeros((B, width), dtype=np.int64)
    is_target = np.zeros((B, width), dtype=bool)  # position t predicts a target at t+1
    tops_i, tops_l = [], []
    for b, row in enumerate(rows):
        at = 0
        for i in row:
            ex = examples[i]
            n = len(ex)
            ids[b, at:at + n] = ex.ids
            pos[b, at:at + n] = np.arange(n)
            attn[b, at:at + n] = 1
            is_target[b, at + ex.start - 1:at + n - 1] = True
            if ex.top_ids is not None:
                tops_i.append(ex.top_ids)
                tops_l.append(ex.top_logprobs)
            at += n
        if packed and at < width:  # padding is its own "sequence", never a target
            pos[b, at:] = np.arange(width - at)
    flat_target = is_target.reshape(-1)
    select = np.flatnonzero(flat_target)
    labels = ids.reshape(-1)[select + 1]
    top_ids = top_lps = None
    if tops_i:
        k = max(t.shape[1] for t in tops_i)
        top_ids = np.concatenate([np.pad(t, ((0, 0), (0, k - t.shape[1])), constant_values=-1)
                                  for t in tops_i])
        top_lps = np.concatenate([np.pad(t, ((0, 0), (0, k - t.shape[1])),
                                         constant_values=-np.inf) for t in tops_l])
        top_ids, top_lps = torch.from_numpy(top_ids), torch.from_numpy(top_lps)
    return Batch(
        input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(pos),
        attention_mask=None if packed else torch.from_numpy(attn),
        select=torch.from_numpy(select), labels=torch.from_numpy(labels),
        tokens=int(attn.sum()), top_ids=top_ids, top_logprobs=top_lps)


def iter_steps(plan: list[list[list[int]]], grad_accum: int) -> Iterator[list[list[list[int]]]]:
    """Group an epoch's micro-batches into optimiser steps of ``grad_accum`` each (the last
    step of an epoch may hold fewer)."""
    for s in range(0, len(plan), grad_accum):
        yield plan[s:s + grad_accum]


class StepPlan:
    """Which micro-batches each optimiser step of a run trains on, over every epoch.

    Each epoch has its own shuffle, and with packing its own number of packed rows (how
    examples fit into rows of ``max_len`` depends on their order), so epochs can differ in
    step count: steps are numbered through the epochs one after another, never by one
    epoch's count. Every epoch visits every example exactly once; a fractional last epoch
    (``epochs=2.5``) visits the first part of its order. Deterministic for the settings, so a
    resumed run maps its step number to the same batches."""

    def __init__(self, examples: list[Example], *, batch_size: int, packing: bool,
                 max_len: int, seed: int, shuffle: bool, grad_accum: int):
        self._kw = dict(batch_size=batch_size, packing=packing, max_len=max_len, seed=seed,
                        shuffle=shuffle)
        self._examples, self._accum = examples, grad_accum
        self._lengths: list[int] = []
        self._cached: tuple[int, list] | None = None

    def epoch(self, e: int) -> list[list[list[list[int]]]]:
        """The optimiser steps of epoch ``e`` (each a list of micro-batches)."""
        if self._cached is None or self._cached[0] != e:
            steps = list(iter_steps(plan_epoch(self._examples, epoch=e, **self._kw),
                                    self._accum))
            self._cached = (e, steps)
        return self._cached[1]

    def steps_in(self, e: int) -> int:
        while len(self._lengths) <= e:
            self._lengths.append(len(self.epoch(len(self._lengths))))
        return self._lengths[e]

    def total(self, epochs: float, max_steps: int | None = None) -> int:
        """Optimiser steps of the run: ``max_steps``, else every step of ``int(epochs)``
        epochs plus the rounded share of the next one."""
        if max_steps:
            return max_steps
        whole = int(epochs)
        n = sum(self.steps_in(e) for e in range(whole))
        if epochs > whole:
            n += round((epochs - whole) * self.steps_in(whole))
        return max(1, n)

    def locate(self, step: int) -> tuple[int, int]:
        """``(epoch, index in that epoch)`` of the 0-based optimiser step ``step``."""
        e = 0
        while step >= self.steps_in(e):
            step -= self.steps_in(e)
            e += 1
        return e, step

    def at(self, step: int) -> list[list[list[int]]]:
        """The micro-batches of the 0-based optimiser step ``step``."""
        e, i = self.locate(step)
        return self.epoch(e)[i]

    def epochs_done(self, steps: int) -> float:
        """How many epochs ``steps`` finished steps amount to (for logs and summaries)."""
        if steps <= 0:
            return 0.0
        e, i = self.locate(steps - 1)
        return e + (i + 1) / self.steps_in(e)
