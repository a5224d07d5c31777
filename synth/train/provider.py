"""``synth train --backend openai``: the curated rows become a fine-tuning job on OpenAI
(or a server that speaks its API), whose tuned model ``synth generate --teacher
openai:ft:...`` and ``synth eval`` then use.

setup (the output folder, the rows, the licence check, the rows exported to ``OUT/data/``
in OpenAI's format by :func:`synth.dataset.export.export_run`) → upload the file(s)
(``POST /files``, purpose ``fine-tune``) → create the job (``POST /fine_tuning/jobs``,
``method: supervised`` with the hyperparameters given) → poll it
(``GET /fine_tuning/jobs/{id}``, backing off while nothing changes) and print its events
(``GET .../events``, newest first, paged back to the last one printed) → ``train.json``
and the model card. ``--no-wait`` stops after the first look at the job; the same command
later looks again, and writes ``train.json`` once the job has ended.

One job per output folder, whatever crashes: ``OUT/finetune.json`` records each step before
the next call (the run's key → file ids → job id). The uploads carry the key in their file
name (``synth-ft-KEY-train.jsonl``) and the job in its ``metadata.synth_run``, so a rerun
finds an upload or a job whose id was lost; a create whose answer was lost is looked for in
the listing before it is sent again. HTTP goes through the batch routes' policy
(:class:`synth.teachers.batches.BatchHttp`: retries like every request, keys scrubbed).

Licence: OpenAI's Services Agreement lets its outputs train a model through OpenAI's own
fine-tuning, so rows whose teacher is OpenAI's pass whatever the intent; rows from any other
teacher carry that teacher's terms, checked for ``--intent`` as a dataset's are
(:func:`synth.licences.check`): Anthropic's outputs, for one, are refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, FineTuneError, RetryableError, TeacherError
from synth.teachers.batches import pages

__all__ = ["tune", "STATE_FILE", "TERMINAL"]

STATE_FILE = "finetune.json"
TERMINAL = ("succeeded", "failed", "cancelled")
_MAX_WAIT_S = 300.0
_OPENAI_ENTRY = "openai-api"


def tune(cfg: Any) -> Any:
    """Run (or attach to) the job ``cfg`` asks for; a :class:`~synth.train.trainer.TrainResult`
    whose summary is ``train.json``."""
    return asyncio.run(_tune(cfg))


# ---------------------------------------------------------------------------- state

def _load_state(out: Path) -> dict[str, Any] | None:
    p = out / STATE_FILE
    if not p.is_file():
        return None
    try:
        state = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise FineTuneError(f"{p}: cannot be read ({e}); it records this folder's job, so "
                            "it is not replaced: fix or remove it") from None
    if not isinstance(state, dict) or not isinstance(state.get("key"), str):
        raise FineTuneError(f"{p}: not a synth fine-tuning record")
    return state


def _save(out: Path, state: dict[str, Any]) -> None:
    from synth.io import write_atomic

    write_atomic(out / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------- licence

def licence_decision(rows: list[dict[str, Any]], *, intent: str, accept: tuple[str, ...],
                     base_url: str | None):
    """The decision for tuning on OpenAI from these rows (see the module): OpenAI's own
    outputs pass by its fine-tuning exception, every other teacher is checked for
    ``intent``. Raises :class:`~synth.errors.LicenceDeniedError` on deny."""
    from urllib.parse import urlsplit

    from synth.errors import LicenceDeniedError
    from synth.licences import Decision, check, inherit, load_registry, self_hosted

    registry = load_registry()
    host = urlsplit(base_url).hostname if base_url else None
    # the exception is OpenAI's own fine-tuning: the target must be OpenAI, or a gateway of
    # the user's own in front of it (loopback, private network), never another service
    entry = registry.host_entry(host) if host else None
    to_openai = self_hosted(host) or (entry is not None and entry.id == _OPENAI_ENTRY)
    teachers = sorted({(r.get("provider") or "", r.get("model") or "", r.get("base_url"))
                       for r in rows}, key=lambda t: tuple(x or "" for x in t))
    parts, denied = [], []
    for provider, model, url in teachers:
        if not provider:  # rows without provenance: nothing says where they came from
            d = check(registry, provider="unknown", model=model or "unknown", base_url=None,
                      intent=intent, accept=accept)
        else:
            d = check(registry, provider=provider, model=model, base_url=url or None,
                      intent=intent, accept=accept)
        if to_openai and provider == "openai" and set(d.entries) == {_OPENAI_ENTRY}:
            d = Decision(decision="allow", rule="upstream", intent=intent, evidence="S",
                         entries=[_OPENAI_ENTRY],
                         reasons=[f"{provider}:{model}: OpenAI's Services Agreement allows "
                                  "its outputs to fine-tune a model through OpenAI's own "
                                  "fine-tuning"])
        if d.decision == "deny":
            denied.append((f"{provider or 'unknown'}:{model or 'unknown'}", d))
        parts.append(d)
    combined = inherit(parts, intent)
    if not denied and combined.needs_acceptance:
        from synth.errors import TermsNotAcceptedError

        who = [t for t, d in zip(teachers, parts) if d.needs_acceptance][0]
        raise TermsNotAcceptedError(
            f"licence: rows from {who[0] or 'unknown'}:{who[1] or 'unknown'}: "
            f"{combined.reasons[0]}; read the terms, then pass --accept-terms unknown (or "
            "add an entry with a licence file)", combined)
    if denied:
        who, d = denied[0]
        raise LicenceDeniedError(
            f"licence: rows from {', '.join(t for t, _ in denied)} may not fine-tune a model "
            f"on OpenAI for intent '{intent}': {d.denied_by[0] if d.denied_by else d.rule}; "
            "drop those rows or pass --accept-terms with the entry id", combined)
    return combined


# ----------------------------------------------------------------------------- HTTP

def _http(cfg: Any):
    from synth.teachers import TeacherOptions, make_teacher
    from synth.teachers.batches import BatchHttp
    from synth.teachers.transport import AiohttpTransport

    base = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None
    t = make_teacher(f"openai:{cfg.student}", TeacherOptions(
        base_url=base, api_key_env=cfg.api_key_env))
    transport = t.transport if hasattr(t.transport, "request") else AiohttpTransport()
    return BatchHttp(base_url=t.raw_base_url, headers=t.wire.headers(t.api_key),
                     secret=t.api_key, retry=t.retry, timeout=min(t.timeout, 600.0),
                     transport=transport, error_message=t.wire.error_message), t


def _name(key: str, side: str, digest: str) -> str:
    # the content's hash too: an upload found by name after a crash is this very file
    return f"synth-ft-{key}-{side}-{digest[:12]}.jsonl"


async def _upload(http, key: str, side: str, path: Path) -> str:
    import hashlib

    from synth.teachers.batches import multipart

    data = path.read_bytes()
    name = _name(key, side, hashlib.sha256(data).hexdigest())
    async for f in pages(http, "/files?purpose=fine-tune", "list fine-tuning files"):
        if f.get("filename") == name:  # uploaded before a crash: its id was lost
            return str(f["id"])
    body, ctype = multipart({"purpose": "fine-tune"}, name, data)
    f = await http.call("POST", "/files", body=body, headers={"Content-Type": ctype},
                        what=f"upload the {side} file", expect=("id",))
    return str(f["id"])


async def _find_job(http, key: str) -> dict[str, Any] | None:
    async for j in pages(http, f"/fine_tuning/jobs?metadata[synth_run]={key}",
                          "list fine-tuning jobs"):
        if (j.get("metadata") or {}).get("synth_run") == key:
            return j
    return None


def _create_body(cfg: Any, key: str, files: dict[str, str]) -> bytes:
    hp: dict[str, Any] = {}
    if cfg.epochs is not None:  # whole: TrainConfig checked it
        hp["n_epochs"] = int(cfg.epochs)
    if cfg.batch_size != type(cfg).model_fields["batch_size"].default:
        # synth's local default means "not given": the provider chooses its own
        hp["batch_size"] = cfg.batch_size
    if cfg.lr_multiplier is not None:
        hp["learning_rate_multiplier"] = cfg.lr_multiplier
    body: dict[str, Any] = {
        "model": cfg.student, "training_file": files["train"], "seed": cfg.seed,
        "metadata": {"synth_run": key},
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}
    if "test" in files:
        body["validation_file"] = files["test"]
    if cfg.suffix:
        body["suffix"] = cfg.suffix
    return json.dumps(body).encode()


async def _create(http, cfg: Any, key: str, files: dict[str, str]) -> dict[str, Any]:
    """The job, created once: a create whose answer is lost (a 5xx, a dropped connection)
    may have made it, so the listing is searched before the create is sent again."""
    body = _create_body(cfg, key, files)
    attempt = 0
    while True:
        try:
            return await http.call("POST", "/fine_tuning/jobs", body=body, retry=False,
                                   what="create the fine-tuning job", expect=("id", "status"))
        except RetryableError as e:
            found = await _find_job(http, key)
            if found is not None:
                return found
            if attempt >= http.retry.max_retries:
                raise FineTuneError(f"{e} (after {attempt + 1} attempts)") from None
            await asyncio.sleep(http.retry.delay(attempt, e.retry_after))
            attempt += 1


async def _events(http, job_id: str, last: str | None) -> list[dict[str, Any]]:
    """The job's events after ``last``, oldest first (the API lists newest first)."""
    new = []
    async for e in pages(http, f"/fine_tuning/jobs/{job_id}/events",
                          f"read the events of {job_id}"):
        if e["id"] == last:
            break
        new.append(e)
    return new[::-1]


