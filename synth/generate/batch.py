"""``synth generate --batch``: the same requests through the provider's batch API, at its
batch price, paid for exactly once across crashes.

resume (every batch the ledger holds open: find a lost upload or batch, or send it) →
submit what was never submitted (split by the provider's limits and ``--max-cost`` at the
batch price) → poll with backoff; each ended batch's answers and failures are stored in one
transaction, and failed, expired or cancelled items are resubmitted up to ``--max-retries``
times → rows, exactly as a synchronous run makes them (``batch_id`` says where each came
from). ``--no-wait`` stops after submitting; a later run, or ``synth batch status``, picks up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

from synth.cache import ResponseCache
from synth.errors import (
    BatchError,
    BudgetExceededError,
    FatalRequestError,
    RetryableError,
    TeacherError,
)
from synth.generate.config import GenerateConfig
from synth.generate.ledger import OPEN_STATES, BatchLedger, BatchRow
from synth.progress import BatchProgress
from synth.records import Request
from synth.teachers.batches import BatchClient, BatchState, batch_client
from synth.teachers.pricing import Price

__all__ = ["BatchRun", "MAX_POLL_S", "batch_status", "batch_cancel", "abatch_status",
           "abatch_cancel"]

log = logging.getLogger("synth")

#: The longest wait between polls: batches take minutes to hours, and each poll is a call.
MAX_POLL_S = 300.0
_MISSING = {"expired": ("batch_expired", "the batch expired (24 h) before this item was "
                        "answered"),
            "cancelled": ("batch_cancelled", "the batch was cancelled before this item was "
                          "answered")}


class _Refused(Exception):
    """A create refused (4xx) at its first attempt: no batch was made."""

    def __init__(self, error: TeacherError):
        self.error = error


class BatchRun:
    """One ``synth generate --batch`` over a run directory's cache and ledger."""

    def __init__(self, cfg: GenerateConfig, teacher: Any, price: Price | None,
                 requests: list[Request], cache: ResponseCache, make: Any,
                 client: BatchClient | None = None):
        self.cfg, self.teacher, self.price, self.make = cfg, teacher, price, make
        self.client: BatchClient = client or batch_client(teacher)
        self.wire, self.http = self.client.wire, self.client.http
        self.cache = cache
        self.ledger = BatchLedger(cache)
        self.requests = requests
        self.first: dict[str, Request] = {}
        for r in requests:
            self.first.setdefault(r.hash, r)
        stored = cache.get_many(list(self.first))
        self.answered: set[str] = set(stored)
        self.from_cache = sum(1 for r in requests if r.hash in stored)
        self.spent = sum(self.make.cost(rec) or 0.0 for h, rec in stored.items())
        self.reserved = 0.0
        self.stopped = False  # --max-cost: nothing more is sent
        self.unsent: set[str] = set()
        self.sent_hashes: set[str] = set()  # requests this run got into a batch
        self.in_flight: dict[str, float] = {}  # open batch key → its worst-case cost
        self.mine = (teacher.provider, teacher.model, teacher.base_url)
        self._warned_others = False
        self.submitted_batches = 0
        self.collected = 0
        self.progress = BatchProgress(
            enabled=cfg.progress, description=f"{teacher.provider}:{teacher.model} (batch)")

    # ------------------------------------------------------------------ money
    def _worst(self, req: Request) -> float:
        if self.price is None:
            return 0.0
        return (self.price.cost(req.est_input_tokens, req.params.max_tokens) or 0.0) \
            * self.make.batch_fraction

    def _fits(self, amount: float) -> bool:
        if self.cfg.max_cost is None:
            return True
        if self.stopped or self.spent + self.reserved + amount > self.cfg.max_cost:
            self.stopped = True
            return False
        return True

    # ----------------------------------------------------------------- submit
    def _pending(self) -> list[str]:
        """Hashes to submit now: unanswered, in no open batch, not failed for good."""
        busy = self.ledger.in_open_batches()
        fails = self.ledger.failures()
        out = []
        for h in self.first:
            if h in self.answered or h in busy or h in self.unsent:
                continue
            f = fails.get(h, [])
            if f and (not f[-1].retryable or len(f) > self.cfg.max_retries):
                continue  # an error row, with the last reason
            out.append(h)
        return out

    def _chunks(self, hashes: list[str]) -> list[tuple[list[str], list[bytes], float]]:
        """Split by the provider's limits (requests and bytes), and stop where --max-cost
        would be crossed at the batch price, worst case (every answer ``max_tokens`` long)."""
        limits, over = self.wire.limits, self.wire.item_overhead()
        chunks: list[tuple[list[str], list[bytes], float]] = []
        cur_h: list[str] = []
        cur_i: list[bytes] = []
        size, worst = 1024, 0.0  # 1 KiB for the envelope (multipart headers, JSON)
        for h in hashes:
            req = self.first[h]
            w = self._worst(req)
            if not self._fits(w):
                self.unsent.add(h)
                continue
            item = self.wire.item(h, self.client.encode(req, self.teacher.model))
            if cur_h and (len(cur_h) >= limits.max_requests
                          or size + len(item) + over > limits.max_bytes):
                chunks.append((cur_h, cur_i, worst))
                cur_h, cur_i, size, worst = [], [], 1024, 0.0
            if len(item) + over + 1024 > limits.max_bytes:
                raise BatchError(f"--batch: request {req.prompt.id} alone is {len(item):,} "
                                 f"bytes, over the {limits.max_bytes:,}-byte batch limit")
            cur_h.append(h)
            cur_i.append(item)
            size += len(item) + over
            worst += w
            self.reserved += w
        if cur_h:
            chunks.append((cur_h, cur_i, worst))
        return chunks

    async def submit_pending(self) -> None:
        for hashes, items, worst in self._chunks(self._pending()):
            key = secrets.token_hex(12)
            self.ledger.plan(key, hashes, provider=self.wire.provider,
                             model=self.teacher.model, base_url=self.teacher.base_url,
                             api_key_env=self.cfg.api_key_env, reserved=worst)
            self.in_flight[key] = worst
            await self._send(key, hashes, items, file_id=None)

    def _refused(self, key: str, e: TeacherError) -> BatchError:
        """The provider refused the upload or the create outright: no batch exists for
        this key, so the ledger closes it."""
        self.ledger.mark(key, state="failed", detail=str(e))
        hint = ""
        if e.status in (404, 405):
            hint = (f"; does {self.teacher.base_url} serve the {self.wire.provider} batch "
                    "routes? (vLLM, llama.cpp and Ollama serve only the synchronous ones: "
                    "drop --batch)")
        return BatchError(f"--batch: the provider refused the batch: {e}{hint}")

    def _resumable(self, e: TeacherError) -> BatchError:
        return BatchError(f"--batch: {e}; what was submitted is recorded in "
                          f"{self.cache.path}: run the same command again to resume")

    async def _send(self, key: str, hashes: list[str], items: list[bytes],
                    file_id: str | None) -> None:
        """Upload (where the wire uploads) and create, committing each step first. Only a
        4xx to the upload or to a first create closes the batch; any other failure leaves
        it where the ledger has it, for the next run to find."""
        if self.wire.uploads and file_id is None:
            try:
                file_id = await self.wire.upload(self.http, key, items)
            except FatalRequestError as e:
                raise self._refused(key, e) from None
            except TeacherError as e:
                raise self._resumable(e) from None
            self.ledger.mark(key, state="uploaded", file_id=file_id)
        try:
            st, guessed = await self._create(key, file_id, items)
        except _Refused as r:
            raise self._refused(key, r.error) from None
        except TeacherError as e:
            raise self._resumable(e) from None
        self.ledger.mark(key, state="submitted", batch_id=st.id, status=st.status,
                         counts=st.counts(), detail="guessed" if guessed else None)
        self.sent_hashes.update(hashes)
        self.submitted_batches += 1
        self.progress.update(st.id, st.status, total=st.total, done=st.done, failed=st.failed)

    async def _create(self, key: str, file_id: str | None, items: list[bytes]
                      ) -> tuple[BatchState, bool]:
        """Create the batch, retrying as the policy says; but a failed create (a timeout, a
        5xx, a dropped connection) may have made the batch all the same, so before each
        new attempt the listing is searched for it: a batch is never created twice.
        ``(state, guessed)``: guessed when it was found by a listing that cannot be sure."""
        since, attempt = time.time(), 0
        retry = self.http.retry
        while True:
            try:
                return await self.wire.create(self.http, key, file_id, items), False
            except FatalRequestError as e:
                if attempt == 0:  # refused before any attempt could have made it
                    raise _Refused(e) from None
                raise  # an earlier attempt may have made it: leave the ledger as it is
            except RetryableError as e:
                if attempt >= retry.max_retries:
                    raise
                self.http.retries[e.reason] = self.http.retries.get(e.reason, 0) + 1
                await asyncio.sleep(retry.delay(attempt, e.retry_after))
                attempt += 1
            found = await self.wire.find_batch(self.http, key, file_id=file_id, since=since,
                                               n=len(items),
                                               known=self.ledger.known_batch_ids())
            if found is not None:
                log.info("batch %s: created although its create call failed", found)
                return await self.wire.get(self.http, found), not self.wire.exact_recovery

    # ----------------------------------------------------------------- resume
    async def resume(self) -> None:
        """Bring every batch of this teacher an earlier run left open to *submitted* (or
        drop one that never reached the provider and is no longer wanted). Batches of
        another teacher in the same directory are left alone, and named."""
        others = [b for b in self.ledger.batches(states=OPEN_STATES)
                  if (b.provider, b.model, b.base_url) != self.mine]
        if others and not self._warned_others:
            self._warned_others = True
            log.warning("%d batch(es) of another teacher are open in %s (%s): left alone; "
                        "`synth batch status` shows them, and the command that made them "
                        "collects them", len(others), self.cfg.out,
                        ", ".join(sorted({f"{b.provider}:{b.model}" for b in others})))
        known = self.ledger.known_batch_ids()
        for b in self.ledger.batches(states=OPEN_STATES, teacher=self.mine):
            # what it may still cost, at today's prices (a price file may have been added)
            hashes = self.ledger.items(b.key)
            if b.key not in self.in_flight:
                worst = b.reserved
                if all(h in self.first for h in hashes):
                    worst = sum(self._worst(self.first[h]) for h in hashes)
                self.in_flight[b.key] = worst
                self.reserved += worst
            if b.state == "submitted":
                continue
            try:
                await self._recover(b, hashes, known)
            except TeacherError as e:
                raise BatchError(f"--batch: recovering batch {b.key}: {e}; rerun the same "
                                 "command to try again") from None

    async def _recover(self, b: BatchRow, hashes: list[str], known: set[str]) -> None:
        file_id = b.file_id
        if b.state == "planned" and self.wire.uploads:
            file_id = await self.wire.find_upload(self.http, b.key)
            if file_id is not None:
                self.ledger.mark(b.key, state="uploaded", file_id=file_id)
        if file_id is not None or not self.wire.uploads:
            found = await self.wire.find_batch(self.http, b.key, file_id=file_id,
                                               since=b.created_at, n=b.n, known=known)
            if found is not None:
                st = await self.wire.get(self.http, found)
                known.add(found)
                log.info("batch %s: found %s, created before the last run stopped", b.key,
                         found)
                self.ledger.mark(b.key, state="submitted", batch_id=found, status=st.status,
                                 counts=st.counts(),
                                 detail=None if self.wire.exact_recovery else "guessed")
                return
        if any(h not in self.first for h in hashes):  # never sent; no longer asked for
            self.ledger.mark(b.key, state="failed",
                             detail="dropped: never submitted; its requests are not this run's")
            self.reserved -= self.in_flight.pop(b.key, 0.0)
            return
        items = [self.wire.item(h, self.client.encode(self.first[h], self.teacher.model))
                 for h in hashes]
        await self._send(b.key, hashes, items, file_id=file_id)

    # ------------------------------------------------------------------- poll
    async def poll(self, *, once: bool = False) -> None:
        """Poll this teacher's submitted batches until none is left: every
        ``poll_interval`` seconds while something changes, backing off (×1.5, at most 5
        minutes) while nothing does. An ended batch is collected at once and its failed
        items resubmitted. ``once``: one pass, no waiting (``--no-wait``)."""
        delay = self.cfg.poll_interval
        while True:
            open_ = self.ledger.batches(states=("submitted",), teacher=self.mine)
            if not open_:
                return
            changed = ended = False
            for b in open_:
                try:
                    st = await self.wire.get(self.http, b.batch_id)
                except TeacherError as e:
                    raise BatchError(f"--batch: {e}; rerun the same command to resume "
                                     "polling") from None
                self.progress.update(st.id, st.status, total=st.total, done=st.done,
                                     failed=st.failed)
                if st.phase == "failed":
                    self.ledger.mark(b.key, state="failed", status=st.status,
                                     counts=st.counts(), detail="; ".join(st.errors))
                    raise BatchError(self._refusal(b, st))
                if st.phase == "ended":
                    await self._collect(b, st)
                    changed = ended = True
                elif st.status != b.status or st.counts() != b.counts:
                    self.ledger.mark(b.key, status=st.status, counts=st.counts())
                    changed = True
            if ended:
                await self.resume()  # a batch found not ours goes back to be found or sent
                await self.submit_pending()  # failed items go round again
            if once or not self.ledger.batches(states=("submitted",), teacher=self.mine):
                return
            delay = self.cfg.poll_interval if changed else min(
                delay * 1.5, max(MAX_POLL_S, self.cfg.poll_interval))
            await asyncio.sleep(delay)

    def _refusal(self, b: BatchRow, st: BatchState) -> str:
        """The provider refused the whole batch: say why, naming the prompt wherever a
        line is named (line N of the batch file is the Nth request planned into it)."""
        hashes = self.ledger.items(b.key)

        def prompt(m: re.Match) -> str:
            n = int(m.group(1))
            req = self.first.get(hashes[n - 1]) if 0 < n <= len(hashes) else None
            return f"line {n} (prompt {req.prompt.id})" if req else m.group(0)

        causes = [re.sub(r"^line (\d+)", prompt, e) for e in st.errors[:5]]
        more = f" (and {len(st.errors) - 5} more)" if len(st.errors) > 5 else ""
        return (f"--batch: the provider refused batch {st.id} ({b.n} requests) in "
                f"validation: {'; '.join(causes) or 'no reason given'}{more}")

    async def _download(self, st: BatchState) -> list[Any]:
        """The batch's results; downloaded again (free) while lines come back unreadable,
        since an item lost to a cut download would otherwise be paid for again."""
        best: list[Any] | None = None
        for _ in range(3):
            try:
                results, unreadable = await self.wire.results(self.http, st)
            except TeacherError as e:
                raise BatchError(f"--batch: {e}; rerun the same command to download it "
                                 "again") from None
            if best is None or len(results) > len(best):
                best = results
            if not unreadable:
                break
            log.warning("batch %s: %d result line(s) unreadable; downloading again", st.id,
                        unreadable)
        return best or []

    async def _collect(self, b: BatchRow, st: BatchState) -> None:
        results = await self._download(st)
        mine = set(self.ledger.items(b.key))
        if b.detail == "guessed" and results and not any(r.custom_id in mine for r in results):
            # adopted from the listing after a crash, and not ours after all
            log.warning("batch %s holds none of batch %s's requests: not ours; looking "
                        "again", st.id, b.key)
            self.ledger.disown(b.key, st.id, self.wire.provider)
            return
        answers: dict[str, bytes] = {}
        failures: list[tuple[str, str, str | None, bool]] = []
        seen: set[str] = set()
        cost = 0.0
        from synth.generate.run import completion_record

        for r in results:
            h = r.custom_id
            if h not in mine or h in seen:
                continue  # not this batch's, or a repeat
            seen.add(h)
            if r.completion is not None:
                rec = completion_record(r.completion)
                rec["batch_id"] = st.id
                rec["latency_s"] = None  # time in a batch queue is not a latency
                answers[h] = orjson.dumps(rec)
                if h not in self.answered:
                    cost += self.make.cost(rec) or 0.0
            else:
                failures.append((h, r.reason or "batch_item_error", r.message, r.retryable))
        reason, message = _MISSING.get(st.status, (
            "batch_missing", "the item is missing from the batch's results (a truncated "
            "or incomplete results file)"))
        failures += [(h, reason, message, True) for h in mine - seen]
        self.ledger.collect(b.key, answers, failures, status=st.status, counts=st.counts())
        self.answered.update(answers)
        self.reserved -= self.in_flight.pop(b.key, 0.0)
        self.spent += cost
        self.collected += 1
        self.progress.cost = self.spent if self.price is not None else None
        self.progress.update(st.id, st.status, total=st.total, done=len(answers),
                             failed=len(failures), cost=cost if self.price else None)

    # ------------------------------------------------------------------- rows
    def rows(self) -> list[dict[str, Any]]:
        stored = self.cache.get_many(list(self.first))
        fails = self.ledger.failures()
        busy = self.ledger.in_open_batches()
        out = []
        for r in self.requests:
            rec = stored.get(r.hash)
            if rec is not None:
                out.append(self.make.ok(r, rec))
                continue
            f = fails.get(r.hash)
            if r.hash in self.unsent:
                err: TeacherError = BudgetExceededError(
                    f"not sent: --max-cost {self.cfg.max_cost:g} USD would be exceeded at "
                    f"the batch price (spent {self.spent:.4f}, in flight {self.reserved:.4f})")
            elif f:
                last = f[-1]
                err = TeacherError(f"{last.message or last.reason} (after {len(f)} batch "
                                   f"attempt{'s' if len(f) > 1 else ''})", reason=last.reason)
            elif r.hash in busy:
                err = TeacherError("still in a batch that has not ended", reason="batch_pending")
            else:
                err = TeacherError("no answer from any batch", reason="batch_missing")
            out.append(self.make.error(r, err))
        return out

    def stats(self) -> dict[str, Any]:
        every = self.ledger.batches()
        fails = self.ledger.failures()
        reasons: dict[str, int] = {}
        for f in fails.values():
            for x in f:
                reasons[x.reason] = reasons.get(x.reason, 0) + 1
        return {
            "cached": self.from_cache, "sent": len(self.sent_hashes),
            "retries": dict(self.http.retries), "stopped_by_max_cost": self.stopped,
            "batch": {
                "provider": self.wire.provider, "batches": len(every),
                "submitted_this_run": self.submitted_batches,
                "collected_this_run": self.collected,
                "open": sum(b.state in OPEN_STATES for b in every),
                "item_failures": dict(sorted(reasons.items())),
                "price_fraction": self.make.batch_fraction if self.price is not None else None,
                "batch_price_known": bool(self.price is not None and self.price.batch),
                "ids": [b.batch_id for b in every if b.batch_id],
            },
        }

    async def run(self) -> bool:
        """Resume, submit, and (unless ``wait`` is off) poll until every batch ended.
        True when every request has its outcome; False when batches are still open."""
        try:
            await self.resume()
            await self.submit_pending()
            if not self.cfg.wait:  # collect what already ended, then leave the rest
                await self.poll(once=True)
                return not self.ledger.batches(states=OPEN_STATES, teacher=self.mine)
            await self.poll()
            return True
        finally:
            self.progress.stop()


