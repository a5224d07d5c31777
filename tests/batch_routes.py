"""OpenAI's Batch API routes for the loopback provider server (``tests/provider_server.py``),
written from OpenAI's API reference (Files, Batches, the batch input and output line formats):

* ``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files`` (``?purpose=``),
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``;
* ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window`` ``24h``,
  ``metadata``), ``GET /v1/batches`` (``?limit=&after=``), ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``.

A batch moves one status each time it is read (``validating`` → ``in_progress`` →
``finalizing`` → ``completed``), so a test polls it through its life without sleeping. When
it completes every input line is answered by the server's synchronous rules (the same
answer a ``/v1/chat/completions`` call gets) into an output file, and per-item failures into
an error file. Both files list their lines in reverse input order: the reference promises no
order, so neither may a client.

Faults, beyond the server's per-request ones (``fail_next``: 429, 5xx, dropped connections on
upload, create or poll): ``[[batch:error]]`` in an item's last user message makes that item
fail (an error line with ``error.code``); on :class:`OpenAIBatches`, ``expire_next`` (the next
batch to complete expires after answering only ``expire_after`` items), ``stuck`` (batches stay
``finalizing`` while set), ``truncate_output`` (the next output file loses the end of its last
line). Validation follows the reference: malformed JSON, a missing or repeated ``custom_id``, a
``url`` that is not the batch's ``endpoint``, more than ``MAX_REQUESTS`` lines or ``MAX_BYTES``
make the batch ``failed`` with ``errors.data`` naming the line.

``billed`` counts the items answered successfully (what a provider would charge for), so a
test can check that no request is paid twice.
"""

from __future__ import annotations

import email.parser
import email.policy
import secrets
import time
from typing import Any, Callable

import orjson

MAX_REQUESTS = 50_000  # per batch, as OpenAI documents
MAX_BYTES = 200 * 1024 * 1024  # per input file
ENDPOINTS = ("/v1/chat/completions",)
_LIFE = ("validating", "in_progress", "finalizing", "completed")


def _now() -> int:
    return int(time.time())


