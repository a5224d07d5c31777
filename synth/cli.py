"""The ``synth`` command. Thin: parse options, call the Python API, print.

A user mistake (:class:`~synth.errors.UserError`) prints one line — what, where, how to fix
— and exits with the error's code; no traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import inspect
import logging
import os
import sys
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Optional, Union, get_args, get_origin

import typer

from synth.errors import SynthError, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil a big teacher model into a small student you can run yourself.")


def _version(value: bool) -> None:
    if value:
        from synth.version import __version__

        typer.echo(f"synth {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """prompts → teachers → traces → curate → dataset → train"""


def _fail(err: SynthError) -> None:
    typer.echo(f"synth: error: {err}", err=True)
    raise typer.Exit(err.exit_code)


def _cli_type(annotation: Any) -> tuple[Any, str | None]:
    """The type typer parses an option as, and a metavar for choices: ``Literal`` values
    are parsed as text and checked by the config (so the error names the option)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    optional = len(args) < len(get_args(annotation))
    base = args[0] if optional and len(args) == 1 else annotation
    metavar = None
    if get_origin(base) is Literal:
        metavar = "|".join(map(str, get_args(base)))
        base = str
    elif get_origin(base) is tuple:
        return list[str], None
    return (Optional[base] if optional else base), metavar


def _generate_signature() -> inspect.Signature:
    """``synth generate``'s options, built from :class:`~synth.generate.config.GenerateConfig`
    (the one place each option, its default, bounds and help are defined)."""
    from synth.generate.config import GenerateConfig

    return _signature(GenerateConfig)


def _signature(cls: Any) -> inspect.Signature:
    """A command's options from its config model's fields."""
    from synth.options import cli_fields

    params = []
    for name, info, decl, short in cli_fields(cls):
        ann, metavar = _cli_type(info.annotation)
        default = ... if info.is_required() else info.default
        if decl.isupper():  # a positional argument: INPUT, RUNS, SOURCE, PIPELINE
            # always required on the command line (GenerateConfig's input may instead be
            # prompts=, from Python)
            args = [a for a in get_args(ann) if a is not type(None)]
            if get_origin(ann) in (Union, UnionType) and len(args) == 1:
                ann = args[0]
            spec = typer.Argument(..., help=info.description, metavar=decl,
                                  show_default=False)
        else:
            if isinstance(default, tuple):
                default = list(default)
            names = [decl] + ([short] if short else [])
            extra = info.json_schema_extra or {}
            if extra.get("cli_required"):
                default = ...
            # identity, not ==: a default of 0 or 0.0 is worth showing (0 == False)
            shown = not (default is None or default is ... or default is False or
                         default == [])
            spec = typer.Option(default, *names, help=info.description, metavar=metavar,
                                show_default=shown,
                                hidden=bool(extra.get("hidden")))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=spec,
                                        annotation=ann))
    return inspect.Signature(params)


def _call(run: Any, *, interrupted: str, **options: Any) -> Any:
    """``run(**options)``: a user error prints one line and exits with its code; Ctrl-C
    prints ``interrupted`` (what was kept, how to resume) and exits 130."""
    try:
        return run(**options)
    except UserError as err:
        _fail(err)
    except KeyboardInterrupt:
        typer.echo(f"synth: interrupted; {interrupted}", err=True)
        raise typer.Exit(130) from None


_SUBCOMMAND = {"ignore_unknown_options": True, "allow_extra_args": True}


def _command(name: str, fn: Any, model: str, summary: str,
             extra: dict[str, Any] | None = None) -> None:
    """Register ``synth NAME``, run by ``fn`` with the options of the model ``module:Class``
    (see :func:`_run_sub`); ``extra``: the command's own flags, beside the options."""

    def entry(ctx: typer.Context) -> None:
        module, cls = model.split(":")
        _run_sub(ctx, name, fn, getattr(importlib.import_module(module), cls), extra)

    app.command(name=name, help=summary, add_help_option=False,
                context_settings=_SUBCOMMAND)(entry)


