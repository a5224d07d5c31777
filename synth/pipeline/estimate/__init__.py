"""``synth estimate``: what a pipeline's generate stages will cost, before they run.

For each generate stage, :func:`estimate_stage` takes the recipe's planned calls
(:class:`~synth.recipes.base.PlannedCall`) and the stage's teacher routes, and per teacher:

* **requests**: each call's ``requests`` times the teacher's share of the call's prompts, as
  :func:`~synth.recipes.base.route_prompts` assigns them (a call whose prompts are not known
  in advance uses the share of the first known call; ``all`` mode gives every teacher every
  request). Shares are apportioned to whole requests (largest remainder).
* **input tokens**: counted on the rendered prompts routed to the teacher, the call's mean
  per prompt times its requests. The counter (``token_counter``) is the provider's own (its
  ``token_counter`` trait: a local teacher's tokenizer with its chat template, when it is
  cheap to get: a model folder, or a GGUF already converted into synth's cache), else
  :func:`~synth.teachers.estimate_tokens` (≈4 characters a token). When a dry run ran, the
  provider's reported prompt tokens for the dry-run prompts calibrate the estimate
  (``estimate_tokens+dry_run``, factor in ``input_calibration``). A call with no known
  prompts uses the mean of the teacher's known prompts (the call is marked ``estimated``).
* **output tokens**: from a dry run. ``dry_run`` prompts per teacher, a seeded sample of the
  prompts routed to it by the first call that has prompts, go through
  :func:`synth.generate.generate` into ``<out>/calls/<call>/<teacher slug>/``, the folder
  :meth:`~synth.recipes.base.Teaching.ask` uses, with the stage's options, the teacher's and
  the call's ``max_tokens``: the answers land in that folder's cache, so neither a second
  estimate nor the real run pays for them again (the real run reuses them where it sends
  the same request: one sample per prompt at the same parameters). Per request p50, p90 and
  mean of the dry-run output tokens (capped at each call's ``max_tokens``) times the
  requests give ``output_tokens_p50``, ``output_tokens_p90`` and ``output_tokens`` (the
  expected total, to compare with what a run spends). With ``dry_run=0``, or when no dry-run
  answer came back, every answer is assumed to use ``max_tokens`` (``worst_case``).
  A dry run into a folder that already holds a run's outputs leaves those outputs as they
  were (only its cache grows).
* **cost**: input × price.input + output (p50: ``cost_usd``, p90: ``cost_usd_p90``) ×
  price.output, from the price table (``price_file`` extends it); ``batch_cost_usd`` at the
  provider's batch price (OpenAI Batch API, Anthropic Message Batches: 50%) where the
  provider has a batch API (its ``batch_api`` trait) and the table has a price. Costs are
  null, with the reason in ``notes``, when no price is known (your own server's host); a
  local teacher is priced at 0 per token. ``cost_usd`` covers every request, the dry run's
  included; ``dry_run_cost_usd`` is the part the dry run already paid (its answers, cached
  or new).

:func:`summarise` totals the stages into ``estimate.json``'s shape; :func:`break_even`
compares distilling with calling the teacher for ever; :func:`format_estimate` renders
either for the terminal.

Modules: :mod:`.tokens` (counting), :mod:`.dryrun` (the dry run), :mod:`.costs` (shares and
dollars), :mod:`.stage` (one stage), :mod:`.breakeven`, :mod:`.summary` (estimate.json) and
:mod:`.output` (text for the terminal, from the data alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.pipeline.estimate.breakeven import ASSUMED, BREAK_EVEN_TABLE, break_even
from synth.pipeline.estimate.output import format_estimate
from synth.pipeline.estimate.stage import estimate_stage
from synth.pipeline.estimate.summary import STAGE_KEYS, summarise

__all__ = ["estimate_pipeline", "estimate_stage", "break_even", "summarise", "format_estimate",
           "BREAK_EVEN_TABLE", "STAGE_KEYS"]


def _routed_share(p: Any, out: Path) -> dict[str, Any] | None:
    """The share of requests a routed pipeline (a ``route`` section) still sends to the
    teacher: ``estimate.teacher_share`` when given, else what the run's eval measured at
    its chosen threshold on the test half (``eval/eval.json``, when it was measured with
    the pipeline's route settings, on at least one prompt), else 0 with a note saying why
    it is not measured. With the measurement come the teacher's cost per request at
    ``route.price`` (its measured tokens) and where it came from. None for a pipeline that
    does not route."""
    import json
    import math

    from synth.train.config import EvalConfig

    ev = p.eval or {}
    if not ev.get("cascade"):
        return None
    if "teacher_share" in p.estimate:
        return {"teacher_share": p.estimate["teacher_share"], "source": "estimate.teacher_share"}

    def unmeasured(why: str) -> dict[str, Any]:
        return {"teacher_share": 0.0, "source": f"not measured yet ({why}): the student is "
                "assumed to answer every request"}

    f = out / "eval" / "eval.json"
    try:  # the stdlib reads what eval wrote (json.dumps: Infinity stays readable)
        cas = json.loads(f.read_text(encoding="utf-8")).get("cascade")
    except FileNotFoundError:
        return unmeasured("no eval/eval.json: run the pipeline")
    except (OSError, ValueError, AttributeError) as e:
        return unmeasured(f"{f} unreadable: {type(e).__name__}")
    if not isinstance(cas, dict) or not isinstance(cas.get("test"), dict):
        return unmeasured("eval/eval.json has no chosen threshold")
    want = {"target": ev.get("cascade_target", EvalConfig.model_fields["cascade_target"].default),
            "price": ev.get("cascade_price"),
            "student_usd_per_hour": ev.get("student_usd_per_hour")}
    if cas.get("settings") != want:
        return unmeasured(f"eval/eval.json was measured with {cas.get('settings')}, the "
                          f"pipeline now routes with {want}: rerun the eval stage")
    test = cas["test"]
    share, n = test.get("teacher_share"), test.get("n")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or \
            not math.isfinite(share) or not 0 <= share <= 1:
        return unmeasured(f"eval/eval.json: cascade.test.teacher_share {share!r} is no share")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return unmeasured("the test half held no prompt")
    found = {"teacher_share": share, "threshold": test.get("threshold"), "n": n,
             "accuracy": test.get("accuracy"), "retained": test.get("retained"),
             "source": "eval/eval.json: the chosen threshold on the test half"}
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    usd = cas.get("teacher_usd_per_request")
    if cas.get("priced_as") and number(usd) and usd >= 0:
        found.update(teacher_usd_per_request=usd, teacher_priced_as=cas["priced_as"])
    sec = cas.get("student_s_per_request")
    if number(sec) and sec > 0:  # the student's measured pace (eval's batched generation)
        found["student_requests_per_hour"] = round(3600 / sec, 1)
    return found


def estimate_pipeline(path: str | Path, *, out: str | Path | None = None,
                      dry_run: int | None = None) -> dict[str, Any]:
    """``synth estimate PIPELINE.yaml``: :func:`estimate_stage` for every generate stage,
    :func:`summarise`d, written to ``<run dir>/estimate.json`` (the run directory
    ``synth run`` uses, ``runs/<name>`` by default, so the dry run's answers are the run's
    own cache and the report can set the estimate beside what was spent). ``dry_run``
    defaults to the pipeline's ``estimate.dry_run``, else 8."""
    import orjson

    from synth.io import claim_out_dir, exclusive_dir, make_out_dir, write_atomic
    from synth.pipeline.config import check_before_run, load_pipeline
    from synth.pipeline.run import recorded_stages
    from synth.recipes.base import get_recipe

    p = load_pipeline(path)
    if not p.generate:
        from synth.errors import ConfigError

        raise ConfigError(f"{path}: no generate stage to estimate")
    out = claim_out_dir(Path(out) if out is not None else Path("runs") / p.name, "synth run",
                        default=None if out is not None else "the default")
    dry = p.estimate.get("dry_run", 8) if dry_run is None else dry_run
    recorded_stages(out, p.name, also=("estimate.json",))  # not another pipeline's run
    check_before_run(p)  # inputs, templates, licences: a mistake writes nothing
    make_out_dir(out)
    with exclusive_dir(out):  # its dry runs write inside it
        stages = []
        for g in p.generate:
            calls = get_recipe(g.recipe)().plan(g.params, base_dir=p.base_dir,
                                                samples=g.options.get("samples", 1))
            stages.append(estimate_stage(g.name, calls, g.routes,
                                         {**g.options, "progress": False},
                                         out=out / "generate" / g.name, dry_run=dry,
                                         mode=g.route))
        args = {**ASSUMED, **{k: v for k, v in p.estimate.items() if k != "dry_run"}}
        routing = _routed_share(p, out)
        if routing is not None and "teacher_share" not in args:
            args["teacher_share"] = routing["teacher_share"]
        measured = set()  # break-even inputs eval measured (the rest stay assumptions)
        if routing and "teacher_usd_per_request" in routing and \
                "teacher_cost_per_request" not in p.estimate:
            # the teacher at the API model it stands for (route.price), per served request
            args["teacher_cost_per_request"] = routing["teacher_usd_per_request"]
        if routing and "student_requests_per_hour" in routing and \
                "student_requests_per_hour" not in p.estimate:
            args["student_requests_per_hour"] = routing["student_requests_per_hour"]
            measured.add("student_requests_per_hour")
        if routing and (p.eval or {}).get("student_usd_per_hour") is not None and \
                "student_cost_per_hour" not in p.estimate:
            args["student_cost_per_hour"] = p.eval["student_usd_per_hour"]  # route's own
            measured.add("student_cost_per_hour")
        est = summarise(stages, break_even_args=args)
        est["pipeline"] = p.name
        if routing is not None:
            est["routing"] = routing
            be = est.get("break_even") or {}
            if "assumptions" in be:  # where the teacher's share came from, on the page too
                be["assumptions"].append(f"routing: teacher share "
                                         f"{routing['teacher_share']:.1%}; {routing['source']}")
                if "teacher_priced_as" in routing:
                    be["assumptions"].append(
                        f"the teacher per request: its tokens measured by eval, priced as "
                        f"{routing['teacher_priced_as']} (route.price)")
                if "student_requests_per_hour" in measured:
                    be["assumptions"].append(
                        "the student's requests per hour: its pace measured by eval "
                        "(greedy, batched as eval generates)")
                if "student_cost_per_hour" in measured:
                    be["assumptions"].append("the student's cost per hour: "
                                             "route.student_usd_per_hour")
        est["assumed"] = {k: v for k, v in ASSUMED.items()
                          if k not in p.estimate and k not in measured}
        est["dry_run"] = dry
        write_atomic(out / "estimate.json", orjson.dumps(est, option=orjson.OPT_INDENT_2,
                                                         default=str))
    return est
