"""Trace rows → files other trainers read: ``synth export RUN --format F --out DIR``.

Source (``source``): the rows :mod:`synth.rows` locates for it, as for ``synth train
--data``:

* a pipeline run directory: the rows its student trains on (``curate/curated.parquet`` when
  the pipeline curated, else its split's ``train.parquet``, else its ``traces.parquet``);
  the held-out split never leaves through an export;
* a ``synth curate`` output directory (``curated.parquet``; ``rejects.parquet`` is never
  read);
* a ``synth generate`` run directory (``traces.parquet``): rows with ``status = error`` are
  skipped and counted;
* a ``.parquet`` or ``.jsonl`` file of rows with ``messages`` (or a ``prompt`` string) and
  ``response``, or with ``messages`` that end with the assistant's answer (a ``chat-jsonl``
  export reads back).

A rejects file (``rejects.parquet``, or rows carrying ``drop_reason``) and held-out rows
are refused. Every problem with the rows is an :class:`~synth.errors.InputError` naming
the file, the line (1-based row number for parquet) and the field, and nothing is written.

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
``gguf``
    Not rows: ``source`` is a trained student (a Llama-architecture model directory) and
    ``out`` the ``.gguf`` file, at ``quant`` f16, q8_0 (default), q4_0 or q4_k_m; written
    by :func:`synth.train.gguf_export.export_gguf`, which says what each quant keeps.

Reasoning: ``reasoning=None`` (the default) keeps it for ``hf`` and ``chat-jsonl`` (a
student distilled from a reasoning teacher should learn to think first) and drops it for
``openai-finetune``: OpenAI's supervised fine-tuning has no reasoning field, and
``<think>`` text in ``content`` would teach the tuned model to print its thinking in every
answer. ``reasoning="keep"`` there is allowed, with a warning.

Split (``split=0.9``, the share of source prompts for ``train``): the one held-out split of
synth (:func:`synth.rows.is_heldout` at ``1 - split``, seed ``seed``), keyed on the source
prompt (:func:`synth.rows.source_key`): every sample, every teacher's answer and every
evolution of a prompt land on one side, so the test split never holds a prompt the student
was trained on. At the same share and seed it holds out the prompts ``synth run`` holds out
(``eval.holdout``), and a prompt's side never changes as the dataset grows. A split that
leaves either side empty (a handful of prompts) is refused.

Writing: ``out`` must be new, empty, or hold exactly an earlier export (its ``export.json``
lists every file it wrote; anything else there, a ``README.md`` of yours or a file put into
its ``train/``, and the export is refused before it reads a row: :func:`synth.io.claim_out_dir`).
Nor may it lie inside another command's output (a ``synth run`` directory, a student), the
source directory, or the folder the source file lies in. Everything is made in a staging
folder inside ``out`` and moved into place at the end (:func:`synth.io.staging_dir`,
:func:`synth.io.commit_staged`); files the earlier export wrote and this one does not
(``test.jsonl`` after an export without a split) are removed.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import orjson

from synth.errors import ConfigError, InputError

if TYPE_CHECKING:
    from synth.train.gguf_export import GGUFResult

__all__ = ["FORMATS", "PROVENANCE_COLUMNS", "OPENAI_MAX_TOKENS", "OPENAI_MIN_EXAMPLES",
           "ExportResult", "export_run", "split_side"]

log = logging.getLogger(__name__)

FORMATS = ("hf", "chat-jsonl", "openai-finetune", "gguf")
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


# ------------------------------------------------------------------------ the rows

def _conversation(r: dict[str, Any], path: Path, *, reasoning: str,
                  system: str | None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(the conversation: the row's prompt messages, ``system`` first where it has none,
    then the assistant answer; the prompt messages alone, which name its prompt)."""
    from synth import rows as R

    conv = R.conversation(r, path=path, reasoning=reasoning)
    if conv.target is None or not conv.target.strip():
        raise InputError("this row has no response (status ok but no answer text): curate it "
                         "out (`synth curate`) or remove the row", path=str(path),
                         line=r.get("_line"), field="response")
    out = list(conv.prompt)
    if system is not None and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": system})
    out.append({"role": "assistant", "content": conv.target})
    return out, conv.prompt


def split_side(key: str, split: float, seed: int = 0) -> str:
    """``train`` or ``test`` for a source prompt at ``--split`` (the share kept for train):
    test when :func:`synth.rows.is_heldout` holds it out at ``1 - split``."""
    from synth import rows as R

    return "test" if R.is_heldout(key, 1 - split, seed=seed) else "train"


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


def _card(src: Any, fmt: str, summary: dict[str, Any]) -> str | None:
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
        from synth.yamlfile import parse_yaml  # aliases checked: a card may come from anyone

        meta, _ = parse_yaml(head, path=str(src.card), first_line=2)  # bad: file:line
        if isinstance(meta, dict):
            from synth.dataset.card import size_category

            meta["configs"] = [{"config_name": "default",
                                "data_files": _data_files(fmt, list(summary["rows"]))}]
            meta["size_categories"] = [size_category(total)]
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
        lines += ["", f"Split by source prompt: `{summary['split']}` of prompts to train "
                  f"(synth's held-out split, seed {summary['seed']}); no prompt, sample, "
                  "teacher's answer or evolution of one is on both sides."]
    if fmt == "openai-finetune":
        lines += ["", f"Tokens counted with {summary['token_counter']}; examples over "
                  f"{summary['max_tokens_per_example']:,} tokens were skipped, not "
                  "truncated."]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _stale(out: Path, written: list[str]) -> list[Path]:
    """Outputs of a previous export into ``out`` that this one does not replace (its
    ``export.json`` lists the files it wrote; ``claim_out_dir`` checked nothing else is
    there)."""
    try:
        before = orjson.loads((out / "export.json").read_bytes()).get("files", [])
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return []
    tops = {n.split("/", 1)[0] for n in before if isinstance(n, str)}
    return [out / n for n in sorted(tops) if n in _OUTPUT_NAMES and n not in written]


