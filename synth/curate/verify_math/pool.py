""":func:`verify_many`: :func:`~.check.check_response` over a batch in worker processes,
each item under a time limit that a hard kill enforces when the alarm cannot.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import signal
import sys
import time
import types
from collections import deque
from multiprocessing.connection import wait as _wait_connections
from typing import Any, Callable

from synth.curate.verify_math.check import check_response, run_with_alarm
from synth.curate.verify_math.compare import Outcome
from synth.curate.verify_math.parse import quiet_math_verify_logging

_READY = (-1, ("ready", ""))


def _worker_main(conn: Any, timeout_s: float, item_fn: Callable | None) -> None:
    """Worker loop: receive chunks, stream back one result per item."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    fn = item_fn or check_response
    try:
        import math_verify  # noqa: F401  (warm the import before the first item)
    except Exception:
        pass
    quiet_math_verify_logging()
    try:
        conn.send(_READY)  # start-up done: the parent starts item clocks from here
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        for idx, response, reference in msg:
            outcome = run_with_alarm(fn, response, reference, timeout_s)
            try:
                conn.send((idx, outcome))
            except (BrokenPipeError, OSError):
                return


def _mp_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Preloading makes each (re)started worker a cheap fork of a process
        # that already imported sympy/math_verify. No effect once the
        # forkserver is running; missing modules are ignored by CPython.
        try:
            ctx.set_forkserver_preload(["math_verify", __name__])
        except Exception:
            pass
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _main_hidden():
    """Start processes without the caller's ``__main__``.

    forkserver and spawn children re-run the parent's main script (as ``__mp_main__``) so
    that objects defined there can be unpickled. A worker here needs nothing from it, and
    re-running a script that lacks ``if __name__ == "__main__":`` would repeat its work and
    kill the worker, leaving every answer "unverifiable". A stub main module while the
    process starts (its preparation data is built then) makes the child skip that step.
    """
    main = sys.modules.get("__main__")
    if main is None or not (getattr(main, "__file__", None) or getattr(main, "__spec__", None)):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _Worker:
    def __init__(self, ctx: Any, timeout_s: float, item_fn: Callable | None):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, timeout_s, item_fn), daemon=True)
        with _main_hidden():
            self.proc.start()
        child.close()
        self.pending: deque[int] = deque()  # indices sent, results not yet back
        self.deadline: float | None = None  # for the item at pending[0]
        self.ready = False  # True once the worker has sent _READY

    def send(
        self, chunk: list[tuple[int, str, str]], hard_timeout: float, startup_grace: float
    ) -> None:
        self.pending.extend(idx for idx, _, _ in chunk)
        self.conn.send(chunk)
        # Until the worker reports ready, allow for its start-up (imports).
        self.deadline = time.monotonic() + (hard_timeout if self.ready else startup_grace)

    def kill(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except Exception:
            pass
        self.proc.join(timeout=1)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        try:
            self.conn.close()
        except Exception:
            pass


def verify_many(
    pairs: list[tuple[str, str]],
    *,
    timeout_s: float = 5.0,
    workers: int = 2,
    chunk_size: int | None = None,
    _item_fn: Callable[[str, str], tuple[Outcome, str]] | None = None,
) -> list[tuple[Outcome, str]]:
    """Verify ``(response, reference)`` pairs in a pool of worker processes.

    Results come back in input order. Each item gets *timeout_s* seconds: a
    soft ``SIGALRM`` timer inside the worker first, then -- for computations
    stuck in C code -- the parent kills the worker at ``timeout_s`` plus a
    small grace, reports the item ``("unverifiable", "timeout")``, starts a
    replacement worker and re-queues the rest of that worker's chunk. A worker
    that dies gives ``("unverifiable", "worker crashed")`` for its current
    item. One set of workers serves the whole call; items are sent in chunks.

    ``_item_fn`` (a picklable top-level function) replaces the per-item check;
    it exists for tests.
    """
    n = len(pairs)
    results: list[tuple[Outcome, str] | None] = [None] * n
    if n == 0:
        return []
    workers = max(1, min(int(workers), n))
    if chunk_size is None:
        chunk_size = max(1, min(64, math.ceil(n / (workers * 4))))
    grace = max(0.5, 0.25 * timeout_s)
    hard_timeout = timeout_s + grace
    startup_grace = 60.0  # first import of sympy in a cold spawn can be slow

    queue: deque[list[tuple[int, str, str]]] = deque()
    for start in range(0, n, chunk_size):
        queue.append(
            [
                (i, str(pairs[i][0] or ""), str(pairs[i][1] or ""))
                for i in range(start, min(n, start + chunk_size))
            ]
        )

    ctx = _mp_context()
    pool: list[_Worker] = [_Worker(ctx, timeout_s, _item_fn) for _ in range(workers)]
    remaining = n

    def requeue_rest(w: _Worker) -> None:
        rest = [(i, str(pairs[i][0] or ""), str(pairs[i][1] or "")) for i in w.pending]
        w.pending.clear()
        if rest:
            queue.appendleft(rest)

    startup_failures = 0

    def replace(w: _Worker, reason: str) -> _Worker:
        nonlocal remaining, startup_failures
        if not w.ready and reason == "worker crashed":
            # Died before answering anything: likely a start-up failure (e.g. a
            # script without the ``if __name__ == "__main__":`` guard that
            # spawn/forkserver need). Retry a few times, then give up loudly
            # rather than marking the whole batch unverifiable.
            startup_failures += 1
            if startup_failures >= 3:
                w.kill()
                raise RuntimeError(
                    "verify_many: worker processes keep dying at start-up "
                    f"(exit code {w.proc.exitcode}); is the calling script missing "
                    "an `if __name__ == '__main__':` guard?"
                )
        else:
            startup_failures = 0
        if w.pending:
            bad = w.pending.popleft()
            if results[bad] is None:
                results[bad] = ("unverifiable", reason)
                remaining -= 1
        requeue_rest(w)
        w.kill()
        return _Worker(ctx, timeout_s, _item_fn)

    try:
        while remaining > 0:
            # Feed idle workers.
            for k, w in enumerate(pool):
                if not w.pending and queue:
                    if w.ready and not w.proc.is_alive():
                        # Died while idle: no item of ours was running; just replace it.
                        w.kill()
                        pool[k] = w = _Worker(ctx, timeout_s, _item_fn)
                    try:
                        w.send(queue.popleft(), hard_timeout, startup_grace)
                    except (BrokenPipeError, OSError):
                        pool[k] = replace(w, "worker crashed")
            busy = [w for w in pool if w.pending]
            if not busy:
                if queue:
                    continue
                break  # nothing in flight and nothing queued: should not happen
            now = time.monotonic()
            nearest = min(w.deadline or now for w in busy)
            ready = _wait_connections([w.conn for w in busy], timeout=max(0.0, nearest - now))
            by_conn = {id(w.conn): w for w in busy}
            for conn in ready:
                w = by_conn[id(conn)]
                try:
                    # Drain everything already available from this worker.
                    while True:
                        idx, outcome = conn.recv()
                        if idx == -1:  # start-up finished: clock the current item from now
                            w.ready = True
                            w.deadline = time.monotonic() + hard_timeout
                            if not conn.poll():
                                break
                            continue
                        if w.pending and w.pending[0] == idx:
                            w.pending.popleft()
                        elif idx in w.pending:
                            w.pending.remove(idx)
                        if results[idx] is None:
                            results[idx] = (outcome[0], outcome[1])
                            remaining -= 1
                        w.deadline = time.monotonic() + hard_timeout
                        if not w.pending or not conn.poll():
                            break
                except (EOFError, OSError, ConnectionResetError):
                    pool[pool.index(w)] = replace(w, "worker crashed")
            # Enforce deadlines.
            now = time.monotonic()
            for k, w in enumerate(pool):
                if w.pending and w.deadline is not None and now >= w.deadline:
                    pool[k] = replace(w, "timeout")
    finally:
        for w in pool:
            w.stop()

    return [r if r is not None else ("unverifiable", "not run") for r in results]