def _event_line(e: dict[str, Any]) -> str:
    at = e.get("created_at")
    when = time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, (int, float)) \
        else "--:--:--"
    level = e.get("level") or "info"
    return f"  {when} {level:<5} {e.get('message') or ''}"


async def _poll(http, cfg: Any, out: Path, state: dict[str, Any]) -> dict[str, Any]:
    jid = state["job"]
    delay = cfg.poll_interval
    seen_status = None
    while True:
        job = await http.call("GET", f"/fine_tuning/jobs/{jid}", what=f"poll job {jid}",
                              expect=("id", "status"))
        new = await _events(http, jid, state.get("last_event"))
        for e in new:
            _say(_event_line(e))
        if new:
            state["last_event"] = new[-1]["id"]
        changed = bool(new) or job["status"] != seen_status
        if job["status"] != state.get("status") or new:
            state["status"] = job["status"]
            _save(out, state)
        seen_status = job["status"]
        if job["status"] in TERMINAL or not cfg.wait:  # --no-wait: one look, then go
            return job
        delay = cfg.poll_interval if changed else min(delay * 1.5, _MAX_WAIT_S)
        await asyncio.sleep(delay)


# ------------------------------------------------------------------------------ run

def _target(cfg: Any) -> str:
    """The base URL the job goes to: --base-url, else $OPENAI_BASE_URL, else OpenAI."""
    from synth.teachers.openai import DEFAULT_BASE_URL

    return cfg.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def _settings(cfg: Any, target: str, data_file: Path) -> dict[str, Any]:
    """What makes a job this job: a rerun with other settings must not attach to it."""
    import hashlib

    from synth.teachers.http import public_base_url

    h = hashlib.sha256()
    with open(data_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"student": cfg.student, "base_url": public_base_url(target),
            "data": str(Path(cfg.data).resolve()), "data_sha256": h.hexdigest(),
            "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "lr_multiplier": cfg.lr_multiplier, "suffix": cfg.suffix, "seed": cfg.seed,
            "eval_split": cfg.eval_split}


