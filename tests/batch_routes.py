"""OpenAI's Batch API and Anthropic's Message Batches API for the loopback provider server
(``tests/provider_server.py``), each written from its provider's API reference.

:class:`OpenAIBatches` (``server.batches``), from OpenAI's reference (Files, Batches, the batch
input and output line formats):

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
fail (an error line with ``error.code``), ``[[batch:error*N]]`` only its first N times (see
:func:`item_fails`); on :class:`OpenAIBatches`, ``refuse_next`` (the next batch fails
validation with these ``errors.data`` entries), ``expire_next`` (the next
batch to complete expires after answering only ``expire_after`` items), ``stuck`` (batches stay
``finalizing`` while set), ``truncate_output`` (the next output file loses the end of its last
line). Validation follows the reference: malformed JSON, a missing or repeated ``custom_id``, a
``url`` that is not the batch's ``endpoint``, more than ``MAX_REQUESTS`` lines or ``MAX_BYTES``
make the batch ``failed`` with ``errors.data`` naming the line.

``billed`` counts the items answered successfully (what a provider would charge for), so a
test can check that no request is paid twice. ``ProviderServer.batch_hook(method, route)``,
when set, runs after a batch route has done its work and before its answer is sent (the
crash drills kill the client there).

:class:`AnthropicBatches` (``server.message_batches``), from Anthropic's Message Batches
reference, behind the ``/v1/messages`` route's auth, ``anthropic-version`` check and faults:
``POST /v1/messages/batches`` (``requests``: ``custom_id`` + ``params``), ``GET`` (list: ``limit``,
``before_id``, ``after_id``; newest first), ``GET``/``DELETE /v1/messages/batches/{id}`` (delete:
ended batches only), ``POST .../{id}/cancel`` and ``GET .../{id}/results`` (the batch's
``results_url``, JSONL, once it has ended). Create refuses (400) a missing or empty ``requests``,
a ``custom_id`` not matching ``^[a-zA-Z0-9_-]{1,64}$`` or used twice, a ``params`` that is not an
object, more than ``max_requests`` items, and (413) a body over ``max_bytes``; the contents of
``params`` are checked as ``/v1/messages`` checks a body, later: a refused item is ``errored``.
Created ``in_progress``, the first read answers the first half of the items (out of sight:
counts move only at the end), the second ends the batch with every item answered by the
synchronous rule. The same knobs as above: ``[[batch:error]]`` (``api_error``) or
``[[batch:overloaded]]`` (``overloaded_error``) in an item's last user message makes it
``errored``; ``expire_next`` + ``expire_after``, ``stuck`` (stays ``in_progress``),
``truncate_output`` (the next results body), results in reverse input order, ``billed``
(succeeded items) and ``created``. A cancel makes it ``canceling``; its next read ends it, the
unanswered items ``canceled``.
"""

from __future__ import annotations

import datetime as _dt
import email.parser
import email.policy
import re
import secrets
import time
from typing import Any, Callable

import orjson

MAX_REQUESTS = 50_000  # per batch, as OpenAI documents
MAX_BYTES = 200 * 1024 * 1024  # per input file
ENDPOINTS = ("/v1/chat/completions",)
_LIFE = ("validating", "in_progress", "finalizing", "completed")


_ITEM_ERROR = re.compile(r"\[\[batch:error(?:\*(\d+))?\]\]")


def item_fails(text: str, seen: dict[str, int]) -> bool:
    """``[[batch:error]]`` in ``text``: the item fails every time; ``[[batch:error*N]]``: the
    first N times an item with this text is answered (counted in ``seen``), then succeeds."""
    m = _ITEM_ERROR.search(text)
    if m is None:
        return False
    if m.group(1) is None:
        return True
    seen[text] = seen.get(text, 0) + 1
    return seen[text] <= int(m.group(1))


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
        self.refuse_next: list[dict[str, Any]] | None = None  # the next batch's errors.data
        self.seen: dict[str, int] = {}  # [[batch:error*N]] counts, by item text

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
            if self.refuse_next is not None:
                errors, self.refuse_next = [
                    {"param": None, "line": None, **e} for e in self.refuse_next], None
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
            if item_fails(orjson.dumps(body.get("messages") or []).decode(), self.seen):
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


# ------------------------------------------------------------- Anthropic's Message Batches

MESSAGE_BATCHES_PATH = "/v1/messages/batches"
MESSAGE_BATCH_MAX_REQUESTS = 100_000  # per batch, as Anthropic documents
MESSAGE_BATCH_MAX_BYTES = 256 * 1024 * 1024  # per create request body
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ITEM_FAULTS = {  # marker in an item's last user message -> its errored result's error
    "[[batch:error]]": ("api_error", "Internal server error."),
    "[[batch:overloaded]]": ("overloaded_error", "Overloaded"),
}


