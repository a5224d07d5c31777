"""OpenAI's fine-tuning API for the loopback provider server (``server.fine_tuning``),
written from OpenAI's API reference (Fine-tuning: create, list, retrieve, cancel, list
events; the job and event objects). Files come from the server's files store
(``server.batches``, tests/batch_routes.py): upload with purpose ``fine-tune``.

* ``POST /v1/fine_tuning/jobs`` (``model``, ``training_file``, ``validation_file``,
  ``suffix`` (≤ 64 characters), ``seed``, ``metadata`` (≤ 16 string pairs), ``method``
  ``{type: supervised, supervised: {hyperparameters}}`` or the older top-level
  ``hyperparameters``): a file that is missing or not purpose ``fine-tune`` is a 400, a
  model that cannot be fine-tuned a 400 (``model_not_available``);
* ``GET /v1/fine_tuning/jobs`` (``after``, ``limit``, ``metadata[k]=v``; newest first,
  ``has_more``), ``GET /v1/fine_tuning/jobs/{id}``, ``POST .../{id}/cancel``;
* ``GET /v1/fine_tuning/jobs/{id}/events`` (``after``, ``limit``: newest first, ``has_more``).

A job moves one status each time it is read: ``validating_files`` → ``queued`` → ``running``
(one "Step i/N" event per read for ``steps`` reads) → ``succeeded`` (``fine_tuned_model``
``ft:MODEL:synth-test:SUFFIX:ID``, ``trained_tokens`` = the file's words × epochs, a result
file). Validation reads the training file as OpenAI does: every line a JSON object with a
``messages`` list, at least ``MIN_EXAMPLES`` lines; else (or when a line holds
``[[ft:invalid]]``) the job ``failed`` with ``error`` {code, message, param}. ``created``
counts jobs made (a drill checks no run makes two), ``steps`` sets how long a job runs.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from tests.batch_routes import BatchError

MIN_EXAMPLES = 10
TUNABLE = ("gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini", "gpt-4o", "gpt-test")


def _now() -> int:
    return int(time.time())


class OpenAIFineTuning:
    def __init__(self, files) -> None:
        self.files = files  # the OpenAIBatches store: files and their content
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.reads: dict[str, int] = {}
        self.created = 0
        self.steps = 3

    def reset(self) -> None:
        self.__init__(self.files)  # type: ignore[misc]

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes
               ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][3:]  # after v1/fine_tuning/jobs
        if not parts and method == "POST":
            return 200, self._create(raw)
        if not parts and method == "GET":
            return 200, self._list(query)
        if parts:
            job = self._job(parts[0])
            if len(parts) == 1 and method == "GET":
                return 200, self._advance(job)
            if parts[1:] == ["cancel"] and method == "POST":
                return 200, self._cancel(job)
            if parts[1:] == ["events"] and method == "GET":
                return 200, self._page(self.events[job["id"]], query)
        raise BatchError(404, f"Unknown request URL: {method} {path}.", code="unknown_url")

    # ------------------------------------------------------------------ jobs
    def _create(self, raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BatchError(400, "We could not parse the JSON body of your request.") \
                from None
        if not isinstance(body, dict):
            raise BatchError(400, "The body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BatchError(400, "Missing required parameter: 'model'.", param="model")
        if not any(model == m or model.startswith(m + "-") for m in TUNABLE):
            raise BatchError(400, f"Model {model} is not available for fine-tuning or does "
                             "not exist.", param="model", code="model_not_available")
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if fid is None and key == "validation_file":
                continue
            f = self.files.files.get(fid) if isinstance(fid, str) else None
            if f is None:
                raise BatchError(400, f"invalid {key}: {fid}", param=key,
                                 code="invalid_request_error")
            if f["purpose"] != "fine-tune":
                raise BatchError(400, f"File {fid} has purpose {f['purpose']!r}, not "
                                 "'fine-tune'.", param=key)
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise BatchError(400, "suffix must be a string of at most 64 characters.",
                             param="suffix")
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict) or len(meta) > 16 or not all(
                isinstance(k, str) and isinstance(v, str) and len(v) <= 512
                for k, v in meta.items()):
            raise BatchError(400, "metadata: at most 16 string keys and string values.",
                             param="metadata")
        method = body.get("method") or {"type": "supervised", "supervised": {
            "hyperparameters": body.get("hyperparameters") or {}}}
        if not isinstance(method, dict) or method.get("type") != "supervised":
            raise BatchError(400, "method.type: only 'supervised' here.", param="method")
        hp = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto",
              **((method.get("supervised") or {}).get("hyperparameters") or {})}
        jid = "ftjob-" + secrets.token_hex(12)
        self.created += 1
        job = {"object": "fine_tuning.job", "id": jid, "model": model,
               "created_at": _now(), "finished_at": None, "fine_tuned_model": None,
               "organization_id": "org-synth-test", "result_files": [],
               "status": "validating_files", "validation_file": body.get("validation_file"),
               "training_file": body["training_file"], "hyperparameters": hp,
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
               "trained_tokens": None, "error": None, "suffix": suffix,
               "seed": body.get("seed", 42), "estimated_finish": None, "integrations": [],
               "metadata": meta or None}
        self.jobs[jid] = job
        self.events[jid] = []
        self.reads[jid] = 0
        self._event(jid, f"Created fine-tuning job: {jid}")
        return job

    def _job(self, jid: str) -> dict[str, Any]:
        if jid not in self.jobs:
            raise BatchError(404, f"Could not find fine-tune: {jid}", param="fine_tune_id")
        return self.jobs[jid]

    def _event(self, jid: str, message: str, level: str = "info", **data: Any) -> None:
        self.events[jid].insert(0, {"object": "fine_tuning.job.event",
                                    "id": "ftevent-" + secrets.token_hex(10),
                                    "created_at": _now(), "level": level,
                                    "message": message, "data": data or {},
                                    "type": "metrics" if data else "message"})

    def _examples(self, fid: str) -> tuple[int, int, str | None]:
        """(examples, words, the first problem) of a training file."""
        n = words = 0
        for i, line in enumerate(self.files.content[fid].splitlines(), 1):
            if not line.strip():
                continue
            try:
                ex = orjson.loads(line)
            except orjson.JSONDecodeError:
                return n, words, f"Invalid file format. Line {i}: not valid JSON."
            msgs = ex.get("messages") if isinstance(ex, dict) else None
            if not isinstance(msgs, list) or not msgs:
                return n, words, f"Invalid file format. Line {i}: missing 'messages'."
            text = " ".join(str(m.get("content")) for m in msgs if isinstance(m, dict))
            if "[[ft:invalid]]" in text:
                return n, words, f"Invalid file format. Line {i}: example rejected."
            n += 1
            words += len(text.split())
        if n < MIN_EXAMPLES:
            return n, words, (f"Training file has {n} example(s), but must have at least "
                              f"{MIN_EXAMPLES} examples")
        return n, words, None

    def _advance(self, job: dict[str, Any]) -> dict[str, Any]:
        jid = job["id"]
        self.reads[jid] += 1
        status = job["status"]
        if status == "validating_files":
            n, words, problem = self._examples(job["training_file"])
            if problem:
                job.update(status="failed", finished_at=_now(),
                           error={"code": "invalid_training_file", "message": problem,
                                  "param": "training_file"})
                self._event(jid, problem, level="error")
            else:
                job["status"] = "queued"
                job["_words"] = words
                self._event(jid, f"Files validated, {n} examples")
        elif status == "queued":
            job["status"] = "running"
            self._event(jid, "Fine-tuning job started")
        elif status == "running":
            done = sum(1 for e in self.events[jid] if e["message"].startswith("Step "))
            if done < self.steps:
                self._event(jid, f"Step {done + 1}/{self.steps}: training loss=0.{9 - done}",
                            step=done + 1, train_loss=0.9 - 0.1 * done)
            else:
                epochs = job["hyperparameters"]["n_epochs"]
                epochs = 3 if epochs == "auto" else int(epochs)
                rid = "file-" + secrets.token_hex(12)
                self.files.files[rid] = {"id": rid, "object": "file", "bytes": 10,
                                         "created_at": _now(), "filename": "step_metrics.csv",
                                         "purpose": "fine-tune-results",
                                         "status": "processed"}
                self.files.content[rid] = b"step,train_loss\n"
                name = f"ft:{job['model']}:synth-test:{job['suffix'] or ''}:{jid[6:14]}"
                job.update(status="succeeded", finished_at=_now(), fine_tuned_model=name,
                           trained_tokens=job.pop("_words", 0) * epochs, result_files=[rid])
                self._event(jid, f"New fine-tuned model created: {name}")
                self._event(jid, "The job has successfully completed")
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _cancel(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            raise BatchError(400, f"Job {job['id']} has already {job['status']}.")
        job.update(status="cancelled", finished_at=_now())
        self._event(job["id"], "Fine-tuning job cancelled")
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        jobs = sorted(self.jobs.values(), key=lambda j: (j["created_at"], j["id"]),
                      reverse=True)
        want = {k[9:-1]: v for k, v in query.items()
                if k.startswith("metadata[") and k.endswith("]")}
        jobs = [j for j in jobs if all((j.get("metadata") or {}).get(k) == v
                                       for k, v in want.items())]
        out = self._page([{k: v for k, v in j.items() if not k.startswith("_")}
                          for j in jobs], query)
        return out

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        limit = int(query.get("limit", 20))
        after = query.get("after")
        if after is not None:
            ids = [x["id"] for x in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}
