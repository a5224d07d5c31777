"""Trace rows → files other trainers read: ``synth export RUN --format F --out DIR``.

Source (``source``), located the way the trainer locates ``--data``
(:func:`synth.train.data.load_rows`), plus pipeline runs:

* a pipeline run directory: ``curate/curated.parquet`` when the pipeline curated, else its
  top-level ``traces.parquet``;
* a ``synth curate`` output directory (``curated.parquet``; ``rejects.parquet`` is never
  read);
* a ``synth generate`` run directory (``traces.parquet``): rows with ``status = error`` are
  skipped and counted;
* a ``.parquet`` or ``.jsonl`` file of rows with ``messages`` (or a ``prompt`` string) and
  ``response``.

A rejects file (``rejects.parquet``, or rows carrying ``drop_reason``) is refused. Every
problem with the rows is an :class:`~synth.errors.InputError` naming the file, the line
(1-based row number for parquet) and the field, and nothing is written.

Each row becomes one conversation: the request's messages, then one assistant message whose
text is the teacher's answer, with the reasoning kept as
``<think>\\n{reasoning}\\n</think>\\n\\n{response}`` or dropped
(:func:`synth.train.data.target_text`, the format ``synth train`` learns). ``system``, when
given, is put first as a system message in every conversation that has none.

Formats (``out`` holds, besides the files below, ``README.md``, the source's dataset card
with its Hugging Face header pointed at the exported files and an "Export" section, and
``export.json``, the summary):

``hf``
    A ``datasets`` ``DatasetDict`` saved with ``save_to_disk``: ``dataset_dict.json``,
    ``train/`` and, with a split, ``test/``. Columns: ``messages`` (list of ``{role,
    content}``), ``prompt_id``, ``id`` and, where the source has them, the provenance columns
    of :data:`PROVENANCE_COLUMNS`. ``datasets.load_from_disk(out)`` reads it back.
``chat-jsonl``
    ``train.jsonl`` (and ``test.jsonl``): one ``{"messages": [...]}`` object a line, what
    TRL's ``SFTTrainer`` (conversational datasets) and axolotl (``type: chat_template``,
    ``field_messages: messages``) read.
``openai-finetune``
    ``train.jsonl`` (and ``test.jsonl``, the validation file) in OpenAI's fine-tuning chat
    format, checked as OpenAI checks uploads: roles system / user / assistant only, string
    contents that are not empty, at least one assistant message, no keys but ``role``,
    ``content`` and ``weight``. Assistant turns that were part of the request (few-shot
    examples) get ``"weight": 0``, so that, as in ``synth train``, only the teacher's answer
    is learnt (OpenAI trains on every assistant message otherwise). An example over
    ``max_tokens_per_example`` (65,536: the training context of current models) is skipped
    and counted, never truncated. Tokens are counted as OpenAI's cookbook counts chat
    messages, with ``tiktoken``'s ``o200k_base`` when it is installed and its encoding can be
    loaded, else with synth's ~4-characters-a-token estimate; ``summary["token_counter"]``
    says which. Fewer than 10 training examples (OpenAI's minimum) is a warning.

Reasoning: ``reasoning=None`` (the default) keeps it for ``hf`` and ``chat-jsonl`` (a
student distilled from a reasoning teacher should learn to think first) and drops it for
``openai-finetune``: OpenAI's supervised fine-tuning has no reasoning field, and
``<think>`` text in ``content`` would teach the tuned model to print its thinking in every
answer. ``reasoning="keep"`` there is allowed, with a warning.

Split (``split=0.9``): a prompt goes to ``train`` when ``sha256(f"{seed}:{prompt_id}")``,
read as a number in [0, 1), is below ``split``, else to ``test``; a split that leaves either
side empty (a handful of prompts) is refused. All samples of one prompt land on the same side, so the test split never holds a prompt the student was trained on,
and a prompt's side depends only on its id and the seed: re-exporting a grown dataset never
moves a test prompt into train. Rows without a ``prompt_id`` are grouped by a hash of their
messages (:func:`synth.records.messages_hash`).

Writing: everything is made in a staging folder inside ``out`` and moved into place at the
end (:func:`synth.io.staging_dir`, :func:`synth.io.commit_staged`); files a previous export
into ``out`` listed in its ``export.json`` and this one does not write (``test.jsonl`` after
an export without a split) are removed. ``out`` may not be the source directory, nor the
folder the source file lies in.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from synth.errors import ConfigError, InputError

__all__ = ["FORMATS", "PROVENANCE_COLUMNS", "OPENAI_MAX_TOKENS", "OPENAI_MIN_EXAMPLES",
           "ExportResult", "export_run", "split_side"]

log = logging.getLogger(__name__)

FORMATS = ("hf", "chat-jsonl", "openai-finetune")
#: Trace columns the ``hf`` format carries next to ``messages``, ``prompt_id`` and ``id``
#: (each only when the source has it).
PROVENANCE_COLUMNS = ("sample_index", "provider", "model", "model_version", "finish_reason",
                      "template_id", "template_hash", "intent", "licence_rule",
                      "licence_decision", "licence_entries", "terms_versions")
#: Tokens per training example OpenAI accepts for current fine-tunable models.
OPENAI_MAX_TOKENS = 65_536
#: OpenAI refuses a training file with fewer examples.
OPENAI_MIN_EXAMPLES = 10

_ROLES = ("system", "user", "assistant")
_EXPECTED = ("give a pipeline run directory, a `synth curate` output directory "
             "(curated.parquet), a `synth generate` run directory (traces.parquet), or a "
             ".parquet / .jsonl file of rows with messages and response")
#: Everything an export may write into ``out``: only these are ever removed as stale.
_OUTPUT_NAMES = {"train.jsonl", "test.jsonl", "train", "test", "dataset_dict.json",
                 "README.md", "export.json"}
_READ_COLUMNS = ("id", "prompt_id", "messages", "prompt", "response", "reasoning", "status",
                 "error") + PROVENANCE_COLUMNS


@dataclass
class ExportResult:
    """What :func:`export_run` wrote."""

    out: Path
    paths: list[Path]                                   # every file / folder written in out
    rows: dict[str, int]                                # examples per split
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason
    summary: dict[str, Any] = field(default_factory=dict)  # also written as export.json

    @property
    def warnings(self) -> list[str]:
        return list(self.summary.get("warnings", []))


# ------------------------------------------------------------------------ the source

@dataclass
class _Source:
    data: Path        # the file read
    kind: str         # pipeline-curated | pipeline-traces | curated | traces | file
    card: Path | None


def _locate(source: Path) -> _Source:
    if not source.exists():
        raise InputError(f"no such file or directory; {_EXPECTED}", path=str(source))
    if source.is_dir():
        candidates = [(source / "curate" / "curated.parquet", "pipeline-curated"),
                      (source / "curated.parquet", "curated"),
                      (source / "traces.parquet", "traces")]
        for data, kind in candidates:
            if data.is_file():
                if kind == "traces" and (source / "curate").is_dir():
                    kind = "pipeline-traces"
                card = data.parent / "README.md"
                if not card.is_file():  # a pipeline's curate/ may have none: the run's
                    card = source / "README.md"
                return _Source(data, kind, card if card.is_file() else None)
        if (source / "rejects.parquet").is_file():
            raise InputError("holds only rejects.parquet, the rows curation rejected: export "
                             "curated.parquet instead", path=str(source))
        raise InputError(f"no curate/curated.parquet, curated.parquet or traces.parquet "
                         f"here; {_EXPECTED}", path=str(source))
    if source.name == "rejects.parquet":
        raise InputError("this is the rows curation rejected, which never make a dataset: "
                         "export curated.parquet (or its directory) instead", path=str(source))
    if source.suffix not in (".parquet", ".jsonl"):
        raise InputError(f"not a .parquet or .jsonl file; {_EXPECTED}", path=str(source))
    card = source.parent / "README.md"
    kind = {"curated.parquet": "curated", "traces.parquet": "traces"}.get(source.name, "file")
    return _Source(source, kind, card if card.is_file() else None)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        names = schema.names
        if "drop_reason" in names:
            raise InputError("these rows carry drop_reason: they are curation rejects, which "
                             "never make a dataset", path=str(path), field="drop_reason")
        table = pq.read_table(path, columns=[c for c in _READ_COLUMNS if c in names])
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - arrow raises several types for bad files
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot read rows: {first}; {_EXPECTED}", path=str(path)) from None
    if "messages" not in names and "prompt" not in names:
        raise InputError("missing column: rows need messages (a list of {role, content}) "
                         "or a prompt string", path=str(path), field="messages")
    if "response" not in names:
        raise InputError("missing column: rows need the teacher's answer", path=str(path),
                         field="response")
    rows = table.to_pylist()
    for i, r in enumerate(rows, 1):
        r["_line"] = i
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from synth.inputs import iter_jsonl

    rows = []
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", path=str(path), line=n)
        if "drop_reason" in obj:
            raise InputError("this row carries drop_reason: it is a curation reject, "
                             "which never makes a dataset", path=str(path), line=n,
                             field="drop_reason")
        obj["_line"] = n
        rows.append(obj)
    return rows


def _conversation(r: dict[str, Any], path: Path, *, reasoning: str,
                  system: str | None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(the conversation: the row's messages, ``system`` first where it has none, then the
    assistant answer; the row's own messages, which name its prompt)."""
    from synth.train.data import target_text

    line = r["_line"]

    def bad(msg: str, fld: str) -> InputError:
        return InputError(msg, path=str(path), line=line, field=fld)

    messages = r.get("messages")
    if messages is None and isinstance(r.get("prompt"), str):
        messages = [{"role": "user", "content": r["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise bad("needs a non-empty list of chat messages (or a prompt string)", "messages")
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad("each message must be an object with role and content",
                      f"messages[{j}]")
        if m.get("role") not in _ROLES:
            raise bad(f"role {m.get('role')!r} is not one of system, user, assistant",
                      f"messages[{j}].role")
        if not isinstance(m.get("content"), str):
            raise bad("content must be a string", f"messages[{j}].content")
        out.append({"role": m["role"], "content": m["content"]})
    response, thought = r.get("response"), r.get("reasoning")
    if response is not None and not isinstance(response, str):
        raise bad("must be a string", "response")
    if response is None or not response.strip():
        raise bad("this row has no response (status ok but no answer text): curate it out "
                  "(`synth curate`) or remove the row", "response")
    if thought is not None and not isinstance(thought, str):
        raise bad("must be a string or null", "reasoning")
    request = list(out)
    if system is not None and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": system})
    out.append({"role": "assistant", "content": target_text(response, thought, reasoning)})
    return out, request


# ------------------------------------------------------------------------ split

def split_side(prompt_id: str, split: float, seed: int = 0) -> str:
    """``train`` or ``test`` for a prompt: see the module docstring."""
    h = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return "train" if u < split else "test"


# ------------------------------------------------------------------------ OpenAI

def _token_counter() -> tuple[Callable[[list[dict[str, Any]]], int], str]:
    """(count, name): tiktoken's o200k_base when it loads, else synth's estimate."""
    try:
        import tiktoken

        enc = tiktoken.get_encoding("o200k_base")
    except Exception as e:  # noqa: BLE001 - not installed, or its encoding file not cached
        from synth.teachers.base import estimate_tokens

        why = "not installed" if isinstance(e, ImportError) else "o200k_base not loadable"
        return estimate_tokens, f"estimate (~4 characters a token; tiktoken {why})"

    def count(messages: list[dict[str, Any]]) -> int:
        # OpenAI cookbook (num_tokens_from_messages): 3 tokens of framing per message,
        # the tokens of every string value, 3 to prime the reply.
        n = 3
        for m in messages:
            n += 3 + sum(len(enc.encode(v, disallowed_special=()))
                         for v in m.values() if isinstance(v, str))
        return n

    return count, "tiktoken o200k_base"


def _openai_messages(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Earlier assistant turns (part of the prompt) get weight 0: only the answer is learnt."""
    last = len(messages) - 1
    return [{**m, "weight": 0} if m["role"] == "assistant" and i < last else m
            for i, m in enumerate(messages)]


def _openai_check(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's format checks on one example; the first problem, or None."""
    if not any(m.get("role") == "assistant" for m in messages):
        return "no assistant message"
    for j, m in enumerate(messages):
        unknown = sorted(set(m) - {"role", "content", "weight"})
        if unknown:
            return f"messages[{j}]: unknown keys {unknown}"
        if m.get("role") not in _ROLES:
            return f"messages[{j}].role: {m.get('role')!r} is not system, user or assistant"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"messages[{j}].content: OpenAI refuses empty content"
        if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
            return f"messages[{j}].weight: only assistant messages, 0 or 1"
    return None


# ------------------------------------------------------------------------ writing

def _jsonl(examples: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in examples)


def _arrow_table(rows: list[dict[str, Any]], columns: list[str], path: Path):
    import pyarrow as pa

    from synth.records import MESSAGE_TYPE, TRACE_SCHEMA

    types = {"messages": pa.list_(MESSAGE_TYPE), "prompt_id": pa.string(), "id": pa.string()}
    arrays, fields = [], []
    for c in columns:
        t = types.get(c) or TRACE_SCHEMA.field(c).type
        try:
            arrays.append(pa.array([r.get(c) for r in rows], t))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InputError(f"values do not fit {t}: {str(e).splitlines()[0]}",
                             path=str(path), field=c) from None
        fields.append(pa.field(c, t))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _write_hf(stage: Path, splits: dict[str, list[dict[str, Any]]], columns: list[str],
              path: Path) -> list[str]:
    import datasets
    from datasets.table import InMemoryTable

    dd = datasets.DatasetDict({
        name: datasets.Dataset(InMemoryTable(_arrow_table(rows, columns, path)),
                               split=datasets.NamedSplit(name))
        for name, rows in splits.items()})
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # the CLI prints its own summary
    try:
        dd.save_to_disk(str(stage))
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    return ["dataset_dict.json", *splits]


def _data_files(fmt: str, splits: list[str]) -> list[dict[str, str]]:
    if fmt == "hf":
        return [{"split": s, "path": f"{s}/*.arrow"} for s in splits]
    return [{"split": s, "path": f"{s}.jsonl"} for s in splits]


def _card(src: _Source, fmt: str, summary: dict[str, Any]) -> str | None:
    """The source's card, its header pointed at the exported files, plus an Export
    section; None when the source has no card."""
    import yaml

    if src.card is None:
        return None
    try:
        text = src.card.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the dataset card: {e}", path=str(src.card)) from None
    total = sum(summary["rows"].values())
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        head, body = text[4:].split("\n---\n", 1)
        try:
            meta = yaml.safe_load(head)
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict):
            from synth.dataset.card import _size_category

            meta["configs"] = [{"config_name": "default",
                                "data_files": _data_files(fmt, list(summary["rows"]))}]
            meta["size_categories"] = [_size_category(total)]
            text = "---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n" + body
    rows = ", ".join(f"{k} {v:,}" for k, v in summary["rows"].items())
    skipped = ", ".join(f"{k} {v:,}" for k, v in summary["skipped"].items()) or "none"
    lines = ["", "## Export", "",
             f"Exported with `synth export --format {fmt}` from `{summary['data_file']}`: "
             f"{rows} examples (rows left out: {skipped}). Each example is the request's "
             "messages and the teacher's answer as the last assistant message; reasoning "
             f"**{summary['reasoning']}**"
             + (" (as `<think>...</think>` before the answer)."
                if summary["reasoning"] == "keep" else ".")]
    if summary.get("split") is not None:
        lines += ["", f"Split by prompt: `{summary['split']}` of prompts to train (hash of "
                  f"prompt_id, seed {summary['seed']}); no prompt is on both sides."]
    if fmt == "openai-finetune":
        lines += ["", f"Tokens counted with {summary['token_counter']}; examples over "
                  f"{summary['max_tokens_per_example']:,} tokens were skipped, not "
                  "truncated."]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _stale(out: Path, written: list[str]) -> list[Path]:
    """Outputs of a previous export into ``out`` that this one does not replace."""
    try:
        before = orjson.loads((out / "export.json").read_bytes()).get("files", [])
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return []
    return [out / n for n in before
            if isinstance(n, str) and n in _OUTPUT_NAMES and n not in written]


# ------------------------------------------------------------------------ the export

def export_run(source: str | Path, *, format: str, out: str | Path, split: float | None = None,
               seed: int = 0, reasoning: str | None = None, system: str | None = None,
               max_tokens_per_example: int = OPENAI_MAX_TOKENS) -> ExportResult:
    """Write the rows of ``source`` to ``out`` in ``format``; see the module docstring.

    Checked in this order, nothing written unless all pass: the options
    (:class:`~synth.errors.ConfigError`), ``out`` (a usable directory, not the source's),
    ``datasets`` for ``hf``, then the source and every row (:class:`InputError`)."""
    from synth import __version__
    from synth.deps import require
    from synth.io import (
        check_not_input,
        check_out_dir,
        commit_staged,
        make_out_dir,
        staging_dir,
        write_atomic,
    )
    from synth.records import messages_hash

    if format not in FORMATS:
        raise ConfigError(f"--format {format}: must be one of {', '.join(FORMATS)}")
    if reasoning is None:
        reasoning = "drop" if format == "openai-finetune" else "keep"
    if reasoning not in ("keep", "drop"):
        raise ConfigError(f"--reasoning {reasoning}: must be keep or drop")
    if split is not None and (isinstance(split, bool) or not 0 < split < 1):
        raise ConfigError(f"--split {split}: must be a fraction between 0 and 1 (the share "
                          "of prompts that go to train, e.g. 0.9)")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        raise ConfigError("--system: must be non-empty text")
    if max_tokens_per_example < 1:
        raise ConfigError(f"max_tokens_per_example {max_tokens_per_example}: must be "
                          "positive")
    out = check_out_dir(out)
    source = Path(source)
    src = _locate(source)
    check_not_input(out, [source, src.data], why="the export would overwrite or mix with "
                    "the rows and card it reads")
    if format == "hf":
        require([("datasets", "datasets")], what="`synth export --format hf`",
                install="pip install datasets")

    raw = _read_jsonl(src.data) if src.data.suffix == ".jsonl" else _read_parquet(src.data)
    skipped: dict[str, int] = {}
    warnings: list[str] = []
    count, counter_name = _token_counter() if format == "openai-finetune" else (None, None)
    kept: list[dict[str, Any]] = []
    tokens: list[int] = []
    for r in raw:
        status = r.get("status") or "ok"
        if status != "ok":
            skipped[f"status={status}"] = skipped.get(f"status={status}", 0) + 1
            continue
        messages, request = _conversation(r, src.data, reasoning=reasoning, system=system)
        if format == "openai-finetune":
            messages = _openai_messages(messages)
            problem = _openai_check(messages)
            if problem:
                raise InputError(f"not a valid OpenAI fine-tuning example: {problem}",
                                 path=str(src.data), line=r["_line"], field="messages")
            n = count(messages)
            if n > max_tokens_per_example:
                key = f"over {max_tokens_per_example} tokens"
                skipped[key] = skipped.get(key, 0) + 1
                continue
            tokens.append(n)
        pid = r.get("prompt_id")
        pid = str(pid) if pid is not None else messages_hash(request)
        kept.append({**r, "messages": messages, "prompt_id": pid,
                     "id": str(r["id"]) if r.get("id") is not None else f"{pid}:{r['_line']}"})
    if not kept:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items())
        raise InputError("no rows to export" + (f" (all {len(raw)} were skipped: {why})"
                                                if skipped else ""), path=str(src.data))

    if split is None:
        sides = {"train": kept}
        examples_tokens = {"train": tokens}
    else:
        sides = {"train": [], "test": []}
        examples_tokens = {"train": [], "test": []}
        for i, r in enumerate(kept):
            side = split_side(r["prompt_id"], split, seed)
            sides[side].append(r)
            if tokens:
                examples_tokens[side].append(tokens[i])
        for empty, full in (("train", "test"), ("test", "train")):
            if not sides[empty]:
                n = len({r["prompt_id"] for r in kept})
                raise ConfigError(f"--split {split}: all {n} prompts ({len(kept)} rows) fell "
                                  f"in {full}, none in {empty}; use more prompts, another "
                                  "--split or another --seed, or no --split")
    rows = {k: len(v) for k, v in sides.items()}
    if format == "openai-finetune" and rows["train"] < OPENAI_MIN_EXAMPLES:
        warnings.append(f"train has {rows['train']} examples: OpenAI fine-tuning needs at "
                        f"least {OPENAI_MIN_EXAMPLES}")
    if format == "openai-finetune" and reasoning == "keep" and any(
            (r.get("reasoning") or "").strip() for r in kept):
        warnings.append("reasoning kept in the assistant content as <think>...</think>: the "
                        "tuned model will learn to print its thinking in its answers")
    if src.card is None:
        warnings.append("the source has no README.md dataset card: the export has none "
                        "(its licence and provenance are not recorded beside it)")

    summary: dict[str, Any] = {
        "synth_version": __version__, "format": format, "source": str(source),
        "data_file": str(src.data), "source_kind": src.kind, "rows": rows,
        "prompts": {k: len({r["prompt_id"] for r in v}) for k, v in sides.items()},
        "skipped": skipped, "split": split, "seed": seed if split is not None else None,
        "reasoning": reasoning, "system": system,
        "card": str(src.card) if src.card else None,
    }
    if format == "openai-finetune":
        summary.update(token_counter=counter_name,
                       max_tokens_per_example=max_tokens_per_example,
                       tokens={k: {"total": sum(v), "max": max(v, default=0)}
                               for k, v in examples_tokens.items()})
    summary["warnings"] = warnings

    card = _card(src, format, summary)
    columns = ["messages", "prompt_id", "id"] + [
        c for c in PROVENANCE_COLUMNS if any(c in r for r in raw)]
    created = not out.exists()
    make_out_dir(out)
    try:
        with staging_dir(out) as stage:
            if format == "hf":
                names = _write_hf(stage, sides, columns, src.data)
            else:
                names = []
                for name, side_rows in sides.items():
                    write_atomic(stage / f"{name}.jsonl",
                                 _jsonl([{"messages": r["messages"]} for r in side_rows]))
                    names.append(f"{name}.jsonl")
            if card is not None:
                write_atomic(stage / "README.md", card)
                names.append("README.md")
            names.append("export.json")
            summary["files"] = names
            stale = _stale(out, names)
            write_atomic(stage / "export.json",
                         orjson.dumps(summary, option=orjson.OPT_INDENT_2))
            commit_staged(stage, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    for p in stale:
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for w in warnings:
        log.warning("synth export: %s", w)
    return ExportResult(out=out, paths=[out / n for n in names], rows=rows, skipped=skipped,
                        summary=summary)