def generate(**options: Any) -> None:
    """Ask a teacher to answer every prompt; write trace rows to OUT/traces.parquet."""
    from synth.generate import generate as run

    result = _call(run, interrupted=f"answers so far are in {options['out']}/cache.sqlite: "
                   "run the same command to resume", **options)
    s = result.summary
    if s.get("pending"):  # --batch --no-wait
        b = s["batch"]
        typer.echo(f"submitted: {s['sent']} requests in {b['submitted_this_run']} new "
                   f"batch(es); {b['open']} batch(es) open, {s['cached']} answers already in "
                   f"the cache. Run the same command again to collect, or `synth batch "
                   f"status {options['out']}`", err=True)
        return
    cost = "n/a" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
    fails = ", ".join(f"{k}={v}" for k, v in s["failures"].items())
    typer.echo(
        f"{s['rows']} rows ({s['status']['ok']} ok, {s['status']['error']} error"
        f"{': ' + fails if fails else ''}); {s['from_cache']} from cache, {s['sent']} sent; "
        f"{s['tokens']['input']:,} in / {s['tokens']['output']:,} out tokens; cost {cost}; "
        f"{s['wall_s']:.1f}s → {result.traces}", err=True)
    if s["status"]["error"] and not s["status"]["ok"]:
        raise typer.Exit(1)  # nothing succeeded: let scripts notice


_command("generate", generate, "synth.generate.config:GenerateConfig",
         "Ask a teacher to answer every prompt; write trace rows to OUT/traces.parquet.")


def _run_sub(ctx: typer.Context, name: str, fn: Any, cls: Any,
             extra: dict[str, Any] | None = None) -> None:
    """Run ``fn`` as command ``name`` with options built from config model ``cls``
    (pydantic, ~90 ms to import): built only when the command runs, so ``synth --help`` and
    the other commands start without paying for them. Its own parser then handles --help
    and bad options."""
    sig = _signature(cls)
    if extra:  # the command's own flags (how it prints), beside the options
        sig = sig.replace(parameters=[*sig.parameters.values(), *(
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v, annotation=bool)
            for k, v in extra.items())])
    fn.__signature__ = sig
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    sub.command(name=name)(fn)
    typer.main.get_command(sub).main(args=ctx.args, prog_name=f"synth {name}")


def train_command(**options: Any) -> None:
    """Train a student on trace rows: SFT, KL distillation (online teacher logits or stored
    top-K logprobs), or both. Writes an HF model directory, train_log.jsonl, loss.png,
    checkpoints/ and a model card to OUT."""
    from synth.train import train as run

    out = options["out"]
    interrupted = f"the steps done so far are checkpointed in {out}/checkpoints: add " \
        "--resume to the same command to continue"
    if options.get("backend", "local") != "local":
        interrupted = (f"the job goes on at the provider; {out}/finetune.json keeps it: the "
                       "same command attaches to it")
    result = _call(run, interrupted=interrupted, **options)
    if not result.main:  # under torchrun, rank 0 reports
        return
    s = result.summary
    if s.get("pending"):  # --no-wait
        typer.echo(f"job {s['job_id']} {s['status']} at the provider; {s['state']} keeps it: "
                   "the same command attaches to it (with --no-wait, it writes train.json "
                   "once the job has ended)", err=True)
        return
    if s.get("backend") == "openai":
        cost = "unknown" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
        typer.echo(f"job {s['job_id']} {s['status']}: {s['fine_tuned_model']} "
                   f"({s['trained_tokens']:,} trained tokens, {cost}) → {out}; use it as "
                   f"--teacher {s['teacher_spec']}", err=True)
        return
    final = ", ".join(f"{k} {v:.4f}" for k, v in s["final"].items())
    ev = s.get("eval") or {}
    held = ", ".join(f"{k.removeprefix('eval_')} {v:.4f}" for k, v in ev.items()
                     if k.startswith("eval_") and isinstance(v, float))
    from synth.train.data import skipped_rows, skipped_text

    skipped = skipped_text(skipped_rows(s["data"]))
    typer.echo(f"{s['steps']} steps on {s['data']['train_examples']:,} examples "
               f"({s['tokens']:,} tokens, {s['tokens_per_s']:,.0f} tokens/s, "
               f"{s['train_s']:.1f}s); final {final}"
               f"{'; held-out ' + held if held else ''}{'; ' + skipped if skipped else ''}"
               f" → {out}", err=True)


def eval_command(**options: Any) -> None:
    """Compare a student with its teacher on held-out rows: loss, perplexity, per-token KL,
    top-1 agreement, task accuracy through the curation verifiers, speed and size. Writes
    eval.json (and answers.jsonl: every scored answer and its verdict) and prints a table."""
    from synth.train import evaluate as run

    result = _call(run, interrupted="nothing was written", **options)
    from synth.train.evaluation import print_table

    print_table(result)


_command("train", train_command, "synth.train.config:TrainConfig",
         "Train a student on trace rows (SFT, KL distillation, or both).")