# --------------------------------------------------------------- synth batch status|cancel
def _open_run(run_dir: Path) -> tuple[ResponseCache, BatchLedger]:
    from synth.errors import InputError

    path = Path(run_dir) / "cache.sqlite"
    if not path.is_file():
        raise InputError("no cache.sqlite here: not a `synth generate` run directory",
                         path=str(run_dir))
    cache = ResponseCache(path)
    return cache, BatchLedger(cache)


def _client_for(b: BatchRow, base_url: str | None, api_key_env: str | None) -> BatchClient:
    from synth.teachers import TeacherOptions, make_teacher

    teacher = make_teacher(f"{b.provider}:{b.model}", TeacherOptions(
        base_url=base_url or b.base_url, api_key_env=api_key_env or b.api_key_env))
    return batch_client(teacher)


async def _each_open(run_dir: Path, base_url: str | None, api_key_env: str | None, act):
    """``act(ledger, client, row)`` on each open batch, one client per teacher; the batches
    as the ledger then holds them (``act`` may return a row's fresh state, shown instead),
    and how many answers the cache holds."""
    cache, ledger = _open_run(run_dir)
    clients: dict[tuple, BatchClient] = {}
    fresh: dict[str, BatchState] = {}
    try:
        for b in ledger.batches():
            if b.state not in OPEN_STATES:
                continue
            k = (b.provider, b.model, b.base_url, b.api_key_env)
            if k not in clients:
                clients[k] = _client_for(b, base_url, api_key_env)
            try:
                st = await act(ledger, clients[k], b)
            except TeacherError as e:
                raise BatchError(f"batch {b.batch_id or b.key}: {e}") from None
            if st is not None:
                fresh[b.key] = st
        rows = []
        for b in ledger.batches():
            st = fresh.get(b.key)
            if isinstance(st, str):  # what act did instead, in words
                rows.append({**_public(b), "note": st})
            else:
                rows.append(_public(b, st))
        return rows, len(cache)
    finally:
        for c in clients.values():
            await c.http.transport.aclose()
        cache.close()