def _ours_only(out: Path) -> bool:
    """``out`` holds nothing but what a run of ours left before recording anything (its
    lock, its export): a kill between the export and the first record."""
    return all(p.name in (".lock", "data") for p in out.iterdir()) and (
        not (out / "data").exists() or (out / "data" / "export.json").is_file()
        or not any((out / "data").iterdir()))


def _untouched(out: Path, created: bool) -> None:
    """Remove what a run that sent nothing wrote, so the fixed command finds the folder as
    it was."""
    import shutil

    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    shutil.rmtree(out / "data", ignore_errors=True)
    for name in (STATE_FILE, ".lock"):
        (out / name).unlink(missing_ok=True)


async def _tune(cfg: Any) -> Any:
    from synth import rows as R
    from synth.dataset.export import OPENAI_MIN_EXAMPLES
    from synth.errors import InputError
    from synth.io import check_out_dir, exclusive_dir, make_out_dir
    from synth.train.trainer import TrainResult

    t0 = time.perf_counter()
    out = check_out_dir(cfg.out)
    state = _load_state(out)
    if state is None and out.exists() and any(out.iterdir()) and not _ours_only(out):
        raise ConfigError(f"--out {out}: is not empty and holds no fine-tuning job "
                          f"({STATE_FILE}); choose a new directory")
    target = _target(cfg)
    got = R.read_rows(cfg.data, action="fine-tune on")
    decision = licence_decision(got.rows, intent=cfg.intent, accept=tuple(cfg.accept_terms),
                                base_url=target)
    settings = _settings(cfg, target, got.where.file)
    sent = state is not None and bool(state.get("files"))
    if sent:  # only the run that made the uploads and the job may attach to them
        old = state.get("settings") or {}
        changed = [k for k in settings if old.get(k) != settings[k]]
        if changed:
            was = ", ".join(f"{k} {old.get(k)!r}" for k in changed)
            raise ConfigError(f"--out {out}: holds the fine-tuning run made with {was}; "
                              "rerun with those settings to attach to it, or choose a new "
                              "--out for another job")
    http, _ = _http(cfg)
    created = not out.exists()
    make_out_dir(out)
    try:
        with exclusive_dir(out):
            if not sent:  # nothing sent yet: export (again), record, then upload
                from synth.dataset.export import export_run

                exported = export_run(cfg.data, format="openai-finetune", out=out / "data",
                                      split=1 - cfg.eval_split if cfg.eval_split else None,
                                      seed=cfg.seed)
                n = exported.summary["rows"]["train"]
                if n < OPENAI_MIN_EXAMPLES:
                    raise InputError(f"{n} training examples: OpenAI fine-tuning needs at "
                                     f"least {OPENAI_MIN_EXAMPLES}", path=str(got.where.file))
                state = {"key": (state or {}).get("key") or secrets.token_hex(8),
                         "student": cfg.student, "base_url": settings["base_url"],
                         "settings": settings, "created": time.time(), "files": {},
                         "job": None, "status": "exported", "export": exported.summary}
                _save(out, state)
            else:
                _say(f"synth: attaching to this folder's fine-tuning run ({out / STATE_FILE})")
            job = await _run_job(http, cfg, out, state)
    except BaseException:
        if state is None or not state.get("files"):
            _untouched(out, created)
        raise
    if job["status"] not in TERMINAL:  # --no-wait: the job goes on at the provider
        return TrainResult(out=out, summary={
            "backend": "openai", "student": cfg.student, "job_id": job["id"],
            "status": job["status"], "pending": True, "state": str(out / STATE_FILE)})
    if job["status"] != "succeeded":
        err = job.get("error") or {}
        if job["status"] == "cancelled":
            why = "it was cancelled; this folder keeps it: choose a new --out for another job"
        else:
            why = (err.get("message") or "no reason given") + \
                (f" ({err['code']})" if err.get("code") else "") + \
                "; fix the cause, then choose a new --out for another job"
        raise FineTuneError(f"fine-tuning job {job['id']} {job['status']}: {why}")
    summary = _summary(cfg, state, job, decision, time.perf_counter() - t0)
    from synth.io import write_atomic

    write_atomic(out / "train.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "README.md", _card(summary))
    return TrainResult(out=out, summary=summary)


async def _run_job(http, cfg: Any, out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Upload what is not uploaded, create the job unless it exists, poll it to its end."""
    try:
        for side in ("train", "test"):
            path = out / "data" / f"{side}.jsonl"
            if path.is_file() and side not in state["files"]:
                state["files"][side] = await _upload(http, state["key"], side, path)
                _save(out, state)
        if state["job"] is None:
            job = await _find_job(http, state["key"]) or \
                await _create(http, cfg, state["key"], state["files"])
            state["job"], state["status"] = job["id"], job["status"]
            _save(out, state)
            _say(f"synth: fine-tuning job {job['id']} for {cfg.student} ({job['status']})")
        return await _poll(http, cfg, out, state)
    except TeacherError as e:
        raise FineTuneError(f"{e}; {out / STATE_FILE} keeps the run: the same command "
                            "attaches to it") from None
    finally:
        await http.transport.aclose()


def _summary(cfg: Any, state: dict[str, Any], job: dict[str, Any], decision: Any,
             wall: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    from synth.teachers.pricing import load_prices
    from synth.version import __version__

    host = urlsplit(state["base_url"]).hostname
    price = load_prices().lookup("openai", cfg.student, host)
    tokens = job.get("trained_tokens")
    cost = None if price is None or price.training is None or tokens is None else \
        round(tokens * price.training / 1e6, 6)
    hp = ((job.get("method") or {}).get("supervised") or {}).get("hyperparameters") or \
        job.get("hyperparameters") or {}
    return {
        "synth_version": __version__, "backend": "openai", "student": cfg.student,
        "base_url": state["base_url"], "job_id": job["id"], "status": job["status"],
        "fine_tuned_model": job.get("fine_tuned_model"), "trained_tokens": tokens,
        "cost_usd": cost, "price_per_1m_training_tokens": None if price is None
        else price.training, "hyperparameters": hp, "files": state["files"],
        "result_files": job.get("result_files") or [], "data": str(cfg.data),
        "export": state.get("export"), "intent": cfg.intent,
        "licence": decision.to_dict(), "wall_s": round(wall, 3),
        "teacher_spec": f"openai:{job.get('fine_tuned_model')}",
    }


def _card(s: dict[str, Any]) -> str:
    lic = s["licence"]
    rows = (s.get("export") or {}).get("rows", {})
    cost = "unknown (no training price)" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
    lines = [f"# {s['fine_tuned_model']}", "",
             f"A fine-tuned `{s['student']}`, trained by OpenAI's fine-tuning API (job "
             f"`{s['job_id']}`) on rows exported by synth from `{s['data']}`.", "",
             "Use it as a teacher or evaluate it:", "", "```bash",
             f"synth generate prompts.jsonl --teacher {s['teacher_spec']} --intent "
             f"{s['intent']} --out runs/tuned",
             "```", "", "| | |", "|---|---|",
             f"| job | `{s['job_id']}` ({s['status']}) |",
             f"| trained tokens | {s['trained_tokens']} |",
             f"| cost | {cost} |",
             f"| hyperparameters | `{json.dumps(s['hyperparameters'])}` |",
             f"| examples | {', '.join(f'{k} {v}' for k, v in rows.items())} |", "",
             "## Licence", "",
             f"Intent: **{s['intent']}**; decision **{lic.get('decision')}** (rule "
             f"`{lic.get('rule')}`).", ""]
    lines += [f"- {r}" for r in lic.get("reasons") or []]
    return "\n".join(lines) + "\n"