_command("eval", eval_command, "synth.train.config:EvalConfig",
         "Compare a trained student with its teacher on held-out rows.")


def curate(*, input: Path, filters: str | None = None, out: Path,
           recipe: str | None = None, engine: str = "local",
           ray_address: str | None = None) -> None:
    """Apply a filter set. Every dropped row goes to rejects.parquet with its reason."""
    from synth.curate import curate as run
    from synth.errors import ConfigError

    if filters is not None and recipe is not None:
        _fail(ConfigError("--filters: give --filters or its old name --recipe, not both"))
    filters = next((f for f in (filters, recipe) if f is not None), "default")

    def step_line(st: dict) -> None:  # printed as each step finishes: progress on long runs
        why = ", ".join(f"{k}={v}" for k, v in st["reasons"].items())
        typer.echo(f"  {st['step']:<16} {st['in']:>8} in  {st['dropped']:>7} dropped  "
                   f"{st['seconds']:>7.1f}s{'  ' + why if why else ''}", err=True)
        info = st.get("info", {})
        j = info.get("judge")
        if j and j.get("requests"):
            cost = "unknown" if j.get("cost_usd") is None else f"${j['cost_usd']:.4f}"
            typer.echo(f"  {'':<16} judge: {j['requests']} requests ({j['from_cache']} cached, "
                       f"{j['failed']} failed), {j['unscored']} unscored, cost {cost}; "
                       f"run in {j['run_dir']}", err=True)
        v = info.get("verdicts")
        if v:
            typer.echo(f"  {'':<16} verdicts: {v['correct']} correct, {v['wrong']} wrong, "
                       f"{v['unverifiable']} unverifiable", err=True)
        box = info.get("sandbox")
        if box and box.get("summary"):
            typer.echo(f"  {'':<16} {box['summary']}", err=True)
        for w in st.get("warnings", []):
            typer.secho(f"  {'':<16} WARNING: {w}", err=True, fg="yellow", bold=True)

    def start_line(rows, fs) -> None:  # once every check has passed
        n = rows if isinstance(rows, int) else rows.height  # engine ray: the row count
        typer.echo(f"curating {n:,} rows with {fs.name} ({len(fs.steps)} steps):",
                   err=True)
        if engine == "ray":  # where each step runs, so nobody waits on a surprise
            from synth.curate.ray_engine import placements

            on = placements(fs)
            solo = [st.name for st, p in zip(fs.steps, on) if p == "driver"]
            typer.echo(f"  on Ray: {', '.join(f'{st.name} ({p})' for st, p in zip(fs.steps, on))}",
                       err=True)
            if solo:
                typer.echo(f"  {', '.join(solo)}: on the Ray driver, over every kept row at "
                           "once (no distributed form)", err=True)

    try:
        result = run(input, filters=filters, out=out, on_start=start_line, on_step=step_line,
                     engine=engine, ray_address=ray_address)
    except UserError as err:
        _fail(err)
    except KeyboardInterrupt:
        typer.echo(f"synth: interrupted; nothing was written to {out} (an llm_judge step's "
                   f"answers so far are cached under {out}/judge/): run the same command to "
                   "resume", err=True)
        raise typer.Exit(130) from None
    s = result.summary
    typer.echo(f"{s['input_rows']} rows → {s['kept']} kept, {s['rejected']} rejected "
               f"({s['filter_set']}) in {s['wall_s']:.1f}s → {out}", err=True)
    if s.get("warnings"):
        typer.secho(f"{len(s['warnings'])} warning(s): see above and {out}/curation.json",
                    err=True, fg="yellow", bold=True)


_command("curate", curate, "synth.curate.config:CurateConfig",
         "Apply a filter set. Every dropped row goes to rejects.parquet with its reason.")


def merge(**options: Any) -> None:
    """Combine runs of several teachers (run directories, `synth curate` output directories
    or .parquet files of trace rows) into one dataset with a card, keeping every column
    curation added. The dataset inherits the most restrictive licence rule and every
    obligation; a denied intent exits 6, unknown terms not accepted exit 7."""
    from synth.dataset import merge_runs

    # merge_runs checks --intent and --out before it reads any input
    path, d = _call(merge_runs, interrupted="nothing was written", **options)
    typer.echo(f"{path}: licence {d.decision} (rule {d.rule}, entries {d.entry}); "
               f"{len(d.obligations)} obligations in {Path(options['out']) / 'README.md'}",
               err=True)


