"""Rows: the one place that knows where a path's rows are, reads and checks them, turns a row
into a conversation and a target, and decides which source prompts are held out.

Every command that reads trace rows (``synth train``, ``eval``, ``export``, ``curate``,
``merge`` and the stages of ``synth run``) goes through this module, so "which rows does this
path mean" has one answer.

**Where the rows are** (:func:`locate`), for a path given on the command line:

* a ``synth run`` pipeline directory (it has ``manifest.json``): the rows the student trains
  on, ``curate/curated.parquet`` when the pipeline curates, else ``split/train.parquet``
  when it holds prompts out, else its ``traces.parquet``; which one is decided by the
  ``pipeline.yaml`` it ran and by its manifest (a stage not finished is an error), never by
  leftover files. For ``synth eval`` (``heldout=True``)
  it means the held-out rows, ``split/heldout.parquet``;
* a ``synth curate`` output directory: ``curated.parquet`` (``rejects.parquet`` is never
  read as rows to learn from);
* a ``synth generate`` run directory: ``traces.parquet``;
* a ``.parquet`` or ``.jsonl`` file of rows.

A directory holding both ``traces.parquet`` and ``curated.parquet`` is refused as ambiguous,
and a rejects file always (the rows curation dropped are nobody's input).

**Reading** (:func:`read_rows`): parquet through pyarrow, JSONL through
:func:`synth.inputs.iter_jsonl`; every problem is an :class:`~synth.errors.InputError` naming
the file, the line (the 1-based row number for parquet) and the field. For training and
export (``purpose="train"``) rows with ``status`` other than ``ok`` are skipped and counted,
and rows curation or a recipe dropped (a ``drop_reason``) or held out for evaluation (``split
= heldout``) are refused. For evaluation (``purpose="eval"``) every row is kept: a held-out
prompt the teacher failed on is still a prompt both models must answer.

**A row's conversation and target** (:func:`conversation`): the prompt is the row's
``messages`` (or its ``prompt`` string as one user message); the target is its ``response``
(with the teacher's reasoning before it as ``<think>…</think>`` when kept, see
:func:`target_text`). A row with no ``response`` whose messages end with an assistant turn
(synth's own ``chat-jsonl`` export, TRL and axolotl conversational data) trains on that last
turn, the earlier turns being its prompt. Only the last assistant turn is a target: earlier
assistant turns are the conversation so far (few-shot examples, another model's turns), which
``synth export --format openai-finetune`` marks ``weight: 0`` for the same reason. TRL's
``assistant_only_loss`` trains every assistant turn; to do that with synth, give one row per
turn.

**The held-out split** (:func:`source_key`, :func:`is_heldout`, :func:`split_rows`): held-out
data is chosen by *source prompt*, the prompt a row descends from, so one prompt's samples,
its answers from several teachers (``route: all`` renames them ``id@teacher``) and its
Evol-Instruct evolutions all land on the same side. The key is the row's
``metadata.source_id`` when set (the recipes set it: the input's id for a templated prompt,
the root instruction for every evolution, the prompt before ``@teacher``; a user may set it to
group paraphrases), else its ``prompt_id``, else a hash of its prompt messages. A Self-Instruct
task the teacher proposed is a source of its own: it is kept only when its ROUGE-L against
every task in the pool, seeds included, is at most 0.7, so it is no copy of a seed. A key is
held out when ``sha256("synth-split:{seed}:{key}")``, read as a number in [0, 1), is below the
held-out share: ``synth run`` (``eval.holdout``), ``synth train --eval-split`` and ``synth
export --split`` (whose ``--split`` is the share kept for train) all call :func:`is_heldout`,
so at the same share and seed they hold out the same prompts, and a prompt's side never
changes as a dataset grows. ``synth run`` and ``synth export`` use :data:`HELDOUT_SEED`;
``synth train --eval-split`` (a validation curve, not the evaluation) uses
:data:`VALIDATION_SEED`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from synth.errors import InputError

__all__ = [
    "EXPECTED",
    "PIPELINE_MANIFEST",
    "RowsPath",
    "Rows",
    "Conversation",
    "THINK_FORMAT",
    "locate",
    "read_rows",
    "read_table",
    "check_table",
    "conversation",
    "target_text",
    "row_metadata",
    "source_key",
    "HELDOUT_SEED",
    "VALIDATION_SEED",
    "split_unit",
    "is_heldout",
    "split_rows",
]

#: What a command that reads rows accepts, for its error messages.
EXPECTED = ("give a `synth run` pipeline directory, a `synth curate` output directory "
            "(curated.parquet), a `synth generate` run directory (traces.parquet), or a "
            ".parquet / .jsonl file of rows with messages (or prompt) and response")
#: The file that marks a directory as a ``synth run`` pipeline run.
PIPELINE_MANIFEST = "manifest.json"
#: How ``reasoning="keep"`` puts the teacher's chain of thought before its answer.
THINK_FORMAT = "<think>\n{reasoning}\n</think>\n\n{response}"

_ROLES = ("system", "user", "assistant")


# ------------------------------------------------------------------------------ where

@dataclass(frozen=True)
class RowsPath:
    """Where a path's rows are. ``kind``: ``pipeline-curated`` | ``pipeline-train`` |
    ``pipeline-traces`` | ``pipeline-heldout`` | ``curated`` | ``traces`` | ``file``."""

    given: Path
    file: Path
    kind: str
    card: Path | None = None           # the dataset card (README.md) that goes with them
    curation: Path | None = None       # curation.json beside curated rows, if any

    @property
    def pipeline(self) -> Path | None:
        """The pipeline run directory, when the rows are one's."""
        return self.given if self.kind.startswith("pipeline-") else None


