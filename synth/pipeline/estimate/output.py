"""The estimate for the terminal: plain text made from :func:`~.summary.summarise`'s data,
computing nothing the data does not hold."""

from __future__ import annotations

from typing import Any

from synth.pipeline.estimate.summary import column_totals, summarise

__all__ = ["format_estimate"]


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "$0"
    if abs(x) < 0.01:
        return f"${x:.6f}"
    return f"${x:,.4f}" if abs(x) < 100 else f"${x:,.2f}"


def _int(x: int | float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _days_text(d: float | str) -> str:
    return d if isinstance(d, str) else f"{d:,.1f}"


def _stage_lines(est: dict[str, Any]) -> list[str]:
    header = ["stage", "teacher", "requests", "input tok", "output p50", "output p90",
              "cost p50", "cost p90", "batch", "dry run", "dry $"]
    rows = [[e["stage"], e["teacher"], _int(e["requests"]), _int(e["input_tokens"]),
             _int(e["output_tokens_p50"]), _int(e["output_tokens_p90"]), _usd(e["cost_usd"]),
             _usd(e["cost_usd_p90"]), _usd(e["batch_cost_usd"]), _int(e["dry_run_requests"]),
             _usd(e["dry_run_cost_usd"])] for e in est["stages"]]
    tot = column_totals(est["stages"])
    rows.append(["total", "", _int(tot["requests"]), _int(tot["input_tokens"]),
                 _int(tot["output_tokens_p50"]), _int(tot["output_tokens_p90"]),
                 _usd(est["total_cost_usd"]), _usd(est["total_cost_usd_p90"]),
                 _usd(est["total_batch_cost_usd"]), "", ""])
    lines = _table(header, rows)
    if any(e.get("batch") for e in est["stages"]):
        lines.append("as written (batch: true stages at the batch price): "
                     f"{_usd(est.get('total_planned_cost_usd'))}")
    counters = sorted({e["token_counter"] for e in est["stages"]})
    lines.append(f"input tokens counted with: {', '.join(counters)}")
    notes = [(e["stage"], e["teacher"], n) for e in est["stages"] for n in e["notes"]]
    if notes:
        lines.append("")
        lines.append("notes:")
        seen = set()
        for stage, teacher, n in notes:
            if (stage, teacher, n) not in seen:
                seen.add((stage, teacher, n))
                lines.append(f"  {stage} / {teacher}: {n}")
    return lines


def _break_even_lines(be: dict[str, Any]) -> list[str]:
    if "missing" in be:
        return [f"break-even: not computed: {be['reason']}"]
    inp = be["inputs"]
    lines = [
        f"break-even: one-time {_usd(be['one_time_usd'])} (data "
        f"{_usd(inp['distil_cost_usd'])} + training {_usd(inp['train_cost_usd'])}); "
        f"teacher {_usd(inp['teacher_cost_per_request'])}/request; student "
        f"{_usd(inp['student_cost_per_hour'])}/h at "
        f"{_int(inp['student_requests_per_hour'])} requests/h"]
    trows = [[_int(r["requests_per_day"]), "", _usd(r["teacher_per_day_usd"]),
              _usd(r["student_per_day_usd"]["pay_per_use"]),
              _usd(r["student_per_day_usd"]["always_on"]),
              _days_text(r["break_even_days"]["pay_per_use"]),
              _days_text(r["break_even_days"]["always_on"])]
             for r in [{"requests_per_day": inp["requests_per_day"], **be}, *be["table"]]]
    trows[0][1] = "(yours)"
    if inp.get("teacher_share"):
        lines.append(f"routed: the teacher still answers {inp['teacher_share']:.1%} of "
                     "requests, counted in the student's day")
    lines += _table(["requests/day", "", "teacher/day", "student/day ppu",
                     "student/day 24h", "days ppu", "days 24h"], trows)
    lines.append("ppu: pay per use (only the hours needed); 24h: always-on instances")
    return lines


def format_estimate(est: dict[str, Any]) -> str:
    """Plain text for the terminal: :func:`~.summary.summarise`'s result (or one
    :func:`~.stage.estimate_stage` result) as a table per stage × teacher, the totals, the
    notes and the break-even table."""
    if "stages" not in est:  # one stage: the same data, summarised
        est = summarise([est], break_even_args=None)
    lines = _stage_lines(est)
    be = est.get("break_even")
    if be:
        lines.append("")
        lines += _break_even_lines(be)
    rt = est.get("routing")
    if rt:
        at = "" if rt.get("threshold") is None else (
            f" at threshold {rt['threshold']} (n = {rt.get('n')}, "
            f"{rt.get('retained') or 0:.1%} of the teacher's accuracy)")
        lines.append(f"routing: teacher share {rt['teacher_share']:.1%}{at}; {rt['source']}")
    return "\n".join(lines) + "\n"