_command("merge", merge, "synth.dataset.config:MergeConfig",
         "Combine runs of several teachers into one dataset with a card.")


def _stage_line(kind: str, stage: str, info: dict) -> None:
    """One line per stage event of ``synth run`` (stderr)."""
    if kind == "start":
        typer.echo(f"▶ {stage}{' (resuming)' if info.get('resumed') else ''}", err=True)
        return
    if kind == "skip":
        typer.echo(f"= {stage}: unchanged, skipped", err=True)
        return
    bits = []
    for k in ("rows", "rejected", "kept", "train_rows", "heldout_rows", "steps",
              "requests", "sent"):
        if info.get(k) is not None:
            bits.append(f"{info[k]:,} {k.replace('_', ' ')}")
    if info.get("cost_usd") is not None:
        bits.append(f"${info['cost_usd']:.4f}")
    if isinstance(info.get("final"), dict):
        bits.append("final " + ", ".join(f"{k} {v:.4f}" for k, v in info["final"].items()))
    if isinstance(info.get("skipped"), dict) and any(info["skipped"].values()):
        from synth.train.data import skipped_text  # rows the train stage left out

        bits.append(skipped_text(info["skipped"]))
    typer.echo(f"✔ {stage}: {'; '.join(bits)} ({info.get('seconds', 0):.1f}s)", err=True)


def run_command(**options: Any) -> None:
    """Run a pipeline: generate stages → curate → train → eval → report.html, in one run
    directory. Stages whose inputs and settings are unchanged are skipped; a killed stage
    resumes."""
    from synth.pipeline import run_pipeline

    target = options.get("out") or "runs/<name>"
    result = _call(run_pipeline, interrupted=f"finished stages are kept in {target} and a "
                   "killed stage resumes: run the same command again", **options,
                   on_event=_stage_line)
    typer.echo(f"{len(result.ran)} stage(s) ran, {len(result.skipped)} skipped → "
               f"{result.out}" + (f"; report: {result.report}" if result.report else ""),
               err=True)


_command("run", run_command, "synth.pipeline.config:RunConfig",
         "Run a pipeline: generate stages → curate → train → eval → report.html.")


def estimate_command(*, json: bool = False, **options: Any) -> None:
    """Requests, input tokens (counted), output tokens (p50/p90 from a small dry run) and
    cost of every generate stage before spending, the batch-API price, and the break-even
    of distilling versus calling the teacher. Writes RUN/estimate.json."""
    import orjson

    from synth.pipeline import estimate_pipeline

    est = _call(estimate_pipeline, interrupted="nothing was written", **options)
    if json:
        typer.echo(orjson.dumps(est, option=orjson.OPT_INDENT_2).decode())
        return
    from synth.pipeline.estimate import format_estimate

    typer.echo(format_estimate(est))


_command("estimate", estimate_command, "synth.pipeline.config:EstimateConfig",
         "Requests, tokens and cost of a pipeline before spending, and the break-even.",
         # --json is how the command prints, not an option of the estimate
         extra={"json": typer.Option(False, "--json", help="Print estimate.json.")})


def export_command(**options: Any) -> None:
    """Export the curated rows for other trainers: HF datasets on disk, chat JSONL (TRL,
    axolotl), or OpenAI fine-tuning JSONL (roles and token limits checked); or a trained
    student as a GGUF file for llama.cpp (--format gguf --quant Q --out FILE.gguf)."""
    from synth.dataset.export import export_run

    res = _call(export_run, interrupted="nothing was written", **options)
    for w in res.warnings:
        typer.secho(f"WARNING: {w}", err=True, fg="yellow", bold=True)
    typer.echo(_export_line(res), err=True)


_command("export", export_command, "synth.dataset.config:ExportConfig",
         "Export the curated rows for other trainers (HF datasets, chat JSONL, OpenAI), "
         "or a student as GGUF.")


def serve_command(**options: Any) -> None:
    """Serve a student and its teacher behind one OpenAI-compatible endpoint: the student
    answers, the teacher when the student is unsure (mean token logprob below
    --threshold)."""
    from synth.train.serve import serve as run

    _call(run, interrupted="stopped", **options)


_command("serve", serve_command, "synth.train.serve:ServeConfig",
         "Serve student + teacher behind one OpenAI-compatible endpoint (routed).")


