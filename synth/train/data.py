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

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from synth.errors import InputError

__all__ = [
    "Example",
    "TrainRows",
    "load_rows",
    "target_text",
    "build_examples",
    "check_stored_ids",
    "split_examples",
    "plan_epoch",
    "collate",
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

THINK_FORMAT = "<think>\n{reasoning}\n</think>\n\n{response}"

_EXPECTED = ("give a `synth curate` output directory, a `synth generate` run directory, or a "
             ".parquet / .jsonl file of rows with messages and response")


@dataclass
class TrainRows:
    """The rows read from ``--data``, with what was left out and why."""

    rows: list[dict[str, Any]]
    path: Path                      # the file read
    source: str                     # curated | traces | file
    skipped: dict[str, int] = field(default_factory=dict)
    dataset_card: Path | None = None  # README.md beside the rows, if any


def _locate(path: Path) -> tuple[Path, str]:
    if not path.exists():
        raise InputError(f"no such file or directory; {_EXPECTED}", path=str(path))
    if path.is_dir():
        curated, traces = path / "curated.parquet", path / "traces.parquet"
        if curated.is_file():
            return curated, "curated"
        if traces.is_file():
            return traces, "traces"
        raise InputError(f"neither curated.parquet nor traces.parquet here; {_EXPECTED}",
                         path=str(path))
    if path.name == "rejects.parquet":
        raise InputError("this is the rows curation rejected: train on curated.parquet (or "
                         "its directory) instead", path=str(path))
    return path, "curated" if path.name == "curated.parquet" else "file"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise InputError(f"not valid JSON: {e}", path=str(path), line=n) from None
            if not isinstance(obj, dict):
                raise InputError("expected a JSON object", path=str(path), line=n)
            obj["_line"] = n
            rows.append(obj)
    return rows


def load_rows(data: str | Path, *, need_logprobs: bool = False) -> TrainRows:
    """Read and check the rows to train on; see the module docstring. Every problem is an
    :class:`~synth.errors.InputError` naming the file, the line (row number for parquet)
    and the field."""
    path, source = _locate(Path(data))
    if path.suffix == ".jsonl" or path.suffix == ".json":
        rows = _read_jsonl(path)
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - arrow raises several types for bad files
            raise InputError(f"cannot read rows: {str(e).splitlines()[0]}; {_EXPECTED}",
                             path=str(path)) from None
        if "drop_reason" in table.column_names:
            raise InputError("these rows carry drop_reason: they are curation rejects, which "
                             "never reach the trainer", path=str(path), field="drop_reason")
        rows = table.to_pylist()
        for i, r in enumerate(rows, 1):
            r["_line"] = i
    skipped: dict[str, int] = {}
    kept = []
    for r in rows:
        line = r["_line"]

        def bad(msg: str, fld: str) -> InputError:
            return InputError(msg, path=str(path), line=line, field=fld)

        if r.get("status", "ok") != "ok":
            skipped["status=error"] = skipped.get("status=error", 0) + 1
            continue
        messages = r.get("messages")
        if messages is None and isinstance(r.get("prompt"), str):
            messages = [{"role": "user", "content": r["prompt"]}]
        if not isinstance(messages, list) or not messages:
            raise bad("needs a non-empty list of chat messages (or a prompt string)",
                      "messages")
        for j, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                    m.get("role") not in ("system", "user", "assistant"):
                raise bad("each message needs a role (system|user|assistant) and string "
                          "content", f"messages[{j}]")
        response = r.get("response")
        if response is not None and not isinstance(response, str):
            raise bad("must be a string", "response")
        reasoning = r.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, str):
            raise bad("must be a string or null", "reasoning")
        if need_logprobs:
            lp = r.get("logprobs")
            if not isinstance(lp, dict) or not lp.get("top_logprobs"):
                raise bad("offline KD needs the teacher's stored top-K logprobs on every "
                          "row: generate with --logprobs K (a local teacher, or an API "
                          "teacher that shares the student's tokenizer), or train with "
                          "--loss sft / an online --teacher", "logprobs")
        kept.append({**r, "messages": [{"role": m["role"], "content": m["content"]}
                                       for m in messages]})
    if not kept:
        what = f" (all {sum(skipped.values())} were skipped: "
        what = what + ", ".join(f"{k} {v}" for k, v in skipped.items()) + ")" if skipped else ""
        raise InputError(f"no rows to train on{what}", path=str(path))
    card = path.parent / "README.md"
    return TrainRows(kept, path, source, skipped, card if card.is_file() else None)


def target_text(response: str | None, reasoning: str | None, mode: str) -> str:
    """The assistant text the student learns: see the module docstring for the format."""
    response = response or ""
    if mode == "keep" and reasoning and reasoning.strip():
        return THINK_FORMAT.format(reasoning=reasoning.strip(), response=response.strip())
    return response


@dataclass(slots=True)
class Example:
    """One training example: ``ids[:start]`` is context, ``ids[start:]`` the target."""

    ids: np.ndarray                 # int32 token ids
    start: int                      # first target position
    row: int                        # index into TrainRows.rows
    group: str                      # prompt_id: examples of one prompt stay on one side
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