def _rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(
        timespec="microseconds").replace("+00:00", "Z")


def _last_user_content(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return orjson.dumps(msg.get("content")).decode()
    return ""


class AnthropicBatches:
    """The message batches one server holds. ``answer(params) -> dict`` is the server's
    synchronous ``/v1/messages`` rule (a message object for valid params); ``check(params)``
    is None for params that route accepts, else the message of the 400 it answers;
    ``base_url()`` is the server's URL, for ``results_url``."""

    def __init__(self, answer: Callable[[dict], dict], check: Callable[[Any], str | None],
                 base_url: Callable[[], str]) -> None:
        self.answer, self.check, self.base_url = answer, check, base_url
        self.batches: dict[str, dict[str, Any]] = {}  # id -> message_batch, oldest first
        self.items: dict[str, list[dict[str, Any]]] = {}  # id -> [{custom_id, params, result}]
        self.reads: dict[str, int] = {}  # id -> reads that moved it on
        self.billed = 0  # succeeded items, over every batch
        self.created = 0  # batches created
        self.expire_next = False
        self.expire_after = 0
        self.stuck = False
        self.truncate_output = False
        self.seen: dict[str, int] = {}  # [[batch:error*N]] counts, by item text
        self.max_requests = MESSAGE_BATCH_MAX_REQUESTS
        self.max_bytes = MESSAGE_BATCH_MAX_BYTES

    def reset(self) -> None:
        self.__init__(self.answer, self.check, self.base_url)  # type: ignore[misc]

    # ----------------------------------------------------------------- routing
    def handle(self, method: str, path: str, query: dict[str, str],
               raw: bytes) -> tuple[int, Any]:
        """``(status, JSON object or bytes)`` for one request under ``/v1/messages/batches``."""
        parts = [p for p in path[len(MESSAGE_BATCHES_PATH):].split("/") if p]
        if not parts and method == "POST":
            return 200, self._create(raw)
        if not parts and method == "GET":
            return 200, self._list(query)
        if len(parts) == 1 and method == "GET":
            return 200, self._advance(self._batch(parts[0]))
        if len(parts) == 1 and method == "DELETE":
            return 200, self._delete(self._batch(parts[0]))
        if parts[1:] == ["cancel"] and method == "POST":
            return 200, self._cancel(self._batch(parts[0]))
        if parts[1:] == ["results"] and method == "GET":
            return 200, self._results(self._batch(parts[0]))
        raise BatchError(404, f"Unknown request URL: {method} {path}.")

    def _batch(self, bid: str) -> dict[str, Any]:
        if bid not in self.batches:
            raise BatchError(404, f"message_batch not found: {bid}")
        return self.batches[bid]

    # ------------------------------------------------------------------ create
    def _create(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > self.max_bytes:
            raise BatchError(413, f"Request exceeds the maximum allowed number of bytes "
                                  f"({self.max_bytes}) for a message batch.")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BatchError(400, "We could not parse the JSON body of your request.") from None
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list):
            raise BatchError(400, "requests: Field required" if reqs is None else
                             "requests: Input should be a valid list")
        if not reqs:
            raise BatchError(400, "requests: List should have at least 1 item after validation, "
                                  "not 0")
        if len(reqs) > self.max_requests:
            raise BatchError(400, f"requests: List should have at most {self.max_requests} items "
                                  f"after validation, not {len(reqs)}")
        seen: set[str] = set()
        for i, r in enumerate(reqs):
            if not isinstance(r, dict):
                raise BatchError(400, f"requests.{i}: Input should be a valid dictionary")
            cid = r.get("custom_id")
            if not isinstance(cid, str) or not _CUSTOM_ID.fullmatch(cid):
                raise BatchError(400, f"requests.{i}.custom_id: String should match pattern "
                                      "'^[a-zA-Z0-9_-]{1,64}$'")
            if cid in seen:
                raise BatchError(400, f"Duplicate custom_id {cid!r} at requests.{i}: each "
                                      "request's custom_id must be unique within the batch.")
            seen.add(cid)
            if not isinstance(r.get("params"), dict):  # its contents are checked later
                raise BatchError(400, f"requests.{i}.params: " + (
                    "Field required" if r.get("params") is None else
                    "Input should be a valid dictionary"))
        bid = "msgbatch_01" + secrets.token_hex(11)
        now = time.time()
        self.created += 1
        self.items[bid] = [{"custom_id": r["custom_id"], "params": r["params"], "result": None}
                           for r in reqs]
        self.reads[bid] = 0
        self.batches[bid] = {
            "id": bid, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0,
                               "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": _rfc3339(now), "expires_at": _rfc3339(now + 86_400),
            "archived_at": None, "cancel_initiated_at": None, "results_url": None}
        return self.batches[bid]

    # -------------------------------------------------------------- list, etc.
    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", 20))
        except ValueError:
            raise BatchError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise BatchError(400, "limit: Input should be between 1 and 1000")
        if "before_id" in query and "after_id" in query:
            raise BatchError(400, "Only one of before_id and after_id may be given.")
        every = list(reversed(self.batches.values()))  # newest first
        ids = [b["id"] for b in every]
        if "after_id" in query:
            rest = every[ids.index(query["after_id"]) + 1:] if query["after_id"] in ids else []
            page, more = rest[:limit], len(rest) > limit
        elif "before_id" in query:
            rest = every[:ids.index(query["before_id"])] if query["before_id"] in ids else []
            page, more = rest[-limit:], len(rest) > limit
        else:
            page, more = every[:limit], len(every) > limit
        return {"data": page, "has_more": more, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None}

    def _cancel(self, b: dict[str, Any]) -> dict[str, Any]:
        if b["processing_status"] == "ended":
            raise BatchError(400, f"Message batch {b['id']} has ended and can no longer be "
                                  "canceled.")
        if b["processing_status"] == "in_progress":
            b.update(processing_status="canceling", cancel_initiated_at=_rfc3339(time.time()))
        return b

    def _delete(self, b: dict[str, Any]) -> dict[str, Any]:
        if b["processing_status"] != "ended":
            raise BatchError(400, f"Message batch {b['id']} is still processing: cancel it, and "
                                  "delete it once it has ended.")
        for store in (self.batches, self.items, self.reads):
            del store[b["id"]]
        return {"id": b["id"], "type": "message_batch_deleted"}

    def _results(self, b: dict[str, Any]) -> bytes:
        if b["processing_status"] != "ended":
            raise BatchError(404, f"Results for message batch {b['id']} are not available: its "
                                  f"processing_status is {b['processing_status']}, not ended.")
        data = b"".join(orjson.dumps({"custom_id": it["custom_id"], "result": it["result"]}) +
                        b"\n" for it in reversed(self.items[b["id"]]))
        if self.truncate_output:
            self.truncate_output = False
            data = data[:-9]  # the last line loses its end (and its newline)
        return data

    # -------------------------------------------------------------------- life
    def _advance(self, b: dict[str, Any]) -> dict[str, Any]:
        """One step of the batch's life per read: the first answers the first half of the
        items (out of sight: counts move only when the batch ends), the second ends it."""
        bid = b["id"]
        if b["processing_status"] == "canceling":
            self._end(b, limit=0, rest="canceled")
        elif b["processing_status"] == "in_progress" and not self.stuck:
            self.reads[bid] += 1
            if self.reads[bid] == 1:
                upto = len(self.items[bid]) // 2
                self._answer(bid, min(upto, self.expire_after) if self.expire_next else upto)
            elif self.expire_next:
                self.expire_next = False
                self._end(b, limit=self.expire_after, rest="expired")
            else:
                self._end(b, limit=None, rest="expired")
        return b

    def _answer(self, bid: str, limit: int | None) -> None:
        """Answer the items in input order until ``limit`` of them (all: None) are answered."""
        items = self.items[bid]
        for it in items[:len(items) if limit is None else max(0, limit)]:
            if it["result"] is None:
                it["result"] = self._result(it["params"])

    def _result(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self.check(params)
        if problem is not None:
            return _errored("invalid_request_error", problem)
        text = _last_user_content(params["messages"])
        if item_fails(text, self.seen):
            return _errored(*_ITEM_FAULTS["[[batch:error]]"])
        for marker, (kind, message) in _ITEM_FAULTS.items():
            if marker in text:
                return _errored(kind, message)
        self.billed += 1
        return {"type": "succeeded", "message": self.answer(params)}

    def _end(self, b: dict[str, Any], limit: int | None, rest: str) -> None:
        """Answer up to ``limit`` items in all, mark the unanswered ``rest``, end the batch."""
        self._answer(b["id"], limit)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for it in self.items[b["id"]]:
            if it["result"] is None:
                it["result"] = {"type": rest}
            counts[it["result"]["type"]] += 1
        b.update(processing_status="ended", request_counts=counts,
                 ended_at=_rfc3339(time.time()),
                 results_url=f"{self.base_url()}{MESSAGE_BATCHES_PATH}/{b['id']}/results")


def _errored(kind: str, message: str) -> dict[str, Any]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind,
                                                                   "message": message}}}