def _export_line(res: Any) -> str:
    if res.summary.get("format") == "gguf":
        types = ", ".join(f"{k} {v}" for k, v in sorted(res.summary["tensor_types"].items()))
        return (f"exported GGUF {res.summary['quant']} ({res.summary['bytes'] / 2**20:,.1f} "
                f"MiB; tensors {types}) → {res.out}")
    parts = ", ".join(f"{k} {v:,}" for k, v in res.rows.items())
    skip = ", ".join(f"{k}: {v:,}" for k, v in res.skipped.items())
    return f"exported {parts} rows{'; skipped ' + skip if skip else ''} → {res.out}"


licence_app = typer.Typer(no_args_is_help=True, help="The teacher-terms registry.")
app.add_typer(licence_app, name="licence")
app.add_typer(licence_app, name="license", hidden=True)


@licence_app.command("check")
def licence_check(
    teacher: str = typer.Argument(..., help="PROVIDER:MODEL, as for generate."),
    intent: str = typer.Option(..., "--intent",
                               help="research | internal | distributed | competing"),
    base_url: Optional[str] = typer.Option(None, "--base-url"),
    accept_terms: list[str] = typer.Option([], "--accept-terms"),
    licence_file: Optional[Path] = typer.Option(None, "--licence-file"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """May this teacher's outputs train a student for INTENT? Exit 6 on deny."""
    import orjson

    from synth.errors import ConfigError
    from synth.licences import INTENTS, check, load_registry
    from synth.teachers import parse_spec, provider_traits

    try:
        provider, model = parse_spec(teacher)
        if intent not in INTENTS:
            raise ConfigError(f"--intent: must be one of {', '.join(INTENTS)}")
        base_url = base_url or provider_traits(provider).default_base_url
        d = check(load_registry(licence_file), provider=provider, model=model,
                  base_url=base_url, intent=intent, accept=accept_terms)
    except UserError as err:
        _fail(err)
    if as_json:
        typer.echo(orjson.dumps(d.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        blocked = " (needs --accept-terms unknown)" if d.needs_acceptance else ""
        typer.echo(f"{teacher} for intent '{intent}': {d.decision.upper()}{blocked}")
        typer.echo(f"  rule: {d.rule}; evidence: {d.evidence}; entries: {d.entry}")
        for t, src in zip(d.terms, d.sources):
            typer.echo(f"  terms: {t} — {src}")
        for title, items in (("reasons", d.reasons), ("obligations", d.obligations),
                             ("conditions on you", d.user_conditions),
                             ("how to proceed", d.how_to_proceed)):
            if items:
                typer.echo(f"  {title}:")
                for x in items:
                    typer.echo(f"    - {x}")
    if d.decision == "deny":
        raise typer.Exit(6)


@licence_app.command("list")
def licence_list(
    licence_file: Optional[Path] = typer.Option(None, "--licence-file"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every registry entry: id, kind, rule, terms, evidence, source."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from synth.licences import load_registry

    try:
        reg = load_registry(licence_file)
    except UserError as err:
        _fail(err)
    if as_json:
        typer.echo(orjson.dumps([{
            "id": e.id, "kind": e.kind, "provider": e.provider, "hosts": e.hosts,
            "models": e.models, "rule": e.rule, "terms": e.terms, "version": e.version,
            "source": e.source, "evidence": e.evidence, "commercial": e.commercial,
            "spdx": e.spdx, "conditions": [c.text for c in e.conditions],
            "checked": e.checked,
        } for e in reg.entries], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"licence registry (checked {reg.checked})")
    for col in ("id", "provider", "kind", "matches", "rule", "terms", "ev."):
        table.add_column(col)
    for e in reg.entries:
        matches = ", ".join(e.hosts) if e.kind == "host" else ", ".join(e.models)
        table.add_row(e.id, e.provider or "", e.kind, matches, e.rule, e.terms_version(),
                      e.evidence)
    Console(width=160).print(table)


batch_app = typer.Typer(no_args_is_help=True,
                        help="The provider batches of a `synth generate --batch` run.")
app.add_typer(batch_app, name="batch")


def _batch_table(res: dict, as_json: bool, title: str) -> None:
    import orjson

    if as_json:
        typer.echo(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
        return
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("batch", "provider", "state", "status", "requests", "done", "failed",
                "created"):
        table.add_column(col)
    for b in res["batches"]:
        c = b["counts"] or {}
        when = datetime.fromtimestamp(b["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M")
        status = b["status"] or "-"
        if b.get("note"):
            status += f" ({b['note']})"
        table.add_row(b["batch_id"] or f"({b['key']})", b["provider"], b["state"],
                      status, str(b["requests"]), str(c.get("done", "-")),
                      str(c.get("failed", "-")), when)
    Console(width=140, stderr=False).print(table)
    typer.echo(f"{res['answers_cached']} answers in the cache; batches that ended are "
               "collected by running the same `synth generate` command again")


_RUN_DIR = typer.Argument(..., help="The run directory (--out of synth generate --batch).")
_BASE = typer.Option(None, "--base-url", help="Default: the URL the run used.")
_KEYENV = typer.Option(None, "--api-key-env", help="Default: the variable the run used.")


@batch_app.command("status")
def batch_status_command(
    run_dir: Path = _RUN_DIR,
    refresh: bool = typer.Option(True, "--refresh/--no-refresh",
                                 help="Ask the provider (default) or show the ledger only."),
    base_url: Optional[str] = _BASE, api_key_env: Optional[str] = _KEYENV,
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Each batch of the run: provider id, status, requests done and failed."""
    from synth.generate.batch import batch_status

    res = _call(batch_status, interrupted="nothing was changed", run_dir=run_dir,
                refresh=refresh, base_url=base_url, api_key_env=api_key_env)
    _batch_table(res, as_json, f"batches of {run_dir}")


@batch_app.command("cancel")
def batch_cancel_command(
    run_dir: Path = _RUN_DIR, base_url: Optional[str] = _BASE,
    api_key_env: Optional[str] = _KEYENV,
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Cancel the run's batches that have not ended (their answers so far are kept)."""
    from synth.generate.batch import batch_cancel

    res = _call(batch_cancel, interrupted="some batches may be cancelled; run `synth batch "
                "status` to see", run_dir=run_dir, base_url=base_url,
                api_key_env=api_key_env)
    _batch_table(res, as_json, f"batches of {run_dir} (cancel sent)")


scorer_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@scorer_app.command()
def train_scorer(
    labels: Path = typer.Argument(..., help='JSONL of labelled rows: {"text": ..., '
                                  '"score": 0-5} (e.g. a teacher\'s educational-value notes).'),
    out: Path = typer.Option(..., "--out", "-o", help="Where the trained head (.npz) goes."),
    text_field: str = typer.Option("text", "--text-field"),
    label_field: str = typer.Option("score", "--label-field"),
    ridge: float = typer.Option(1.0, help="L2 strength of the ridge head."),
) -> None:
    """Train a quality head on MiniLM embeddings; use it with the `quality` step."""
    from synth.curate.embed import train_scorer as train

    try:
        report = train(labels, out=out, text_field=text_field, label_field=label_field,
                       ridge=ridge)
    except UserError as err:
        _fail(err)
    typer.echo(f"{out}: {report['rows']} rows, held-out MAE {report['holdout_mae']}, "
               f"Spearman {report['holdout_spearman']}", err=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="synth: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    # `synth curate train-scorer LABELS`: a subcommand beside `synth curate INPUT`, which
    # click cannot express (a group's argument would swallow the subcommand name).
    if sys.argv[1:3] == ["curate", "train-scorer"]:
        scorer_app(sys.argv[3:], prog_name="synth curate train-scorer")
        return
    if sys.argv[1:2] == ["curate"] and _is_the_program():
        # registered before anything the command imports registers its own: runs last
        atexit.register(_exit_without_teardown)
    try:
        app()
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            _EXIT_CODE.append(e.code or 0)
        raise


_EXIT_CODE: list[int] = []  # the code `synth curate` exits with, once it has returned


def _is_the_program() -> bool:
    """This process was started to run :func:`main` (the ``synth`` script, ``python -m
    synth``), whose exit status is then the process's; not a test or a script that calls
    it and goes on."""
    return getattr(sys.modules.get("__main__"), "main", None) is main


def _exit_without_teardown() -> None:
    """The last exit handler of `synth curate`: leave without the interpreter's teardown,
    which frees a run's rows object by object and unloads numba's LLVM (~0.5 s of a
    curation). Safe because by now every output is written, closed and renamed into place
    (synth.io.write_atomic), every other exit handler has run (they run last-registered
    first; only logging's was registered before this one, and is called here) and no
    non-daemon thread is left (the interpreter joins them before the exit handlers). Not
    after an uncaught exception: then the normal exit prints it and returns 1."""
    if not _EXIT_CODE or "coverage" in sys.modules:  # coverage saves its data at exit
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to flush
            stream.flush()
    os._exit(_EXIT_CODE[0])


if __name__ == "__main__":
    main()