class BatchError(Exception):
    """An HTTP error for a batch route: status, message, OpenAI's ``param`` and ``code``."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class OpenAIBatches:
    """The files and batches one server holds. ``answer(body) -> dict`` is the server's
    synchronous chat-completion rule (a completion object for a request body)."""

    def __init__(self, answer: Callable[[dict], dict]) -> None:
        self.answer = answer
        self.files: dict[str, dict[str, Any]] = {}
        self.content: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.billed = 0  # items answered successfully, over every batch
        self.created = 0  # batches created
        self.expire_next = False
        self.expire_after = 0
        self.stuck = False
        self.truncate_output = False

    def reset(self) -> None:
        self.__init__(self.answer)  # type: ignore[misc]

    # ----------------------------------------------------------------- routing
    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               raw: bytes) -> tuple[int, Any]:
        """``(status, JSON object or bytes)`` for one request to a files or batches route."""
        parts = [p for p in path.split("/") if p][1:]  # after "v1"
        if parts[:1] == ["files"]:
            if len(parts) == 1 and method == "POST":
                return 200, self._upload(headers.get("content-type", ""), raw)
            if len(parts) == 1 and method == "GET":
                data = [f for f in self.files.values()
                        if query.get("purpose") in (None, f["purpose"])]
                return 200, {"object": "list", "data": data, "has_more": False}
            if len(parts) >= 2:
                f = self._file(parts[1])
                if len(parts) == 2 and method == "GET":
                    return 200, f
                if len(parts) == 2 and method == "DELETE":
                    del self.files[f["id"]]
                    self.content.pop(f["id"], None)
                    return 200, {"id": f["id"], "object": "file", "deleted": True}
                if parts[2:] == ["content"] and method == "GET":
                    return 200, self.content[f["id"]]
        if parts[:1] == ["batches"]:
            if len(parts) == 1 and method == "POST":
                return 200, self._create(raw)
            if len(parts) == 1 and method == "GET":
                return 200, self._list(query)
            if len(parts) == 2 and method == "GET":
                return 200, self._advance(self._batch(parts[1]))
            if parts[2:] == ["cancel"] and method == "POST":
                return 200, self._cancel(self._batch(parts[1]))
        raise BatchError(404, f"Unknown request URL: {method} {path}.", code="unknown_url")

    # ------------------------------------------------------------------- files
    def _upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        if not content_type.startswith("multipart/form-data"):
            raise BatchError(400, "Expected multipart/form-data with purpose and file.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields:
            raise BatchError(400, "Missing file.", param="file")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose not in ("batch", "fine-tune", "assistants", "user_data"):
            raise BatchError(400, f"Invalid purpose {purpose!r}.", param="purpose")
        name, data = fields["file"]
        fid = "file-" + secrets.token_hex(12)
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data),
                           "created_at": _now(), "filename": name or "upload",
                           "purpose": purpose, "status": "processed"}
        self.content[fid] = data
        return self.files[fid]

    def _file(self, fid: str) -> dict[str, Any]:
        if fid not in self.files:
            raise BatchError(404, f"No such File object: {fid}", param="id")
        return self.files[fid]

    def _output(self, lines: list[dict[str, Any]], batch_id: str, kind: str) -> str | None:
        if not lines:
            return None
        data = b"".join(orjson.dumps(x) + b"\n" for x in reversed(lines))
        if kind == "output" and self.truncate_output:
            self.truncate_output = False
            data = data[:-9]  # the last line loses its end (and its newline)
        fid = "file-" + secrets.token_hex(12)
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data),
                           "created_at": _now(), "filename": f"{batch_id}_{kind}.jsonl",
                           "purpose": "batch_output", "status": "processed"}
        self.content[fid] = data
        return fid

    # ----------------------------------------------------------------- batches
    def _create(self, raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BatchError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise BatchError(400, "The body must be a JSON object.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(key), str):
                raise BatchError(400, f"Missing required parameter: '{key}'.", param=key)
        if body["endpoint"] not in ENDPOINTS:
            raise BatchError(400, f"Invalid endpoint {body['endpoint']!r}.", param="endpoint")
        if body["completion_window"] != "24h":
            raise BatchError(400, "completion_window must be 24h.", param="completion_window")
        f = self._file(body["input_file_id"])
        if f["purpose"] != "batch":
            raise BatchError(400, "The input file's purpose must be batch.",
                             param="input_file_id")
        meta = body.get("metadata")
        if meta is not None and (not isinstance(meta, dict) or len(meta) > 16 or any(
                not isinstance(v, str) or len(v) > 512 for v in meta.values())):
            raise BatchError(400, "metadata: at most 16 string values of 512 characters.",
                             param="metadata")
        bid = "batch_" + secrets.token_hex(12)
        now = _now()
        self.created += 1
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": f["id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + 86_400, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": meta}
        return self.batches[bid]

    def _batch(self, bid: str) -> dict[str, Any]:
        if bid not in self.batches:
            raise BatchError(404, f"No batch found with id '{bid}'.", param="batch_id")
        return self.batches[bid]

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        every = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        if "after" in query:
            ids = [b["id"] for b in every]
            every = every[ids.index(query["after"]) + 1:] if query["after"] in ids else []
        limit = int(query.get("limit", 20))
        page = every[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(every) > limit}

    def _cancel(self, b: dict[str, Any]) -> dict[str, Any]:
        if b["status"] in ("validating", "in_progress", "finalizing"):
            b["status"], b["cancelling_at"] = "cancelling", _now()
        elif b["status"] != "cancelling":
            raise BatchError(409, f"Cannot cancel a batch with status '{b['status']}'.")
        return b

    def _advance(self, b: dict[str, Any]) -> dict[str, Any]:
        """One step of the batch's life per read."""
        now = _now()
        if b["status"] == "cancelling":
            self._finish(b, "cancelled", limit=0)
        elif b["status"] == "validating":
            errors, total = self._validate(b)
            if errors:
                b.update(status="failed", failed_at=now,
                         errors={"object": "list", "data": errors})
            else:
                b["request_counts"]["total"] = total
                b.update(status="in_progress", in_progress_at=now)
        elif b["status"] == "in_progress":
            b.update(status="finalizing", finalizing_at=now)
        elif b["status"] == "finalizing" and not self.stuck:
            if self.expire_next:
                self.expire_next = False
                self._finish(b, "expired", limit=self.expire_after)
            else:
                self._finish(b, "completed", limit=None)
        return b

    def _lines(self, b: dict[str, Any]) -> list[tuple[int, Any]]:
        data = self.content[b["input_file_id"]]
        return [(i, line) for i, line in enumerate(data.split(b"\n"), 1) if line.strip()]

    def _validate(self, b: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        data = self.content[b["input_file_id"]]
        if len(data) > MAX_BYTES:
            return [{"code": "file_too_large", "message": "The input file exceeds 200 MB.",
                     "param": None, "line": None}], 0
        lines, errors, seen = self._lines(b), [], set()
        if len(lines) > MAX_REQUESTS:
            return [{"code": "too_many_requests_in_batch", "message": f"At most "
                     f"{MAX_REQUESTS} requests per batch.", "param": None, "line": None}], 0
        for n, raw in lines:
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "message": "This line is not "
                               "parseable as valid JSON.", "param": None, "line": n})
                continue
            cid = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(cid, str) or not cid:
                errors.append({"code": "missing_required_parameter", "message": "Missing "
                               "custom_id.", "param": "custom_id", "line": n})
            elif cid in seen:
                errors.append({"code": "duplicate_custom_id", "message": "The custom_id "
                               f"{cid!r} is used more than once.", "param": "custom_id",
                               "line": n})
            seen.add(cid)
            if isinstance(item, dict) and item.get("url") != b["endpoint"]:
                errors.append({"code": "mismatched_url", "message": "The url must match the "
                               "batch's endpoint.", "param": "url", "line": n})
        return errors, len(lines)

    def _finish(self, b: dict[str, Any], status: str, limit: int | None) -> None:
        """Answer the items (all, or the first ``limit``), write the files, end the batch."""
        out, err = [], []
        for n, raw in self._lines(b):
            if limit is not None and len(out) + len(err) >= limit:
                break
            item = orjson.loads(raw)
            rid = "batch_req_" + secrets.token_hex(8)
            body = item.get("body") or {}
            if "[[batch:error]]" in orjson.dumps(body.get("messages") or []).decode():
                err.append({"id": rid, "custom_id": item["custom_id"], "response": None,
                            "error": {"code": "server_error",
                                      "message": "The item failed (a fault the test asked for)."}})
                continue
            out.append({"id": rid, "custom_id": item["custom_id"], "error": None,
                        "response": {"status_code": 200, "request_id": rid,
                                     "body": self.answer(body)}})
        self.billed += len(out)
        b["request_counts"].update(completed=len(out), failed=len(err))
        b["output_file_id"] = self._output(out, b["id"], "output")
        b["error_file_id"] = self._output(err, b["id"], "error")
        b["status"] = status
        b[{"completed": "completed_at", "expired": "expired_at",
           "cancelled": "cancelled_at"}[status]] = _now()
