"""Files synth writes: all or nothing, one writer per directory, output paths checked early.

Every output (traces, curated rows, reports, cards, models) goes through :func:`write_atomic`:
a temp file beside the target, fsync, rename. A reader (or a crash) sees the old file or the
new one, never half of one. Errors while writing become :class:`~synth.errors.OutputError`
naming the file, so the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from synth.errors import ConfigError, OutputError

if TYPE_CHECKING:  # pyarrow is imported only when a table is written
    import pyarrow as pa

__all__ = ["write_atomic", "check_out_dir", "check_not_input", "make_out_dir", "exclusive_dir",
           "staging_dir", "commit_staged"]


def write_atomic(path: str | Path, data: "bytes | str | pa.Table") -> None:
    """Write ``data`` (bytes, text, or an Arrow table as zstd parquet) to ``path`` through a
    temp file beside it, fsync, then rename: readers see all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            data = data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            tmp.write_bytes(data)
        else:
            import pyarrow.parquet as pq

            pq.write_table(data, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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
def exclusive_dir(out: Path, *, option: str = "--out") -> Iterator[None]:
    """One synth process per output directory: two runs would each redo (and pay for) what
    the other is about to write. An advisory ``flock`` on ``out/.lock``; released on exit,
    including on a crash."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; document, don't pretend
        yield
        return
    try:
        f = open(out / ".lock", "w")
    except OSError as e:
        raise OutputError(f"cannot create the lock file: {e.strerror or e}",
                          path=str(out / ".lock")) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{option} {out}: another synth run is using this "
                              "directory") from None
        yield


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
