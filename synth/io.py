"""Files synth writes: all or nothing, one writer per directory, output paths checked early,
and never a file synth did not write.

Every output (traces, curated rows, reports, cards, models) goes through :func:`write_atomic`:
a temp file beside the target, fsync, rename. A reader (or a crash) sees the old file or the
new one, never half of one. Errors while writing become :class:`~synth.errors.OutputError`
naming the file, so the CLI prints one line instead of a traceback.

Every command that writes a directory claims it first (:func:`claim_out_dir`, before any
model loads or row is read). The rule, the same for all of them:

- an ``--out`` that is new or empty is used;
- a non-empty one is used only when it holds an earlier output of the *same* command, and
  then only if everything in it is that output's (its :class:`OutputKind` names, and for an
  output that records its ``files``, exactly those): the rerun replaces exactly that output;
  ``synth eval`` may also write beside a trained student (its default), never over a file
  of the student's;
- an ``--out`` inside another command's output folder (a ``synth run`` directory, a
  student, an export) is refused: the owner replaces its folders when it reruns.

Whose a folder is is decided by what its files hold (a marker JSON with its keys, a cache
with its tables), never by a name alone: a ``cache.sqlite`` of yours is not synth's.
``synth run`` checks its own stage folders against the files its manifest recorded
(:func:`synth.pipeline.run.check_stage_folders`).

A refusal is one :class:`~synth.errors.ConfigError` line and nothing is touched.
A command holds its directory with :func:`exclusive_dir` while it writes; what it runs
inside that directory (``synth run``'s stages, curation's judge in ``out/judge/...``, the
run's own dataset merge) is its own doing: not refused, and the lock is not taken twice.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from synth.errors import ConfigError, OutputError

if TYPE_CHECKING:  # pyarrow is imported only when a table is written
    import pyarrow as pa

__all__ = ["write_atomic", "atomic_path", "check_out_dir", "check_not_input", "make_out_dir", "exclusive_dir",
           "staging_dir", "commit_staged", "OutputKind", "OUTPUT_KINDS", "claim_out_dir",
           "outputs_in", "files_below"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` to write to; when the block ends without an error it is
    fsynced and renamed onto ``path`` (readers see all or nothing), and it is removed
    whatever happens. An OSError becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: "bytes | str | pa.Table") -> None:
    """Write ``data`` (bytes, text, or an Arrow table as zstd parquet) to ``path`` through a
    temp file beside it, fsync, then rename: readers see all or nothing."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            data = data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            tmp.write_bytes(data)
        else:
            import pyarrow.parquet as pq

            pq.write_table(data, tmp, compression="zstd")


def check_out_dir(out: str | Path, *, option: str = "--out") -> Path:
    """``out`` as a directory synth may write into: it is one already, or it does not exist
    and its nearest existing parent is a directory. Checked before any model is loaded or
    any row is read, so a typo never costs a run."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out}: is an existing file, not a directory (choose a "
                          "directory; synth writes several files into it)")
    parent = out
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {out}: {parent} is a file, so the directory cannot be "
                          "made (choose another path)")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out}: {parent} is not writable (choose another path)")
    return out


def check_not_input(out: Path, inputs: "list[str | Path]", *, why: str) -> None:
    """Refuse an ``out`` that is one of the ``inputs`` or the folder an input file lies in:
    writing there would overwrite what is being read. ``why`` says what would be lost."""
    target = Path(out).resolve()
    for given in inputs:
        p = Path(given).resolve()
        if target == (p if p.is_dir() else p.parent):
            raise ConfigError(f"--out {out}: is where input {given} lives; {why} (choose "
                              "another directory)")


def make_out_dir(out: Path) -> Path:
    """Create ``out`` (after :func:`check_out_dir`), as an :class:`OutputError` on failure."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the directory: {e.strerror or e}",
                          path=str(out)) from None
    return out


@contextlib.contextmanager
def exclusive_dir(out: Path, *, option: str = "--out", tidy: bool = False) -> Iterator[None]:
    """One synth process per output directory: two runs would each redo (and pay for) what
    the other is about to write. An advisory ``flock`` on ``out/.lock``; released on exit,
    including on a crash. While held, what this process runs inside ``out`` may write there
    (module docstring), and holding it again is a no-op. ``tidy``: remove the lock file on
    the way out if this call made it (an export folder is uploaded as it is)."""
    root, me = Path(out).resolve(), threading.get_ident()
    if _HELD.get(root) == me:  # held by this very call chain (a run's dataset merge)
        yield
        return
    with _flock(out, option=option, tidy=tidy):  # another thread's hold is refused here
        _HELD[root] = me
        try:
            yield
        finally:
            _HELD.pop(root, None)