def _card(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def _is_pipeline(path: Path) -> bool:
    """A ``synth run`` directory: its manifest, or the stage folders beside traces.parquet."""
    return (path / PIPELINE_MANIFEST).is_file() or (path / "traces.parquet").is_file() and \
        ((path / "curate").is_dir() or (path / "split").is_dir())


_TRAINING_ROWS = (("curate/curated.parquet", "pipeline-curated"),
                  ("split/train.parquet", "pipeline-train"),
                  ("traces.parquet", "pipeline-traces"))


def _pipeline_training_rows(path: Path) -> tuple[tuple[str, str], ...]:
    """Where a pipeline run's training rows are, decided by its pipeline's sections (the
    ``pipeline.yaml`` it ran) and its manifest, not by which files exist: files an earlier
    version of the pipeline left behind, or a stage interrupted before the split, must never
    hand held-out prompts to training."""
    from synth.yamlfile import parse_yaml  # aliases checked: a run dir may come from anyone

    try:
        spec, _ = parse_yaml((path / "pipeline.yaml").read_text(encoding="utf-8"),
                             path=str(path / "pipeline.yaml"))
        stages = orjson.loads((path / PIPELINE_MANIFEST).read_bytes())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return _TRAINING_ROWS  # not written by this version of synth run: by the files
    if not isinstance(spec, dict) or not isinstance(stages, dict):
        return _TRAINING_ROWS

    def done(key: str) -> dict:
        e = stages.get(key)
        if not isinstance(e, dict) or e.get("status") != "done":
            raise InputError(f"this pipeline run's {key} stage has not finished (manifest.json):"
                             f" run `synth run` on it again before reading its rows",
                             path=str(path))
        return e

    curates = spec.get("curate") not in (None, False)
    if spec.get("eval") is not None:
        split = done("split")
        if curates:
            cur = done("curate")
            if float(cur.get("finished_at") or 0) < float(split.get("finished_at") or 0):
                raise InputError("this pipeline run's curated rows predate its split (a curate"
                                 " stage that has not run since): run `synth run` on it again",
                                 path=str(path))
            return _TRAINING_ROWS[:1]
        return _TRAINING_ROWS[1:2]
    if curates:
        done("curate")
        return _TRAINING_ROWS[:1]
    return _TRAINING_ROWS[2:]


def locate(path: str | Path, *, heldout: bool = False, expected: str = EXPECTED) -> RowsPath:
    """The rows ``path`` means (module docstring). ``heldout``: a pipeline directory means its
    held-out rows (what ``synth eval`` compares the models on). ``expected`` ends the error
    messages (what the command takes)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or directory; {expected}", path=str(path))
    if path.is_dir():
        if _is_pipeline(path):
            run_card = path / "README.md"
            card = _card(run_card)
            if heldout:
                held = path / "split" / "heldout.parquet"
                if not held.is_file():
                    raise InputError("this pipeline run holds no split/heldout.parquet (its "
                                     "pipeline has no eval section, or has not run it yet)",
                                     path=str(path))
                return RowsPath(path, held, "pipeline-heldout", card)
            for rel, kind in _pipeline_training_rows(path):
                if (path / rel).is_file():
                    cur = path / "curate" / "curation.json"
                    # the card beside the rows (curation's), else the run's dataset card
                    card = _card((path / rel).parent / "README.md", run_card)
                    return RowsPath(path, path / rel, kind, card,
                                    cur if kind == "pipeline-curated" and cur.is_file()
                                    else None)
            raise InputError("this pipeline run has no rows yet (no traces.parquet): run it "
                             "first", path=str(path))
        traces, curated = path / "traces.parquet", path / "curated.parquet"
        if traces.is_file() and curated.is_file():
            raise InputError(f"holds both traces.parquet and curated.parquet: pass the one you "
                             f"mean ({traces} or {curated})", path=str(path))
        if curated.is_file():
            cur = path / "curation.json"
            return RowsPath(path, curated, "curated", _card(path / "README.md"),
                            cur if cur.is_file() else None)
        if traces.is_file():
            return RowsPath(path, traces, "traces", _card(path / "README.md"))
        if (path / "rejects.parquet").is_file():
            raise InputError("holds only rejects.parquet, the rows curation dropped: use "
                             "curated.parquet (or its directory)", path=str(path))
        raise InputError(f"neither traces.parquet nor curated.parquet in this directory; "
                         f"{expected}", path=str(path))
    if path.suffix not in (".parquet", ".jsonl"):
        raise InputError(f"not a .parquet or .jsonl file; {expected}", path=str(path))
    cur = path.with_name("curation.json") if path.name == "curated.parquet" else None
    kind = {"curated.parquet": "curated", "traces.parquet": "traces"}.get(path.name, "file")
    return RowsPath(path, path, kind, _card(path.parent / "README.md"),
                    cur if cur is not None and cur.is_file() else None)


# ------------------------------------------------------------------------------ reading

@dataclass
class Rows:
    """Rows read from a path: each a dict with ``_line`` (its 1-based line or row number),
    plus what was left out and why."""

    rows: list[dict[str, Any]]
    where: RowsPath
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.where.file


_REJECTS = ("these rows carry drop_reason: they are curation rejects (rows curation or a "
            "recipe dropped), which never reach training or a dataset")


def _read_parquet(path: Path, columns: tuple[str, ...] | None, *, purpose: str
                  ) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001 - arrow raises several types for bad files
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot read rows: {first}; {EXPECTED}", path=str(path)) from None
    if purpose != "eval" and "split" in names:
        check_table(pq.read_table(path, columns=["split"]), path)
    if purpose != "eval" and "drop_reason" in names:  # a rejects file, whatever its name
        raise InputError(_REJECTS, path=str(path), field="drop_reason")
    if "messages" not in names and "prompt" not in names:
        raise InputError("missing column: rows need messages (a list of {role, content}) or "
                         "a prompt string", path=str(path), field="messages")
    try:
        cols = None if columns is None else [c for c in columns if c in names]
        table = pq.read_table(path, columns=cols)
    except Exception as e:  # noqa: BLE001
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot read rows: {first}; {EXPECTED}", path=str(path)) from None
    rows = table.to_pylist()
    for i, r in enumerate(rows, 1):
        r["_line"] = i
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from synth.inputs import iter_jsonl

    rows = []
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}",
                             path=str(path), line=n)
        obj["_line"] = n
        rows.append(obj)
    return rows


def read_rows(path: str | Path, *, purpose: Literal["train", "eval"] = "train",
              columns: tuple[str, ...] | None = None, action: str = "read") -> Rows:
    """Read the rows ``path`` means; see the module docstring for what each ``purpose``
    keeps. ``columns`` reads only those (parquet). ``action`` completes "no rows to ..." when
    nothing is left. Raises :class:`InputError` naming the file, line and field for rows that
    cannot be used."""
    where = locate(path, heldout=purpose == "eval")
    file = where.file
    if file.name == "rejects.parquet":
        raise InputError("this is the rows curation rejected, which never reach training, "
                         "evaluation or a dataset: use curated.parquet (or its directory)",
                         path=str(file))
    if columns is not None:  # what the refusals below and source_key read, always
        columns = tuple(dict.fromkeys(columns + ("status", "split", "drop_reason",
                                                 "prompt_id", "metadata")))
    rows = _read_jsonl(file) if file.suffix == ".jsonl" else \
        _read_parquet(file, columns, purpose=purpose)
    skipped: dict[str, int] = {}
    if purpose == "eval":
        for r in rows:
            if _split_value(r.get("split")) == "train":
                raise InputError("this row is on the training side of a held-out split (split"
                                 " = train): the student learnt from it, so it measures "
                                 "nothing held out. Pass the held-out rows (a pipeline run "
                                 "directory, or its split/heldout.parquet)", path=str(file),
                                 line=r["_line"], field="split")
        return Rows(rows, where, skipped)
    kept = []
    for r in rows:
        if _split_value(r.get("split")) == "heldout":
            raise InputError("this row is held out for evaluation (split = heldout): it is "
                             "for `synth eval`, never for training or export", path=str(file),
                             line=r["_line"], field="split")
        if "drop_reason" in r:  # a key of a rejects file, even where null
            raise InputError(_REJECTS, path=str(file), line=r["_line"], field="drop_reason")
        status = r.get("status") or "ok"
        if status != "ok":
            skipped[f"status={status}"] = skipped.get(f"status={status}", 0) + 1
            continue
        kept.append(r)
    if not kept:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items())
        raise InputError(f"no rows to {action}" + (f" (all {len(rows)} were skipped: {why})"
                                                   if skipped else ""), path=str(file))
    return Rows(kept, where, skipped)


def _split_value(v: Any) -> str | None:
    """A row's ``split`` as compared: text, stripped, lower case (``"Heldout "`` is held
    out too)."""
    return None if v is None else str(v).strip().lower()


def check_table(table: Any, file: Path) -> None:
    """The refusals of ``purpose="train"`` on a whole Arrow table (for columnar readers:
    curation, merge): rows held out for evaluation, and rows curation or a recipe dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "split" in table.column_names:
        try:
            col = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(table["split"], pa.string())))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"split must be text (train or heldout), not "
                             f"{table.schema.field('split').type}", path=str(file),
                             field="split") from None
        held = pc.equal(col, "heldout")
        if pc.any(held).as_py():
            line = int(pc.index(held, True).as_py()) + 1
            raise InputError("this row is held out for evaluation (split = heldout): it is "
                             "for `synth eval`, never for training, curation or a dataset",
                             path=str(file), line=line, field="split")
    if "drop_reason" in table.column_names:
        raise InputError(_REJECTS, path=str(file), field="drop_reason")


