"""The batch ledger: what was submitted to a provider's batch API, kept in the run's
``cache.sqlite`` beside the answers, so that a run killed at any point resumes without paying
twice.

Every step is committed before the next one is sent: a batch is *planned* (its key and the
request hashes inside) before its file is uploaded, *uploaded* (the file id) before the
batch is created, *submitted* (the batch id) before polling, and *collected* in the same
transaction that stores its answers and failures. A rerun finds each batch in the state its
last commit left, and a wire's ``find_upload`` / ``find_batch`` recover the one step that may
have reached the provider without reaching the ledger.

Tables: ``batches`` (one row per submission), ``batch_items`` (its request hashes),
``batch_failures`` (per request and batch: why it has no answer from that batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

from synth.cache import ResponseCache

__all__ = ["BatchLedger", "BatchRow", "OPEN_STATES"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL,
        base_url TEXT, api_key_env TEXT, state TEXT NOT NULL, file_id TEXT, batch_id TEXT,
        status TEXT, counts TEXT, n INTEGER NOT NULL, reserved REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, detail TEXT)""",
    """CREATE TABLE IF NOT EXISTS batch_items (
        key TEXT NOT NULL, pos INTEGER NOT NULL, hash TEXT NOT NULL,
        PRIMARY KEY (key, pos)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS batch_failures (
        hash TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, message TEXT,
        retryable INTEGER NOT NULL, PRIMARY KEY (hash, key)) WITHOUT ROWID""",
)
#: planned → uploaded → submitted → collected; failed: refused whole (validation), or
#: dropped before it was ever sent. ``detail = 'guessed'``: adopted from the listing.
OPEN_STATES = ("planned", "uploaded", "submitted")


@dataclass(slots=True)
class BatchRow:
    key: str
    provider: str
    model: str
    base_url: str | None
    api_key_env: str | None
    state: str
    file_id: str | None
    batch_id: str | None
    status: str | None
    counts: dict[str, Any]
    n: int
    reserved: float
    created_at: float
    updated_at: float
    detail: str | None


@dataclass(slots=True)
class Failure:
    reason: str
    message: str | None
    retryable: bool


