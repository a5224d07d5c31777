"""A pipeline file's after-training sections, read into the eval stage's options:
``route`` (the student → teacher cascade: ``synth eval --cascade``'s settings) and
``quantise`` (the student's GGUF files, scored beside it: ``synth eval --compare``), and
``eval.compare``'s files. ``ck`` is the pipeline file's checker (its ``error`` and
``unknown`` name the file, line and key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synth.errors import ConfigError, UserError
from synth.options import error_text

__all__ = ["ROUTE_KEYS", "route_section", "quantise_section", "compare_paths",
           "check_quantisable"]


def _beside(p: Any, base_dir: Path) -> Path:
    q = Path(str(p)).expanduser()
    return q if q.is_absolute() else base_dir / q


#: route's keys → synth eval's cascade options
ROUTE_KEYS = {"target": "cascade_target", "price": "cascade_price",
          "student_usd_per_hour": "student_usd_per_hour"}


def route_section(data: dict, ck: Any, ev: dict[str, Any]) -> None:
    """``route:`` (a mapping of :data:`ROUTE_KEYS`'s keys, or true) into the eval options."""
    v = data.get("route")
    if v is None or v is False:
        return
    if v is True:
        v = {}
    if not isinstance(v, dict):
        raise ck.error(("route",), "must be a mapping (target, price, "
                       "student_usd_per_hour) or true for the defaults")
    for k in ("cascade", *ROUTE_KEYS.values()):
        if k in ev:
            raise ck.error(("eval", k), "routing is set in the route section: give it once")
    from synth.train.cascade import teacher_price
    from synth.train.config import EvalConfig

    for k, x in v.items():
        if k not in ROUTE_KEYS:
            raise ck.unknown(("route",), k, set(ROUTE_KEYS))
        try:  # each value as synth eval checks its option, named as written here
            EvalConfig(student=".", teacher=".", data=Path("."), **{ROUTE_KEYS[k]: x})
        except ValidationError as e:
            raise ck.error(("route", k), error_text(e.errors()[0])) from None
        ev[ROUTE_KEYS[k]] = x
    if "price" in v:  # a typo would leave every cost of the curve unknown, after training
        try:
            found = teacher_price(str(v["price"]), ev.get("price_file"), strict=True)
        except (UserError, ValueError) as e:
            raise ck.error(("route", "price"), str(e)) from None
        if found is None:
            raise ck.error(("route", "price"), f"{v['price']}: no entry in the price table"
                           + (" or the pipeline's price_file" if ev.get("price_file") else "")
                           + " (give PROVIDER:MODEL as prices.yaml names it, or a dated snapshot of it)")
    ev["cascade"] = True


def quantise_section(data: dict, ck: Any, ev: dict[str, Any] | None) -> tuple[str, ...]:
    """``quantise:`` a quant name or a list of them, each one ``synth export`` writes."""
    import shutil

    from synth.train.gguf_export import LLAMA_QUANTIZE, QUANTS

    v = data.get("quantise")
    if v is None or v == []:
        return ()
    if ev is None:
        raise ck.error(("quantise",), "the eval stage writes and scores the GGUF files: add "
                       "an eval section")
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not all(isinstance(q, str) for q in names):
        raise ck.error(("quantise",), f"must be a list of {', '.join(QUANTS)}")
    for i, q in enumerate(names):
        where = ("quantise", i) if isinstance(v, list) else ("quantise",)
        if q not in QUANTS:
            raise ck.error(where, f"{q!r}: not one of {', '.join(QUANTS)}")
        if q == "q4_k_m" and shutil.which(LLAMA_QUANTIZE) is None:
            raise ck.error(where, f"q4_k_m needs llama.cpp's {LLAMA_QUANTIZE} on PATH (the "
                           "gguf package cannot write K-quants); use q4_0 or q8_0")
    if len(set(names)) != len(names):
        raise ck.error(("quantise",), "a quant is named twice")
    if "compare" in ev:
        raise ck.error(("eval", "compare"), "the run's own GGUF files come from quantise; "
                       "eval.compare is for files outside the run")
    return tuple(names)


def compare_paths(ev: dict[str, Any], base_dir: Path, ck: Any) -> None:
    """eval.compare's files, relative to the pipeline file as every file it names, checked
    as ``synth eval --compare`` checks them (before the run, not after training)."""
    from synth.train.variants import check_compare

    v = ev.get("compare")
    if v is None:
        return
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        raise ck.error(("eval", "compare"), "must be a list of .gguf files or model "
                       "directories")
    ev["compare"] = [str(_beside(c, base_dir)) for c in items]
    try:
        check_compare(tuple(ev["compare"]))
    except ConfigError as e:
        raise ck.error(("eval", "compare"), str(e).removeprefix("--compare ")) from None


def check_quantisable(p: Any) -> None:
    """Before a run with ``quantise`` trains anything: the model its student comes from (the
    train teacher for a ``from-teacher`` cut, else the student spec) can be written as
    GGUF (:func:`synth.train.gguf_export.check_exportable`)."""
    from synth.train.gguf_export import check_exportable

    src = str(p.train["student"])
    try:
        check_exportable(str(p.train.get("teacher") or "") if src.startswith("from-teacher")
                         else src)
    except UserError as e:
        raise ConfigError(f"{p.path}: quantise: the student cannot be written as GGUF: "
                          f"{e}") from None