async def abatch_status(run_dir: Path, *, refresh: bool = True, base_url: str | None = None,
                        api_key_env: str | None = None) -> dict[str, Any]:
    """Every batch a run directory's ledger holds, as the provider now reports it (unless
    ``refresh`` is off): ``{"batches": [...], "answers_cached": n}``. Read-only: a run in
    progress in that directory is not disturbed."""

    async def look(ledger: BatchLedger, client: BatchClient, b: BatchRow):
        if refresh and b.state == "submitted":
            return await client.wire.get(client.http, b.batch_id)
        return None

    rows, cached = await _each_open(Path(run_dir), base_url, api_key_env, look)
    return {"batches": rows, "answers_cached": cached}


async def abatch_cancel(run_dir: Path, *, base_url: str | None = None,
                        api_key_env: str | None = None) -> dict[str, Any]:
    """Cancel every batch of a run that has not ended. A batch never created is closed in
    the ledger; one created but not recorded (a crash) is found and cancelled, except one
    only guessed from a listing (never someone else's). The next ``synth generate`` run
    collects what the cancelled batches had answered. Refused while a run holds the
    directory (it would resubmit what is cancelled)."""
    from synth.io import exclusive_dir

    async def stop(ledger: BatchLedger, client: BatchClient, b: BatchRow):
        batch_id = b.batch_id
        if batch_id is None:
            batch_id = await client.wire.find_batch(
                client.http, b.key, file_id=b.file_id, since=b.created_at, n=b.n,
                known=ledger.known_batch_ids())
            if batch_id is None:
                ledger.mark(b.key, state="failed", detail="cancelled before it was created")
                return None
            if not client.wire.exact_recovery:
                note = (f"not cancelled: {batch_id} may be it (found in the listing), but "
                        "that is a guess")
                log.warning("batch %s: %s", b.key, note)
                return note
            ledger.mark(b.key, state="submitted", batch_id=batch_id)
        elif b.detail == "guessed":
            note = ("not cancelled: adopted from the listing after a crash and not yet "
                    "checked against its results (it may be another run's)")
            log.warning("batch %s: %s", batch_id, note)
            return note
        st = await client.wire.get(client.http, batch_id)
        if st.phase == "running" and st.status not in ("cancelling", "canceling"):
            st = await client.wire.cancel(client.http, batch_id)
        ledger.mark(b.key, status=st.status, counts=st.counts())
        return st

    run_dir = Path(run_dir)
    _open_run(run_dir)[0].close()  # a clear error for a folder that is not a run's
    with exclusive_dir(run_dir, option="RUN_DIR"):
        rows, cached = await _each_open(run_dir, base_url, api_key_env, stop)
    return {"batches": rows, "answers_cached": cached}


def _public(b: BatchRow, st: BatchState | None = None) -> dict[str, Any]:
    return {"key": b.key, "provider": b.provider, "model": b.model, "base_url": b.base_url,
            "state": b.state, "batch_id": b.batch_id, "file_id": b.file_id,
            "status": st.status if st else b.status, "requests": b.n,
            "counts": st.counts() if st else b.counts, "created_at": b.created_at,
            "detail": b.detail}


def batch_status(run_dir: Path, **kw: Any) -> dict[str, Any]:
    return asyncio.run(abatch_status(run_dir, **kw))


def batch_cancel(run_dir: Path, **kw: Any) -> dict[str, Any]:
    return asyncio.run(abatch_cancel(run_dir, **kw))
