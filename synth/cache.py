"""The exactly-once request cache: one SQLite file in the run directory.

Each completed answer is committed under its request hash as it arrives, so a run killed at
any point (SIGKILL included) resumes by sending only what is not in the cache.

A commit costs ~70 µs of SQLite work, which at thousands of answers a second would be most
of the client's CPU on the event loop. So a writer thread does group commit: ``put`` only
enqueues, and the thread writes whatever has queued up in one transaction (sqlite3 releases
the GIL while it works). The window between an answer arriving and its commit is the
thread's wake-up time, well under a millisecond when idle; answers in that window at a
SIGKILL are simply asked again. WAL mode with ``synchronous=NORMAL``: a commit is a
``write()`` without fsync, which survives the death of the process (not of the machine).
Errors are never cached: a rerun retries them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

import orjson

from synth.errors import OutputError

__all__ = ["ResponseCache", "cache_root"]


def cache_root() -> Path:
    """synth's own cache folder (converted models, the judge's default runs):
    ``$SYNTH_CACHE_DIR``, default ``~/.cache/synth``."""
    base = os.environ.get("SYNTH_CACHE_DIR")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "synth"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    hash TEXT PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID
"""


_STOP = object()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as e:
            raise self._failure(e, "cannot open the response cache") from None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._writer = threading.Thread(target=self._write_loop, name="synth-cache",
                                        daemon=True)
        self._writer.start()

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = []
            while item is not _STOP:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    with self._lock:
                        self._db.execute("BEGIN")
                        self._db.executemany(
                            "INSERT OR REPLACE INTO responses (hash, data) VALUES (?, ?)", batch)
                        self._db.execute("COMMIT")
                except sqlite3.Error as e:  # surfaced on the next put()/close()
                    self._error = self._failure(e, f"cannot save {len(batch)} answer(s) to "
                                                "the response cache")
                except BaseException as e:
                    self._error = e
            if item is _STOP:
                return

    def _failure(self, e: sqlite3.Error, what: str) -> OutputError:
        return OutputError(f"{what}: {e} (answers not saved would be asked, and paid for, "
                           "again; free disk space or fix permissions, then rerun the same "
                           "command to resume)", path=str(self.path))

    def get_many(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        """Stored answers for the given hashes (missing ones are absent)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = set(hashes)
        with self._lock:
            stored = self._db.execute("SELECT hash, data FROM responses").fetchall()
        for h, data in stored:
            if h in wanted:
                found[h] = orjson.loads(data)
        return found

    def put(self, request_hash: str, data: dict[str, Any]) -> None:
        """Queue one answer for the writer thread's next commit."""
        if self._error is not None:
            raise self._error
        self._queue.put((request_hash, orjson.dumps(data)))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one committed transaction, for records that must be on
        disk before the caller moves on (the batch ledger): committed on return, rolled
        back on error, never left to the writer thread."""
        if self._error is not None:
            raise self._error
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._failure(e, "cannot record batch progress in the cache") from None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query, under the connection's lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Commit everything queued, then close. Raises what the writer hit, if anything."""
        if self._writer.is_alive():
            self._queue.put(_STOP)
            self._writer.join()
        self._db.close()
        if self._error is not None:
            raise self._error