#: Directories this process holds with exclusive_dir, and the thread holding each.
_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def _flock(out: Path, *, option: str, tidy: bool) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; document, don't pretend
        yield
        return
    path = out / ".lock"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:  # never through a symlink, never truncating: .lock may be a name of yours
        try:
            fd, made = os.open(path, flags | os.O_EXCL, 0o644), True
        except FileExistsError:
            fd, made = os.open(path, flags, 0o644), False
        f = os.fdopen(fd, "r+")
    except OSError as e:
        raise OutputError(f"cannot create the lock file: {e.strerror or e}",
                          path=str(path)) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{option} {out}: another synth run is using this "
                              "directory") from None
        try:
            yield
        finally:
            if tidy and made:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A fresh folder inside ``out`` for a set of outputs that belong together; removed on
    the way out (after :func:`commit_staged` moved its contents, it is empty)."""
    import shutil
    import tempfile

    try:
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as e:
        raise OutputError(f"cannot create a staging folder: {e.strerror or e}",
                          path=str(out)) from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def commit_staged(stage: Path, out: Path) -> None:
    """Move every entry of ``stage`` into ``out``, replacing what is there: files by an
    atomic rename, folders (e.g. ``plots/``) by renaming the old one aside first."""
    import shutil

    try:
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if entry.is_dir() and target.is_dir():
                old = stage / f".old-{entry.name}"
                os.replace(target, old)
                os.replace(entry, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(entry, target)
    except OSError as e:
        raise OutputError(f"cannot move the outputs into place: {e.strerror or e}",
                          path=str(out)) from None


# ------------------------------------------------------------- whose output a directory is

@dataclass(frozen=True)
class OutputKind:
    """What one command writes into its ``--out`` directory."""

    command: str                 # named in errors: "synth export"
    marker: str                  # the JSON file a finished output of this kind writes
    keys: frozenset[str]         # keys that file has (a user's own file of that name is not it)
    names: tuple[str, ...]       # fnmatch patterns of the top-level entries it writes
    # what an unfinished output leaves to resume from: (glob, what the file must hold: the
    # keys of a .json / first .jsonl line, the tables of a .sqlite), so a file of yours
    # that merely has the name never makes a folder synth's
    state: tuple[tuple[str, frozenset[str]], ...] = ()
    beside: tuple[str, ...] = ()  # commands whose finished folders it may also write into
    final: tuple[str, ...] = ()   # what it writes only when done: not in an unfinished one
    kept: tuple[str, ...] = ()    # what it keeps between runs, outside its recorded files


_HIDDEN = (".lock", ".staging-*", ".*.tmp")  # synth's own lock, staging and temp entries

OUTPUT_KINDS: dict[str, OutputKind] = {k.command: k for k in (
    # ``synth run`` (and ``synth estimate``, which shares its directory)
    OutputKind("synth run", "manifest.json", frozenset({"pipeline", "stages"}),
               ("pipeline.yaml", "manifest.json", "estimate.json", "report.html", "README.md",
                "traces.parquet", "merge.json", "generate", "split", "curate", "student",
                "eval"),
               # an estimate (finished, or killed while its dry run asked) before the run
               state=(("estimate.json", frozenset({"pipeline", "stages", "dry_run"})),
                      ("generate/*/calls/*/*/cache.sqlite", frozenset({"responses"}))),
               final=("pipeline.yaml", "manifest.json", "report.html", "README.md",
                      "traces.parquet", "merge.json", "split", "curate", "student", "eval")),
    OutputKind("synth generate", "run.json", frozenset({"synth_version", "teacher", "rows"}),
               ("traces.parquet", "run.json", "README.md", "cache.sqlite", "cache.sqlite-*"),
               state=(("cache.sqlite", frozenset({"responses"})),),
               final=("traces.parquet", "run.json", "README.md")),
    OutputKind("synth merge", "merge.json", frozenset({"merged_from", "files"}),
               ("traces.parquet", "README.md", "merge.json")),
    OutputKind("synth curate", "curation.json", frozenset({"recipe", "steps"}),
               ("curated.parquet", "rejects.parquet", "curation.json", "README.md",
                "report.html", "plots", "judge"), kept=("judge",)),
    OutputKind("synth export", "export.json", frozenset({"format", "files"}),
               ("train.jsonl", "test.jsonl", "train", "test", "dataset_dict.json",
                "README.md", "export.json")),
    # a trained student never is overwritten (synth/train/trainer.py refuses any non-empty
    # --out but a --resume), so its names need no list
    OutputKind("synth train", "train.json", frozenset({"student", "loss"}), ("*",),
               state=(("checkpoints/step-*/state.json", frozenset({"step", "fingerprint"})),
                      ("train_log.jsonl", frozenset({"step", "loss"})))),
    OutputKind("synth eval", "eval.json", frozenset({"student", "teacher", "data"}),
               ("eval.json", "answers.jsonl", "cascade.png", "variants.png"),
               beside=("synth train",)),
)}

def _held(out: str | Path) -> bool:
    """Whether ``out`` is (inside) a directory this process holds with :func:`exclusive_dir`."""
    resolved = Path(out).resolve()
    return resolved in _HELD or any(a in _HELD for a in resolved.parents)


def _holds(path: Path, keys: frozenset[str]) -> bool:
    """Whether ``path`` is synth's file of that name: a JSON object (a JSONL file's first
    line) with ``keys``, or a SQLite database with those tables."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        if path.suffix == ".sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro",
                                                    uri=True)) as db:
                tables = {r[0] for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            return keys <= tables
        with open(path, "rb") as f:
            data = json.loads(f.readline() if path.suffix == ".jsonl" else f.read())
        return isinstance(data, dict) and keys <= data.keys()
    except Exception:  # noqa: BLE001 - unreadable, not JSON, not SQLite: not ours
        return False


def _is(kind: OutputKind, d: Path, *, state: bool = True) -> bool:
    if _holds(d / kind.marker, kind.keys):
        return True
    return state and any(_holds(f, keys) for pattern, keys in kind.state
                         for f in d.glob(pattern))


def outputs_in(d: str | Path, *, unfinished: bool = True) -> list[OutputKind]:
    """The commands whose output ``d`` holds: finished (its marker), or with ``unfinished``
    also one that left only its state to resume from."""
    d = Path(d)
    if not d.is_dir():
        return []
    return [k for k in OUTPUT_KINDS.values() if _is(k, d, state=unfinished)]


def _match(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def files_below(d: Path, entries: list[str], *, own: bool = True) -> list[str]:
    """The files at or below the ``entries`` of ``d`` (names or relative paths), as sorted
    relative paths (what an output records as its ``files``); ``own=False`` leaves out
    synth's lock, staging and temp entries."""
    found = []
    for name in entries:
        p = d / name
        if p.is_dir():
            found += [f.relative_to(d).as_posix() for f in p.rglob("*") if not f.is_dir()]
        elif p.exists():
            found.append(name)
    if not own:
        found = [f for f in found if not any(_match(part, _HIDDEN) for part in f.split("/"))]
    return sorted(found)


def claim_out_dir(out: str | Path, command: str, *, option: str = "--out",
                  default: str | None = None) -> Path:
    """Check that ``command`` may write into ``out`` (module docstring) and return it as
    :func:`check_out_dir` does. ``default`` says where the path came from when the user did
    not give it (named in the error)."""
    me = OUTPUT_KINDS[command]
    out = check_out_dir(out, option=option)
    where = f"{option} {out}" + (f" ({default})" if default else "")
    resolved = out.resolve()
    if _held(resolved):  # written by the command that holds it (a run's stage)
        return out
    todo = ("pass --out with a directory outside it" if default else
             "choose a directory outside it")
    for a in reversed(resolved.parents):  # the outermost owner: a run, not its stage
        owners = outputs_in(a, unfinished=False)  # a finished output's marker, not a name
        if owners:
            raise ConfigError(
                f"{where}: is inside {a}, the output of `{owners[0].command}` (its folders are "
                f"its own: a rerun may replace them); {todo}")
    if not out.is_dir():
        return out
    entries = sorted(e.name for e in out.iterdir() if not _match(e.name, _HIDDEN))
    if not entries:
        return out
    owners = outputs_in(out)
    beside = [k for k in owners if k.command in me.beside]
    refuse = (f"; `{command}` never deletes or replaces a file it did not write: " +
              ("pass --out with a new or empty directory" if default else
               "choose a new or empty directory"))
    if me not in owners and not beside and all(_match(e, me.kept) for e in entries):
        return out  # an interrupted run left only what it keeps (a judge's answers)
    if me not in owners and not beside:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        what = (f"an output of `{owners[0].command}`" if owners else
                f"no earlier output of `{command}`")
        raise ConfigError(f"{where}: is not empty ({shown}) and holds {what}" + refuse)
    marker = me in owners and _is(me, out, state=False)
    recorded = _recorded_files(out / me.marker) if marker else None
    if beside and me not in owners:  # beside another command's output: none of its names
        foreign = [e for e in entries if _match(e, me.names)]
    elif not marker:  # an unfinished run (its state only): nothing it writes at the end
        foreign = [e for e in entries if _match(e, me.final)]
    elif recorded is not None:
        # it listed its files: one of its names it did not write is not its own, and a
        # folder it replaces whole (an export's train/, the report's plots/) holds nothing
        # else; entries that are none of its names it never touches
        tops = {f.split("/", 1)[0] for f in recorded}
        foreign = [e for e in entries if _match(e, me.names) and e not in tops
                   and not _match(e, me.kept)]
        # (an output of a synth that recorded only top-level names owns those folders whole)
        own_dirs = [e for e in entries if e in tops and e not in recorded and
                    (out / e).is_dir()]
        foreign += [f for f in files_below(out, own_dirs) if f not in recorded]
    else:
        foreign = []
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(f"{where}: holds {shown}, which an earlier `{command}` did not "
                          "write" + refuse)
    return out


def _recorded_files(marker: Path) -> set[str] | None:
    try:
        files = json.loads(marker.read_bytes()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else None
