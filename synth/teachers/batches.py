"""Provider batch APIs: the same requests as the synchronous route, at the batch price,
answered within the provider's window (24 h).

As for synchronous calls, policy and wire are apart: :class:`BatchHttp` holds the policy
(every control call — upload, create, poll, download, cancel — retried as
:class:`~synth.teachers.http.HttpTeacher` retries a request: 408/409/429/5xx, timeouts,
dropped connections and malformed bodies; keys scrubbed from every error), and a provider's
:class:`BatchWire` (``openai_batch``, ``anthropic_batch``) spells its routes. The ledger that
makes a batch exactly-once across crashes is the runner's (``synth.generate.ledger``): a wire
only has to answer "was this upload / batch already made?" (``find_upload``,
``find_batch``) for a key the runner chose before sending anything.

Each item's ``custom_id`` is its request hash (64 hex digits: within Anthropic's
``^[a-zA-Z0-9_-]{1,64}$``), so a result maps back to the cache entry a synchronous answer
would have filled.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol

import orjson

from synth.errors import ConfigError, RateLimitedError, RetryableError, TeacherError

if TYPE_CHECKING:
    from synth.records import Completion
    from synth.teachers.http import HttpTeacher, RetryPolicy
    from synth.teachers.transport import FullTransport, HttpResponse

__all__ = ["BatchLimits", "BatchState", "ItemResult", "BatchWire", "BatchHttp",
           "BatchClient", "BATCH_WIRES", "register_batch_wire", "batch_client",
           "parse_time", "jsonl_lines", "obj", "multipart", "pages"]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What one batch may hold, as the provider documents it."""

    max_requests: int
    max_bytes: int


@dataclass(slots=True)
class BatchState:
    """One batch as the provider reports it, in words the runner can act on."""

    id: str
    status: str  # the provider's own word: in_progress, finalizing, ended, expired...
    #: running: wait; ended: collect its results (some may be missing: expired or cancelled);
    #: failed: the whole batch was refused (validation), there are no results.
    phase: Literal["running", "ended", "failed"]
    total: int | None = None
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # failed: what was wrong, line by line
    created_at: float | None = None  # epoch seconds
    raw: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "failed": self.failed}


@dataclass(slots=True)
class ItemResult:
    """One item of an ended batch: an answer, or why there is none."""

    custom_id: str
    completion: Completion | None = None
    reason: str | None = None  # batch_item_error, batch_expired, batch_cancelled, http_400...
    message: str | None = None
    retryable: bool = True  # False: the same request would fail the same way


class BatchWire(Protocol):
    """How one provider's batch API is spelled. ``http`` is a :class:`BatchHttp`."""

    provider: str
    limits: BatchLimits
    #: The requests travel as an uploaded file first (OpenAI), not in the create call.
    uploads: bool
    #: ``find_batch`` is certain (the key is on the batch: OpenAI's metadata), not a guess
    #: the runner must check against the results (Anthropic's listing).
    exact_recovery: bool

    def item(self, custom_id: str, body: bytes) -> bytes:
        """One encoded synchronous request body → the bytes of one batch item."""

    def item_overhead(self) -> int:
        """Bytes a batch adds around its items (separators, envelope), for the size limit."""

    async def upload(self, http: BatchHttp, key: str, items: list[bytes]) -> str: ...
    async def find_upload(self, http: BatchHttp, key: str) -> str | None: ...
    async def create(self, http: BatchHttp, key: str, file_id: str | None,
                     items: list[bytes]) -> BatchState:
        """One attempt (``retry=False``): the runner retries, after looking for the batch."""
    async def find_batch(self, http: BatchHttp, key: str, *, file_id: str | None,
                         since: float, n: int, known: set[str]) -> str | None: ...
    async def get(self, http: BatchHttp, batch_id: str) -> BatchState: ...
    async def results(self, http: BatchHttp, state: BatchState
                      ) -> tuple[list[ItemResult], int]:
        """The items of an ended batch, and how many result lines could not be read (a
        download cut short: the runner downloads again before giving up on them)."""
    async def cancel(self, http: BatchHttp, batch_id: str) -> BatchState: ...


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an integer timestamp (OpenAI) or an RFC 3339 string (Anthropic)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def obj(x: Any) -> dict[str, Any]:
    """``x`` if it is a JSON object, else an empty one: a provider's odd line or field is
    a failed item, never a crash."""
    return x if isinstance(x, dict) else {}


def jsonl_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Parsed JSONL lines, and how many could not be read (a truncated last line, or
    garbage): their items are simply missing, so the runner asks them again."""
    good, bad = [], 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            good.append(item)
        else:
            bad += 1
    return good, bad


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body (``fields`` and one file) for a files upload. Written
    here because the transport posts bytes (the same transport as every request) and the
    body is two fields."""
    boundary = "synth-" + secrets.token_hex(16)
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
               f'filename="{filename}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode())
    out.append(data)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


async def pages(http: "BatchHttp", path: str, what: str, *, limit: int = 100):
    """Every object of an OpenAI-style list route (``data``, ``has_more``, ``after`` = the
    last id of the previous page), in the route's order, page by page."""
    after = None
    while True:
        sep = "&" if "?" in path else "?"
        page = await http.call("GET", f"{path}{sep}limit={limit}" +
                               (f"&after={after}" if after else ""), what=what,
                               expect=("data",))
        data = [x for x in page.get("data") or [] if isinstance(x, dict) and x.get("id")]
        for x in data:
            yield x
        if not page.get("has_more") or not data:
            return
        after = data[-1]["id"]