def read_table(path: str | Path, *, columns: tuple[str, ...] | None = None) -> tuple[Any, RowsPath]:
    """The rows ``path`` means as an Arrow table (for columnar consumers), with the
    location rules and refusals of :func:`read_rows` (``purpose="train"``); failed rows are
    kept (curation's ``drop_errors`` step counts them)."""
    import pyarrow as pa

    where = locate(path)
    file = where.file
    if file.name == "rejects.parquet":
        raise InputError("this is the rows curation rejected, which never reach training or a "
                         "dataset: use curated.parquet (or its directory)", path=str(file))
    if file.suffix == ".jsonl":
        rows = _read_jsonl(file)
        for r in rows:
            r.pop("_line", None)
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InputError(f"the lines do not make one table: {str(e).splitlines()[0]}",
                             path=str(file)) from None
    else:
        import pyarrow.parquet as pq

        try:
            # ParquetFile, not pq.read_table: the same table, without read_table's dataset
            # layer, whose import pulls in pandas (~0.3 s of a `synth curate`)
            with pq.ParquetFile(file) as pf:
                names = pf.schema_arrow.names
                table = pf.read(columns=None if columns is None else
                                [c for c in columns if c in names])
        except Exception as e:  # noqa: BLE001 - arrow raises several types for bad files
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise InputError(f"cannot read rows: {first}; {EXPECTED}", path=str(file)) from None
    check_table(table, file)
    return table, where