class BatchLedger:
    def __init__(self, cache: ResponseCache):
        self.cache = cache
        with cache.transaction() as db:
            for stmt in _SCHEMA:
                db.execute(stmt)

    # ------------------------------------------------------------------ reads
    @staticmethod
    def open_hashes(cache: ResponseCache) -> set[str]:
        """Request hashes in batches still open, for a synchronous run in the same
        directory (which must not send them again); empty when no batch was ever made."""
        if not cache.read("SELECT 1 FROM sqlite_master WHERE name = 'batches'"):
            return set()
        return BatchLedger(cache).in_open_batches()

    def batches(self, *, states: Iterable[str] | None = None,
                teacher: tuple[str, str, str | None] | None = None) -> list[BatchRow]:
        """Batches in creation order; ``states`` and ``teacher`` (provider, model, base
        URL) narrow them. Rows of state ``foreign`` only remember batches found not ours."""
        rows = self.cache.read(
            "SELECT key, provider, model, base_url, api_key_env, state, file_id, batch_id, "
            "status, counts, n, reserved, created_at, updated_at, detail FROM batches "
            "WHERE state != 'foreign' ORDER BY created_at, key")
        wanted = set(states) if states is not None else None
        out = []
        for r in rows:
            if wanted is not None and r[5] not in wanted:
                continue
            if teacher is not None and tuple(r[1:4]) != tuple(teacher):
                continue
            out.append(BatchRow(*r[:9], orjson.loads(r[9]) if r[9] else {}, *r[10:]))
        return out

    def items(self, key: str) -> list[str]:
        return [h for (h,) in self.cache.read(
            "SELECT hash FROM batch_items WHERE key = ? ORDER BY pos", (key,))]

    def in_open_batches(self) -> set[str]:
        marks = ",".join("?" * len(OPEN_STATES))
        return {h for (h,) in self.cache.read(
            "SELECT i.hash FROM batch_items i JOIN batches b ON b.key = i.key "
            f"WHERE b.state IN ({marks})", OPEN_STATES)}

    def failures(self) -> dict[str, list[Failure]]:
        out: dict[str, list[Failure]] = {}
        for h, reason, message, retryable in self.cache.read(
                "SELECT f.hash, f.reason, f.message, f.retryable FROM batch_failures f "
                "JOIN batches b ON b.key = f.key ORDER BY b.created_at"):
            out.setdefault(h, []).append(Failure(reason, message, bool(retryable)))
        return out

    def known_batch_ids(self) -> set[str]:
        """Every provider batch id this ledger holds: its own, and those found not ours."""
        return {b for (b,) in self.cache.read(
            "SELECT batch_id FROM batches WHERE batch_id IS NOT NULL")}

    def disown(self, key: str, batch_id: str, provider: str) -> None:
        """A batch adopted by guess (a crash recovery from the listing) whose results hold
        none of this batch's requests: not ours. Remember it as foreign, and put the batch
        back to *planned*, so the next step looks again (or sends it)."""
        now = time.time()
        with self.cache.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO batches (key, provider, model, state, batch_id, n, "
                "created_at, updated_at) VALUES (?, ?, '', 'foreign', ?, 0, ?, ?)",
                (f"foreign-{batch_id}", provider, batch_id, now, now))
            db.execute("UPDATE batches SET state = 'planned', batch_id = NULL, status = NULL, "
                       "detail = NULL, updated_at = ? WHERE key = ?", (now, key))

    # ----------------------------------------------------------------- writes
    def plan(self, key: str, hashes: list[str], *, provider: str, model: str,
             base_url: str | None, api_key_env: str | None, reserved: float) -> None:
        """Record a batch before any byte of it is sent."""
        now = time.time()
        with self.cache.transaction() as db:
            db.execute(
                "INSERT INTO batches (key, provider, model, base_url, api_key_env, state, "
                "n, reserved, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, "
                "?, ?)", (key, provider, model, base_url, api_key_env, len(hashes), reserved,
                          now, now))
            db.executemany("INSERT INTO batch_items (key, pos, hash) VALUES (?, ?, ?)",
                           [(key, i, h) for i, h in enumerate(hashes)])

    def mark(self, key: str, **fields: Any) -> None:
        """Update a batch's row (state, file_id, batch_id, status, counts, detail)."""
        if "counts" in fields:
            fields["counts"] = orjson.dumps(fields["counts"]).decode()
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.cache.transaction() as db:
            db.execute(f"UPDATE batches SET {cols} WHERE key = ?", (*fields.values(), key))

    def collect(self, key: str, answers: dict[str, bytes],
                failures: list[tuple[str, str, str | None, bool]], *, status: str,
                counts: dict[str, Any]) -> None:
        """One transaction: the batch's answers into the response cache, its failures, and
        the batch marked collected. Killed before it commits, the batch is still
        *submitted* and a rerun downloads its results again (downloading is free)."""
        with self.cache.transaction() as db:
            # an answer already there (a synchronous one) stays: rows are a function of
            # the first answer stored
            db.executemany("INSERT OR IGNORE INTO responses (hash, data) VALUES (?, ?)",
                           list(answers.items()))
            db.executemany(
                "INSERT OR REPLACE INTO batch_failures (hash, key, reason, message, "
                "retryable) VALUES (?, ?, ?, ?, ?)",
                [(h, key, r, m, int(ok)) for h, r, m, ok in failures])
            db.execute("UPDATE batches SET state = 'collected', status = ?, counts = ?, "
                       "updated_at = ? WHERE key = ?",
                       (status, orjson.dumps(counts).decode(), time.time(), key))
