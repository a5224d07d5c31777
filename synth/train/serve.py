"""``synth serve``: a routed student/teacher pair behind one OpenAI-compatible endpoint.

``POST /v1/chat/completions`` (non-streaming) is answered by the student; when the
student's confidence (the mean token logprob of its answer, the signal ``synth eval
--cascade`` chooses a threshold for) is below ``--threshold``, the teacher answers instead.
Every answer says who gave it: ``model`` is the one that answered, and the ``synth``
object holds ``routed_to`` (``student`` / ``teacher``) and the student's ``confidence``.
``GET /v1/models`` lists the pair; ``GET /health`` answers once both are loaded. Counters of
each route are on ``GET /synth/stats``.

The server binds to loopback by default: it is a shim for one machine's clients (any
OpenAI SDK with ``base_url``), not a hardened public service. The student is an
in-process model (a directory ``synth train`` wrote, or its GGUF); the teacher any synth
teacher spec (``openai:...``, ``anthropic:...``, ``local:...``) with ``--base-url`` and
``--api-key-env`` as for ``synth generate``. The key is never echoed: a teacher error is
answered as a 502 whose message has been scrubbed by the teacher client.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from synth.options import MAX_TOKENS, option

__all__ = ["ServeConfig", "make_app", "serve"]


class ServeConfig(BaseModel):
    """Everything ``synth serve`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "serve"

    student: str = option(..., "The student: a directory `synth train` wrote, its .gguf, or "
                        "local:NAME.", short="-s")
    teacher: str = option(..., "The teacher spec the unsure requests go to (openai:MODEL, "
                        "anthropic:MODEL, local:NAME).", short="-t")
    threshold: float = option(..., "Route to the teacher when the student's mean token "
                            "logprob is below this (`synth eval --cascade` chooses one).")
    host: str = option("127.0.0.1", "Address to bind (loopback by default).")
    port: int = option(8000, "Port (0: any free one, printed at start).", ge=0, le=65535,
                       strict=True)
    base_url: str | None = option(None, "The teacher's API base URL.")
    api_key_env: str | None = option(None, "Environment variable holding the teacher's key.")
    max_tokens: int = option(512, "Default max_tokens when a request gives none.", ge=1,
                             le=MAX_TOKENS, strict=True)
    device: str | None = option(None, "Where the student runs (default: CUDA when present).")


class _Pair:
    """The loaded student and teacher, and the route counters."""

    def __init__(self, cfg: ServeConfig):
        from synth.teachers import TeacherOptions, make_teacher
        from synth.teachers.local import LocalTeacher

        self.cfg = cfg
        self.student = LocalTeacher(cfg.student.removeprefix("local:"), device=cfg.device)
        self.teacher = make_teacher(cfg.teacher, TeacherOptions(
            base_url=cfg.base_url, api_key_env=cfg.api_key_env))
        self.counts = {"student": 0, "teacher": 0, "errors": 0}

    async def start(self) -> None:
        await self.student.start()
        await self.teacher.start()

    async def close(self) -> None:
        await self.student.aclose()
        await self.teacher.aclose()

    async def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        from synth.records import Params, Prompt, Request
        from synth.train.cascade import mean_logprob

        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            raise _BadRequest("messages: a non-empty list of {role, content} objects")
        mt = body.get("max_tokens", body.get("max_completion_tokens", self.cfg.max_tokens))
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise _BadRequest("max_tokens: a positive integer")
        prompt = Prompt(id="serve-" + secrets.token_hex(6),
                        messages=[{"role": str(m.get("role", "user")), "content": m["content"]}
                                  for m in msgs])
        # the student answers greedily with its chosen tokens' logprobs: its confidence
        s = await self.student.complete(Request(prompt, 0, Params(
            temperature=0.0, max_tokens=mt, top_logprobs=0)))
        conf = mean_logprob(s.logprobs)
        if conf is not None and conf >= self.cfg.threshold:
            self.counts["student"] += 1
            return _completion(s, self.student.model, "student", conf)
        from synth.errors import TeacherError

        try:
            t = await self.teacher.complete(Request(prompt, 0, Params(
                temperature=float(body.get("temperature") or 0.0), max_tokens=mt)))
        except TeacherError as e:  # already scrubbed of the key by the teacher client
            self.counts["errors"] += 1
            raise _Upstream(f"the teacher failed: {e}") from None
        self.counts["teacher"] += 1
        return _completion(t, self.cfg.teacher, "teacher", conf)


class _BadRequest(Exception):
    pass


class _Upstream(Exception):
    pass


def _completion(c: Any, model: str, routed: str, conf: float | None) -> dict[str, Any]:
    usage = {"prompt_tokens": c.input_tokens or 0, "completion_tokens": c.output_tokens or 0}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text or ""},
                         "finish_reason": c.finish_reason or "stop", "logprobs": None}],
            "usage": usage, "synth": {"routed_to": routed, "confidence": conf}}


def make_app(cfg: ServeConfig):
    """The aiohttp application: routes, and the pair loaded at start-up, closed at exit."""
    from aiohttp import web

    pair = _Pair(cfg)
    app = web.Application(client_max_size=8 * 2**20)

    def error(status: int, message: str, kind: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind,
                                            "param": None, "code": None}}, status=status)

    async def chat(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.",
                         "invalid_request_error")
        if not isinstance(body, dict):
            return error(400, "The body must be a JSON object.", "invalid_request_error")
        if body.get("stream"):
            return error(400, "stream: not supported by synth serve", "invalid_request_error")
        try:
            return web.json_response(await pair.answer(body))
        except _BadRequest as e:
            return error(400, str(e), "invalid_request_error")
        except _Upstream as e:
            return error(502, str(e), "upstream_error")

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": who}
            for m, who in ((pair.student.model, "synth-student"), (cfg.teacher, "teacher"))]})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**pair.counts, "threshold": cfg.threshold})

    async def on_start(_: web.Application) -> None:
        await pair.start()

    async def on_stop(_: web.Application) -> None:
        await pair.close()

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/synth/stats", stats)
    app.on_startup.append(on_start)
    app.on_cleanup.append(on_stop)
    return app


def serve(config: ServeConfig | None = None, /, **kwargs: Any) -> None:
    """Run the endpoint until interrupted; prints the URL it listens on to stderr."""
    from aiohttp import web

    from synth.options import make_config

    cfg = make_config(config, kwargs, cls=ServeConfig)

    async def main() -> None:
        runner = web.AppRunner(make_app(cfg))
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port)
        await site.start()
        port = runner.addresses[0][1]  # port 0: the one the system gave
        print(f"synth serve: http://{cfg.host}:{port}/v1 (student {cfg.student}, teacher "
              f"{cfg.teacher}, threshold {cfg.threshold})", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