# ------------------------------------------------------------------------------ one row

@dataclass(frozen=True)
class Conversation:
    """A row as a chat: ``prompt`` (the messages before the answer) and ``target`` (the
    assistant text to learn; ``None`` when the row has none)."""

    prompt: list[dict[str, str]]
    target: str | None
    from_messages: bool = False        # the target is the messages' trailing assistant turn


def target_text(response: str | None, reasoning: str | None, mode: str) -> str:
    """The assistant text a student learns from an answer and its reasoning: with
    ``mode="keep"`` and reasoning present, :data:`THINK_FORMAT` (the format of DeepSeek-R1 and
    Qwen3 distillations), else the answer alone."""
    response = response or ""
    if mode == "keep" and reasoning and reasoning.strip():
        return THINK_FORMAT.format(reasoning=reasoning.strip(), response=response.strip())
    return response


def conversation(row: dict[str, Any], *, path: str | Path, reasoning: str = "keep"
                 ) -> Conversation:
    """The row's prompt messages and target text (module docstring); an
    :class:`InputError` naming the line and field when the row is malformed."""
    line = row.get("_line")

    def bad(msg: str, fld: str) -> InputError:
        return InputError(msg, path=str(path), line=line, field=fld)

    messages = row.get("messages")
    if messages is None and isinstance(row.get("prompt"), str):
        messages = [{"role": "user", "content": row["prompt"]}]
    if not isinstance(messages, list) or not messages:
        raise bad("needs a non-empty list of chat messages (or a prompt string)", "messages")
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad("each message must be an object with role and content", f"messages[{j}]")
        if m.get("role") not in _ROLES:
            raise bad(f"role {m.get('role')!r} is not one of system, user, assistant",
                      f"messages[{j}].role")
        if not isinstance(m.get("content"), str):
            raise bad("content must be a string", f"messages[{j}].content")
        out.append({"role": m["role"], "content": m["content"]})
    response, thought = row.get("response"), row.get("reasoning")
    if response is not None and not isinstance(response, str):
        raise bad("must be a string", "response")
    if thought is not None and not isinstance(thought, str):
        raise bad("must be a string or null", "reasoning")
    if response is None and out[-1]["role"] == "assistant" and len(out) > 1:
        return Conversation(out[:-1], target_text(out[-1]["content"], thought, reasoning),
                            from_messages=True)
    if response is None:
        return Conversation(out, None)
    return Conversation(out, target_text(response, thought, reasoning))


