"""OpenAI's Batch API, as the API reference spells it (and gateways such as LiteLLM's proxy
repeat it): the items go up as a JSONL file (``POST /files``, purpose ``batch``), a batch is
created on that file (``POST /batches``), polled (``GET /batches/{id}``), and its output and
error files are read (``GET /files/{id}/content``). ``POST /batches/{id}/cancel`` stops one.

A crash can fall between any two of those calls, so both the upload and the batch carry the
runner's key where the API keeps it: the file's name (``synth-KEY.jsonl``) and the batch's
``metadata.synth_batch``. Listing files or batches finds them again.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import orjson

from synth.errors import RetryableError, TeacherError
from synth.teachers.batches import (
    BatchHttp,
    BatchLimits,
    BatchState,
    ItemResult,
    jsonl_lines,
    multipart,
    obj,
    pages,
    parse_time,
)

__all__ = ["OpenAIBatchWire", "ENDPOINT", "LIMITS"]

log = logging.getLogger("synth")

ENDPOINT = "/v1/chat/completions"
LIMITS = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
_RUNNING = {"validating", "in_progress", "finalizing", "cancelling"}
_ENDED = {"completed", "expired", "cancelled"}
_BATCH = ("id", "status")  # what a batch object must hold
_WARNED: set[str] = set()
#: How long listings are searched back for a lost upload or batch (they come newest first).
_LOOKBACK_S = 48 * 3600


def _filename(key: str) -> str:
    return f"synth-{key}.jsonl"


class OpenAIBatchWire:
    provider = "openai"
    limits = LIMITS
    uploads = True
    exact_recovery = True

    def __init__(self, decode: Callable[[Any], Any]):
        self.decode = decode

    def item(self, custom_id: str, body: bytes) -> bytes:
        return (b'{"custom_id":"' + custom_id.encode() + b'","method":"POST","url":"'
                + ENDPOINT.encode() + b'","body":' + body + b"}")

    def item_overhead(self) -> int:
        return 1  # its newline

    async def upload(self, http: BatchHttp, key: str, items: list[bytes]) -> str:
        body, ctype = multipart({"purpose": "batch"}, _filename(key),
                                 b"\n".join(items) + b"\n")
        f = await http.call("POST", "/files", body=body, headers={"Content-Type": ctype},
                            what="upload the batch input file", expect=("id",))
        return str(f["id"])

    async def find_upload(self, http: BatchHttp, key: str) -> str | None:
        name = _filename(key)
        async for f in pages(http, "/files?purpose=batch", "list batch files"):
            if f.get("filename") == name:
                return str(f["id"])
        return None

    async def create(self, http: BatchHttp, key: str, file_id: str | None,
                     items: list[bytes]) -> BatchState:
        body = orjson.dumps({"input_file_id": file_id, "endpoint": ENDPOINT,
                             "completion_window": "24h", "metadata": {"synth_batch": key}})
        return self._state(await http.call("POST", "/batches", body=body, expect=_BATCH,
                                           what="create the batch", retry=False))

    async def find_batch(self, http: BatchHttp, key: str, *, file_id: str | None,
                         since: float, n: int, known: set[str]) -> str | None:
        async for b in pages(http, "/batches", "list batches"):
            meta = obj(b.get("metadata"))
            if meta.get("synth_batch") == key or (file_id and b.get("input_file_id") == file_id):
                return str(b["id"])
            created = parse_time(b.get("created_at"))
            if created is not None and created < since - _LOOKBACK_S:
                return None
        return None

    async def get(self, http: BatchHttp, batch_id: str) -> BatchState:
        return self._state(await http.call("GET", f"/batches/{batch_id}", expect=_BATCH,
                                           what=f"poll batch {batch_id}"))

    def _state(self, b: dict[str, Any]) -> BatchState:
        status = str(b.get("status"))
        counts = obj(b.get("request_counts"))
        errors = []
        for e in obj(b.get("errors")).get("data") or []:
            e = obj(e)
            where = f"line {e['line']}: " if e.get("line") is not None else ""
            errors.append(f"{where}{e.get('code') or 'error'}: {e.get('message') or ''}".strip())
        if status == "failed":
            phase = "failed"
        elif status in _ENDED:
            phase = "ended"
        else:  # validating, in_progress, finalizing, cancelling, or a word we do not know
            phase = "running"
            if status not in _RUNNING and status not in _WARNED:
                _WARNED.add(status)
                log.warning("batch %s: unknown status %r, taken as still running",
                            b.get("id"), status)
        return BatchState(id=str(b["id"]), status=status, phase=phase,
                          total=counts.get("total"), done=counts.get("completed") or 0,
                          failed=counts.get("failed") or 0, errors=errors,
                          created_at=parse_time(b.get("created_at")), raw=b)

    async def _content(self, http: BatchHttp, file_id: str | None) -> bytes:
        if not file_id:
            return b""
        return await http.call("GET", f"/files/{file_id}/content", parse=False,
                               what=f"download batch file {file_id}")

    async def results(self, http: BatchHttp, state: BatchState
                      ) -> tuple[list[ItemResult], int]:
        from synth.teachers.http import error_for_status

        out: list[ItemResult] = []
        unreadable = 0
        for file_key in ("output_file_id", "error_file_id"):
            lines, bad = jsonl_lines(await self._content(http, state.raw.get(file_key)))
            unreadable += bad
            for line in lines:
                cid = line["custom_id"]
                resp = obj(line.get("response"))
                code = resp.get("status_code")
                if code == 200:
                    try:
                        out.append(ItemResult(cid, completion=self.decode(resp.get("body"))))
                    except TeacherError as e:
                        out.append(ItemResult(cid, reason=e.reason, message=str(e)))
                    continue
                if isinstance(code, int) and not isinstance(code, bool):
                    body = orjson.dumps(resp.get("body")) if resp.get("body") else b""
                    err = error_for_status(code, {}, _message(body))
                    out.append(ItemResult(cid, reason=err.reason, message=str(err),
                                          retryable=isinstance(err, RetryableError)))
                    continue
                e = obj(line.get("error"))
                code_s = str(e.get("code") or "error")
                reason = {"batch_expired": "batch_expired",
                          "batch_cancelled": "batch_cancelled"}.get(code_s, "batch_item_error")
                out.append(ItemResult(cid, reason=reason,
                                      message=f"{code_s}: {e.get('message') or ''}".strip()))
        return out, unreadable

    async def cancel(self, http: BatchHttp, batch_id: str) -> BatchState:
        return self._state(await http.call("POST", f"/batches/{batch_id}/cancel",
                                           expect=_BATCH, what=f"cancel batch {batch_id}"))


def _message(body: bytes) -> str:
    try:
        err = orjson.loads(body).get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or "")[:300]
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return body[:200].decode("utf-8", "replace")