def check_stored_ids(rows: list[dict[str, Any]], tokenizer: Any, *, path: str,
                     sample: int = 200) -> None:
    """Stored top-K token ids must mean the same tokens in the student's vocabulary.

    Rows with ``token_ids`` (local teachers, vLLM) are checked by id: every id below the
    tokenizer's size, and the stored token strings equal to what the student's tokenizer
    calls those ids. Rows with token strings only (API teachers) are mapped string → id by
    the student's vocabulary; a string that maps to no single token is a mismatch. Raises an
    :class:`~synth.errors.InputError` naming the first bad row and what differs.
    """
    size = len(tokenizer)
    for r in rows[:sample] if sample else rows:
        lp = r["logprobs"]
        ids, toks = lp.get("token_ids"), lp.get("tokens")
        where = dict(path=path, line=r["_line"], field="logprobs")
        if ids:
            flat = [i for i in ids if i is not None]
            if any(i < 0 or i >= size for i in flat):
                big = max(flat)
                raise InputError(f"stored token id {big} is outside the student's vocabulary "
                                 f"({size} tokens): the teacher used another tokenizer; KD "
                                 "needs a shared one (train with --loss sft instead)", **where)
            if toks:
                mine = tokenizer.convert_ids_to_tokens(flat)
                for k, (a, b) in enumerate(zip(mine, toks)):
                    if a != b:
                        raise InputError(
                            f"stored token {k} is {b!r} (id {flat[k]}) but the student's "
                            f"tokenizer calls id {flat[k]} {a!r}: teacher and student "
                            "tokenizers differ; KD needs a shared one (train with --loss "
                            "sft instead)", **where)
        elif toks:
            if _map_strings(tokenizer, toks) is None:
                raise InputError("the stored tokens (strings, no ids) do not map one to one "
                                 "onto the student's vocabulary: the teacher used another "
                                 "tokenizer; KD needs a shared one (train with --loss sft "
                                 "instead)", **where)


def _map_strings(tokenizer: Any, toks: list[str]) -> list[int] | None:
    """Token strings → ids in the student's vocabulary: as vocabulary entries first, then as
    text that encodes to exactly one token; ``None`` if any cannot be mapped."""
    vocab = tokenizer.get_vocab()
    out = []
    for t in toks:
        i = vocab.get(t)
        if i is None:
            enc = tokenizer.encode(t, add_special_tokens=False)
            if len(enc) != 1 or (enc[0] == tokenizer.unk_token_id and t != tokenizer.unk_token):
                return None  # several tokens, or the tokenizer does not know it
            i = enc[0]
        out.append(i)
    return out


def _stored(r: dict[str, Any], tokenizer: Any) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The teacher's generated ids and its top-K (ids, logprobs) per generated token."""
    lp = r["logprobs"]
    ids = lp.get("token_ids") or _map_strings(tokenizer, lp.get("tokens") or []) or []
    tops = lp["top_logprobs"]
    top_ids = lp.get("top_token_ids")
    if not top_ids:
        top_ids = [_map_strings(tokenizer, t) or [-1] * len(t) for t in lp["top_tokens"]]
    k = max((len(t) for t in tops), default=0)
    ti = np.full((len(tops), k), -1, dtype=np.int64)
    tl = np.full((len(tops), k), -np.inf, dtype=np.float32)
    for j, (a, b) in enumerate(zip(top_ids, tops)):
        ti[j, :len(a)] = a
        tl[j, :len(b)] = b
    return list(ids), ti, tl


def build_examples(rows: TrainRows, tokenizer: Any, *, reasoning: str = "keep",
                   max_len: int = 1024, offline: bool = False) -> tuple[list[Example],
                                                                         dict[str, int]]:
    """Tokenise every row; returns the examples and counts of rows left out by reason.

    Raises :class:`~synth.errors.InputError` when no row has assistant text, or when every
    row is longer than ``max_len``, before any training starts.
    """
    path = str(rows.path)
    prompts, fulls, targets = [], [], []
    for r in rows.rows:
        text = target_text(r.get("response"), r.get("reasoning"), reasoning)
        targets.append(text)
        prompts.append(_render(tokenizer, r["messages"], generation_prompt=True))
        if not offline:
            fulls.append(_render(tokenizer, r["messages"] + [
                {"role": "assistant", "content": text}], generation_prompt=False))
    enc = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    enc_full = tokenizer(fulls, add_special_tokens=False)["input_ids"] if not offline else None
    out: list[Example] = []
    dropped: dict[str, int] = {}

    def drop(why: str) -> None:
        dropped[why] = dropped.get(why, 0) + 1

    for i, r in enumerate(rows.rows):
        group = str(r.get("prompt_id") or r.get("id") or i)
        if not offline and not targets[i].strip():
            drop("no assistant text")
            continue
        if offline:
            ids, ti, tl = _stored(r, tokenizer)
            if not ids or len(ids) != len(ti):
                drop("stored logprobs do not cover the answer")
                continue
            full = enc[i] + ids
            start = len(enc[i])
            ex = Example(np.asarray(full, np.int32), start, i, group, ti, tl)
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


def split_examples(examples: list[Example], share: float, *, seed: int
                   ) -> tuple[list[Example], list[Example]]:
    """Hold out about ``share`` of the examples for evaluation, by prompt (all samples of a
    prompt on one side, so no answer to a held-out prompt is trained on). Stable: a prompt's
    side depends only on its id and the seed."""
    if share <= 0:
        return examples, []

    def side(group: str) -> float:
        h = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64

    train = [e for e in examples if side(e.group) >= share]
    held = [e for e in examples if side(e.group) < share]
    if not held and len(examples) > 1:  # tiny sets: hold out at least one prompt
        g = examples[-1].group
        train = [e for e in examples if e.group != g]
        held = [e for e in examples if e.group == g]
    return train, held


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