def row_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """A row's ``metadata`` as a dict (trace rows store it as a JSON object string)."""
    m = row.get("metadata")
    if isinstance(m, (str, bytes)):
        try:
            m = orjson.loads(m)
        except orjson.JSONDecodeError:
            return {}
    return m if isinstance(m, dict) else {}


def source_key(row: dict[str, Any]) -> str:
    """The source prompt a row descends from (module docstring): ``metadata.source_id``, else
    ``prompt_id``, else a hash of the prompt messages."""
    sid = row_metadata(row).get("source_id")
    if sid not in (None, ""):
        return str(sid)
    pid = row.get("prompt_id")
    if pid not in (None, ""):
        return str(pid)
    from synth.records import messages_hash

    messages = row.get("messages")
    if messages is None and isinstance(row.get("prompt"), str):
        messages = [{"role": "user", "content": row["prompt"]}]
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict) and \
            row.get("response") is None and messages[-1].get("role") == "assistant":
        messages = messages[:-1]  # the trailing answer is not part of the prompt
    try:
        return messages_hash(messages)
    except TypeError:  # not JSON-able: the caller's row check names the field
        return repr(messages)


# ------------------------------------------------------------------------------ the split

#: The seed of the held-out split of ``synth run`` and (by default) ``synth export --split``.
HELDOUT_SEED = 0
#: The seed of ``synth train --eval-split``'s validation examples: another draw, so that rows
#: a pipeline already split (no key below its share at seed 0) still give some to validate on.
VALIDATION_SEED = 1

def split_unit(key: str, seed: int = HELDOUT_SEED) -> float:
    """A source key's stable position in [0, 1) for the held-out split."""
    h = hashlib.sha256(f"synth-split:{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def is_heldout(key: str, share: float, *, seed: int = HELDOUT_SEED) -> bool:
    """Whether the source prompt ``key`` is held out at this share (module docstring)."""
    return share > 0 and split_unit(key, seed) < share


def split_rows(rows: list[Any], share: float, *, seed: int = HELDOUT_SEED,
               key: Any = source_key
               ) -> tuple[list[Any], list[Any]]:
    """``(train, heldout)``: ``rows`` (or anything ``key`` maps to a source key) divided by
    :func:`is_heldout`, order kept."""
    train, held = [], []
    for r in rows:
        (held if is_heldout(key(r), share, seed=seed) else train).append(r)
    return train, held