# ------------------------------------------------------------------------ the export

def export_run(source: str | Path, *, format: str, out: str | Path, split: float | None = None,
               seed: int = 0, reasoning: str | None = None, system: str | None = None,
               max_tokens_per_example: int = OPENAI_MAX_TOKENS,
               quant: str | None = None) -> ExportResult | GGUFResult:
    """Write the rows of ``source`` to ``out`` in ``format``; see the module docstring.

    Checked in this order, nothing written unless all pass: the options
    (:class:`~synth.errors.ConfigError`), ``out`` (a usable directory, not the source's),
    ``datasets`` for ``hf``, then the source and every row (:class:`InputError`)."""
    from synth.deps import require
    from synth.io import (
        check_not_input,
        check_out_dir,
        claim_out_dir,
        commit_staged,
        exclusive_dir,
        files_below,
        make_out_dir,
        staging_dir,
        write_atomic,
    )
    from synth.records import messages_hash
    from synth.version import __version__

    if format not in FORMATS:
        raise ConfigError(f"--format {format}: must be one of {', '.join(FORMATS)}")
    if format == "gguf":  # a model, not rows: synth.train.gguf_export writes it
        for flag, value in (("--split", split), ("--reasoning", reasoning),
                            ("--system", system)):
            if value is not None:
                raise ConfigError(f"{flag}: applies to row exports, not --format gguf")
        from synth.train.gguf_export import export_gguf

        return export_gguf(source, out, quant=quant)
    if quant is not None:
        raise ConfigError(f"--quant {quant}: only with --format gguf")
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
    from synth import rows as R

    out = check_out_dir(out)
    source = Path(source)
    src = R.locate(source)
    if split is not None and src.kind in ("pipeline-curated", "pipeline-train"):
        # its held-out prompts are already out (split/heldout.parquet); splitting the rest
        # again at another share gives a test side that is a biased slice, or nothing
        raise ConfigError(f"--split {split}: this pipeline run already holds source prompts "
                          "out for `synth eval` (its eval.holdout); its training rows are "
                          "all train. Export them without --split")
    check_not_input(out, [source, src.file], why="the export would overwrite or mix with "
                    "the rows and card it reads")
    claim_out_dir(out, "synth export")  # new, empty or exactly an earlier export
    if format == "hf":
        require([("datasets", "datasets")], what="`synth export --format hf`",
                extra="export")

    got = R.read_rows(source, columns=_READ_COLUMNS, action="export")
    raw = got.rows
    skipped: dict[str, int] = dict(got.skipped)
    warnings: list[str] = []
    count, counter_name = _token_counter() if format == "openai-finetune" else (None, None)
    kept: list[dict[str, Any]] = []
    tokens: list[int] = []
    for r in raw:
        messages, request = _conversation(r, src.file, reasoning=reasoning, system=system)
        if format == "openai-finetune":
            messages = _openai_messages(messages)
            problem = _openai_check(messages)
            if problem:
                raise InputError(f"not a valid OpenAI fine-tuning example: {problem}",
                                 path=str(src.file), line=r["_line"], field="messages")
            n = count(messages)
            if n > max_tokens_per_example:
                key = f"over {max_tokens_per_example} tokens"
                skipped[key] = skipped.get(key, 0) + 1
                continue
            tokens.append(n)
        pid = r.get("prompt_id")
        pid = str(pid) if pid is not None else messages_hash(request)
        kept.append({**r, "messages": messages, "prompt_id": pid, "_source": R.source_key(r),
                     "id": str(r["id"]) if r.get("id") is not None else f"{pid}:{r['_line']}"})
    if not kept:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items())
        raise InputError("no rows to export" + (f" (all {len(raw)} were skipped: {why})"
                                                if skipped else ""), path=str(src.file))

    if split is None:
        sides = {"train": kept}
        examples_tokens = {"train": tokens}
    else:
        sides = {"train": [], "test": []}
        examples_tokens = {"train": [], "test": []}
        for i, r in enumerate(kept):
            side = split_side(r["_source"], split, seed)
            sides[side].append(r)
            if tokens:
                examples_tokens[side].append(tokens[i])
        for empty, full in (("train", "test"), ("test", "train")):
            if not sides[empty]:
                n = len({r["_source"] for r in kept})
                raise ConfigError(f"--split {split}: all {n} source prompts ({len(kept)} rows) fell "
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
        "data_file": str(src.file), "source_kind": src.kind, "rows": rows,
        "prompts": {k: len({r["_source"] for r in v}) for k, v in sides.items()},
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
        # one writer per directory: a curation or run still writing there would mix with it
        with exclusive_dir(out, tidy=True), staging_dir(out) as stage:
            if format == "hf":
                names = _write_hf(stage, sides, columns, src.file)
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
            # every file, so a rerun can tell its own from anything put there since
            summary["files"] = sorted(files_below(stage, names[:-1]) + ["export.json"])
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
