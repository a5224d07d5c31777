"""Anthropic's Message Batches, as the API reference spells them: the items travel in the
create call (``POST /v1/messages/batches``, ``{"requests": [{"custom_id", "params"}]}``), the
batch is polled (``GET /v1/messages/batches/{id}``) until ``processing_status`` is ``ended``,
and its ``results_url`` gives one JSONL line per item (``succeeded``, ``errored``,
``canceled``, ``expired``). ``POST /v1/messages/batches/{id}/cancel`` stops one.

A batch here has no metadata and no uploaded file, so a crash after the create call was sent
and before its id was recorded is recovered from the listing: a batch created after the
runner recorded its intent, holding as many requests, and not one the ledger already knows.
Its results are checked against the request hashes before any is used (``custom_id`` is the
hash), so a wrong guess costs a resubmission, never a wrong answer.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson

from synth.errors import TeacherError
from synth.teachers.batches import (
    BatchHttp,
    BatchLimits,
    BatchState,
    ItemResult,
    jsonl_lines,
    obj,
    parse_time,
)

__all__ = ["AnthropicBatchWire", "LIMITS"]

LIMITS = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)
_PATH = "/v1/messages/batches"
#: An error that the same request would meet again: not worth a resubmission.
_FINAL = {"invalid_request_error", "authentication_error", "permission_error",
          "not_found_error", "request_too_large"}
#: Clock skew allowed between this machine and the provider when matching a lost batch.
_SKEW_S = 120.0
_BATCH = ("id", "processing_status")  # what a batch object must hold


class AnthropicBatchWire:
    provider = "anthropic"
    limits = LIMITS
    uploads = False
    exact_recovery = False

    def __init__(self, decode: Callable[[Any], Any]):
        self.decode = decode

    def item(self, custom_id: str, body: bytes) -> bytes:
        return b'{"custom_id":"' + custom_id.encode() + b'","params":' + body + b"}"

    def item_overhead(self) -> int:
        return 1  # its comma

    async def upload(self, http: BatchHttp, key: str, items: list[bytes]) -> str:
        raise NotImplementedError("Message Batches take their requests in the create call")

    async def find_upload(self, http: BatchHttp, key: str) -> str | None:
        return None

    async def create(self, http: BatchHttp, key: str, file_id: str | None,
                     items: list[bytes]) -> BatchState:
        body = b'{"requests":[' + b",".join(items) + b"]}"
        return self._state(await http.call("POST", _PATH, body=body, expect=_BATCH,
                                           what="create the message batch", retry=False))

    async def find_batch(self, http: BatchHttp, key: str, *, file_id: str | None,
                         since: float, n: int, known: set[str]) -> str | None:
        """A batch not in ``known`` holding ``n`` requests, created after ``since`` (the
        runner's record of its intent): the closest after it, else the closest within the
        clock skew before it. A guess the runner checks against the results."""
        after, found = None, []
        while True:
            q = f"{_PATH}?limit=100" + (f"&after_id={after}" if after else "")
            page = await http.call("GET", q, what="list message batches", expect=("data",))
            data = [b for b in page["data"] or [] if isinstance(b, dict) and b.get("id")]
            old = False
            for b in data:
                created = parse_time(b.get("created_at")) or 0.0
                if created < since - _SKEW_S:
                    old = True  # newest first: nothing older can be ours
                    break
                counts = obj(b.get("request_counts"))
                if b["id"] not in known and sum(int(v or 0) for v in counts.values()) == n:
                    found.append((created < since, abs(created - since), str(b["id"])))
            if old or not page.get("has_more") or not data:
                return min(found)[2] if found else None
            after = page.get("last_id") or data[-1]["id"]

    async def get(self, http: BatchHttp, batch_id: str) -> BatchState:
        return self._state(await http.call("GET", f"{_PATH}/{batch_id}", expect=_BATCH,
                                           what=f"poll message batch {batch_id}"))

    def _state(self, b: dict[str, Any]) -> BatchState:
        status = str(b.get("processing_status"))
        c = obj(b.get("request_counts"))
        failed = sum(int(c.get(k) or 0) for k in ("errored", "canceled", "expired"))
        done = int(c.get("succeeded") or 0)
        total = done + failed + int(c.get("processing") or 0)
        phase = "ended" if status == "ended" else "running"
        return BatchState(id=str(b["id"]), status=status, phase=phase, total=total,
                          done=done, failed=failed, created_at=parse_time(b.get("created_at")),
                          raw=b)

    async def results(self, http: BatchHttp, state: BatchState
                      ) -> tuple[list[ItemResult], int]:
        url = state.raw.get("results_url") or f"{_PATH}/{state.id}/results"
        data = await http.call("GET", url, parse=False,
                               what=f"download the results of {state.id}")
        lines, unreadable = jsonl_lines(data)
        out: list[ItemResult] = []
        for line in lines:
            cid, res = line["custom_id"], obj(line.get("result"))
            kind = res.get("type")
            if kind == "succeeded":
                try:
                    out.append(ItemResult(cid, completion=self.decode(res.get("message"))))
                except TeacherError as e:
                    out.append(ItemResult(cid, reason=e.reason, message=str(e)))
            elif kind == "errored":
                outer = obj(res.get("error"))
                err = obj(outer.get("error")) or outer
                etype = str(err.get("type") or "error")
                out.append(ItemResult(cid, reason="batch_item_error",
                                      message=f"{etype}: {err.get('message') or ''}".strip(),
                                      retryable=etype not in _FINAL))
            elif kind in ("canceled", "expired"):
                word = "cancelled" if kind == "canceled" else "expired"
                out.append(ItemResult(cid, reason=f"batch_{word}",
                                      message=f"the item was {kind} before it was answered"))
            else:
                out.append(ItemResult(cid, reason="malformed", message="result of unknown "
                                      f"type {orjson.dumps(kind).decode()}"))
        return out, unreadable

    async def cancel(self, http: BatchHttp, batch_id: str) -> BatchState:
        return self._state(await http.call("POST", f"{_PATH}/{batch_id}/cancel",
                                           expect=_BATCH,
                                           what=f"cancel message batch {batch_id}"))