class BatchHttp:
    """The policy for batch control calls: one place that sends, retries and scrubs."""

    def __init__(self, *, base_url: str, headers: Mapping[str, str], secret: str | None,
                 retry: RetryPolicy, timeout: float, transport: FullTransport,
                 error_message: Callable[[bytes], str]):
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.secret = secret
        self.retry = retry
        self.timeout = timeout
        self.transport = transport
        self.error_message = error_message
        self.retries: dict[str, int] = {}  # retried failures by reason, for run.json

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def scrub(self, err: TeacherError) -> TeacherError:
        if self.secret and self.secret in str(err):
            err.args = (str(err).replace(self.secret, "***"),)
        return err

    async def call(self, method: str, path: str, *, what: str, body: bytes | None = None,
                   headers: Mapping[str, str] | None = None, parse: bool = True,
                   retry: bool = True, expect: tuple[str, ...] = ()) -> Any:
        """Send one control call; its JSON (``parse``) or its raw body. Raises a
        :class:`TeacherError` naming ``what`` once retries are spent or the error is final.
        ``retry=False``: one attempt (a create, whose failure may hide a batch that exists:
        the runner looks for it before sending it again). ``expect``: keys the JSON object
        must have; a body that is not such an object is malformed, and retried."""
        from synth.teachers.http import error_for_status

        sent = {**self.headers, **(headers or {})}
        if body is None:
            sent.pop("Content-Type", None)
        attempt = 0
        while True:
            err: TeacherError
            try:
                resp: HttpResponse = await self.transport.request(
                    method, self.url(path), headers=sent, body=body, timeout=self.timeout)
                if resp.status == 200:
                    if not parse:
                        return resp.body
                    try:
                        data = orjson.loads(resp.body)
                    except orjson.JSONDecodeError:
                        raise RetryableError("malformed response: body is not JSON",
                                             reason="malformed") from None
                    if not isinstance(data, dict) or any(k not in data for k in expect):
                        raise RetryableError(
                            "malformed response: expected an object with "
                            f"{', '.join(expect) or 'fields'}", reason="malformed")
                    return data
                err = error_for_status(resp.status, resp.headers,
                                       self.error_message(resp.body))
            except RetryableError as e:
                err = e
            if (not isinstance(err, RetryableError) or not retry
                    or attempt >= self.retry.max_retries):
                after = f" (after {attempt + 1} attempts)" if attempt else ""
                err.args = (f"{what}: {err}{after}",)
                raise self.scrub(err)
            self.retries[err.reason] = self.retries.get(err.reason, 0) + 1
            delay = self.retry.delay(attempt, err.retry_after)
            if isinstance(err, RateLimitedError) and err.retry_after is None:
                delay = max(delay, 1.0)
            attempt += 1
            await asyncio.sleep(delay)


@dataclass(slots=True)
class BatchClient:
    """A provider's batch wire bound to the policy that carries it."""

    wire: BatchWire
    http: BatchHttp
    encode: Callable[..., bytes]  # the synchronous wire's encode(request, model)
    decode: Callable[[Any], Completion]  # ... and its decode_data(parsed body)

    @property
    def provider(self) -> str:
        return self.wire.provider


#: provider name → factory ``(decode) -> BatchWire``; a plugin adds its own.
BATCH_WIRES: dict[str, Callable[[Callable[[Any], Completion]], BatchWire]] = {}


def register_batch_wire(provider: str,
                        factory: Callable[[Callable[[Any], Completion]], BatchWire]) -> None:
    """Let ``synth generate --batch`` use ``provider``'s batch API. ``factory(decode)``
    builds the wire; ``decode`` turns one parsed synchronous answer into a Completion."""
    BATCH_WIRES[provider] = factory


def _builtin() -> None:
    if "openai" not in BATCH_WIRES:
        from synth.teachers.anthropic_batch import AnthropicBatchWire
        from synth.teachers.openai_batch import OpenAIBatchWire

        BATCH_WIRES.setdefault("openai", OpenAIBatchWire)
        BATCH_WIRES.setdefault("anthropic", AnthropicBatchWire)


def batch_client(teacher: Any) -> BatchClient:
    """The batch client for an API teacher (an :class:`HttpTeacher` whose provider has a
    batch wire); a clear error for any other."""
    from synth.teachers.http import HttpTeacher
    from synth.teachers.transport import AiohttpTransport

    _builtin()
    factory = BATCH_WIRES.get(teacher.provider)
    if factory is None or not isinstance(teacher, HttpTeacher):
        raise ConfigError(f"--batch: {teacher.provider}:{teacher.model} has no batch API "
                          "synth can submit to (OpenAI's Batch API and Anthropic's Message "
                          "Batches can be); drop --batch")
    t: HttpTeacher = teacher
    if t.fleet:
        raise ConfigError("--batch: give one --base-url: a provider's batch API is one "
                          "endpoint, not a fleet")
    transport = t.transport if hasattr(t.transport, "request") else AiohttpTransport()
    wire = factory(t.wire.decode_data)
    http = BatchHttp(base_url=t.raw_base_url, headers=t.wire.headers(t.api_key),
                     secret=t.api_key, retry=t.retry, timeout=min(t.timeout, 600.0),
                     transport=transport, error_message=t.wire.error_message)
    return BatchClient(wire=wire, http=http, encode=t.wire.encode, decode=t.wire.decode_data)
