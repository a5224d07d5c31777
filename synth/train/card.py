"""The model card (README.md) of a trained student: how it was made, what it was trained
on, and the licence obligations its training data carries forward.

The licence section is the training data's, recomputed from the rows' provenance columns as
the dataset card does (:func:`synth.dataset.card.render_curated_card`): each teacher checked
again for the narrowest intent the rows were generated for. Its obligations (a name prefix
such as "Llama 3", an attribution, an acceptable-use policy) bind the student, so they are
repeated here and the card's title follows a required name prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["render_model_card", "data_licence", "provenance"]


def data_licence(rows: list[dict[str, Any]]):
    """``(Decision | None, rows without provenance)`` for the rows a student learnt from,
    decided as the dataset card decides (:func:`synth.dataset.card.inherited_licence`)."""
    import polars as pl

    from synth.dataset.card import CARD_COLUMNS, inherited_licence, provenance_groups
    from synth.licences import load_registry

    if not rows or not {"provider", "model"} <= set(rows[0]):
        return None, len(rows)
    df = pl.DataFrame([{c: r.get(c) for c in CARD_COLUMNS} for r in rows],
                      infer_schema_length=None)
    groups = provenance_groups(df)
    unknown = len(rows) - sum(g["n"] for g in groups)
    if not groups:
        return None, unknown
    return inherited_licence(groups, load_registry())[0], unknown


def provenance(rows: list[dict[str, Any]], base_model: str | None) -> dict[str, Any]:
    """What the licence check reads back from a trained student (``train.json``, and the
    GGUF exported from it): the teachers its rows came from, how many rows had none, and
    the weights it started from."""
    teachers = sorted({(r.get("provider"), r.get("model"), r.get("base_url") or None)
                       for r in rows if r.get("provider") and r.get("model")},
                      key=lambda t: tuple(x or "" for x in t))
    return {"teachers": [list(t) for t in teachers],
            "rows_without": sum(1 for r in rows if not (r.get("provider") and r.get("model"))),
            "base_model": base_model}


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def render_model_card(*, summary: dict[str, Any], rows: Any, out: Path) -> str:
    from synth.version import __version__

    licence, unknown = data_licence(rows.rows)
    prefixes = sorted(set(licence.name_prefixes)) if licence else []
    name = out.name or "student"
    if prefixes and not any(name.startswith(p) for p in prefixes):
        title = f"{prefixes[0]} {name}"
    else:
        title = name
    spdx = sorted(set(licence.spdx)) if licence and not unknown else []
    header = {"library_name": "transformers", "pipeline_tag": "text-generation",
              "tags": ["synth", "distillation", summary["loss"]],
              "license": spdx[0] if len(spdx) == 1 else "other"}
    if header["license"] == "other":
        header["license_name"] = "mixed" if len(spdx) > 1 else "unknown"
    base = summary.get("teacher") if summary["student"].startswith("from-teacher") else \
        summary["student"]
    if base:
        header["base_model"] = str(base).removeprefix("local:")
    d = summary["data"]
    method = {"sft": "supervised fine-tuning (cross-entropy) on the teacher's answers",
              "kl": f"{summary['kl']} KL to the teacher's token distributions ({summary['kd']})",
              "sft+kl": f"alpha = {summary['alpha']} CE + (1 - alpha) {summary['kl']} KL "
                        f"({summary['kd']})"}[summary["loss"]]
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
             f"# {title}", "",
             f"A student model trained with synth {__version__} by {method}.", "",
             "## How it was made", "",
             f"- student: `{summary['student']}` — {summary['made']}",
             f"- teacher: `{summary['teacher'] or 'none (SFT on stored answers)'}`",
             f"- loss: `{summary['loss']}`" + (f", temperature {summary['temperature']}"
                                                if summary.get("temperature") else ""),
             f"- steps: {summary['steps']} ({summary['epochs']} epochs), lr {summary['lr']}, "
             f"{summary['scheduler']} schedule, batch {summary['batch_size']} x "
             f"{summary['grad_accum']} accumulation"
             + (f" x {summary['processes']} processes ({summary['parallel']})"
                if summary.get("processes", 1) > 1 else "")
             + f", max length {summary['max_len']}"
             f"{', packed' if summary['packing'] else ''}"
             f"{', LoRA r=' + str(summary['lora_r']) + ' (merged)' if summary['lora_r'] else ''}",
             f"- reasoning traces: {summary['reasoning']}; chat template: "
             f"{summary['chat_template']}",
             f"- {summary['device']}, {summary['precision']}; {summary['tokens']:,} tokens in "
             f"{summary['train_s']:.1f} s ({summary['tokens_per_s']:,.0f} tokens/s)",
             f"- parameters: {summary['params']:,}", "",
             "## Training data", "",
             f"`{d['path']}` ({d['source']}): {d['rows']:,} rows, {d['examples']:,} examples "
             f"({d['train_examples']:,} trained on, {d['heldout_examples']:,} held out), "
             f"{d['target_tokens']:,} target tokens."]
    if d["skipped_rows"] or d["dropped_examples"]:
        left = {**d["skipped_rows"], **d["dropped_examples"]}
        lines.append("Left out: " + ", ".join(f"{k} ({v:,})" for k, v in left.items()) + ".")
    if rows.dataset_card is not None:
        lines.append(f"The dataset card: `{rows.dataset_card}`.")
    lines += ["", "## Results", "", "| metric | value |", "|---|---:|"]
    for k, v in (summary.get("final") or {}).items():
        lines.append(f"| final train {k} | {_fmt(v)} |")
    for k, v in (summary.get("eval") or {}).items():
        if k not in ("step", "split"):
            lines.append(f"| {k.replace('_', ' ')} | {_fmt(v)} |")
    lines += ["", "## Licence and obligations carried from the training data", ""]
    if licence is None:
        lines += ["**Unknown.** The training rows carry no provenance (teacher, licence "
                  "columns), so synth cannot say under which terms this student may be used. "
                  "Check the terms of whatever produced them before you use or publish it."]
    else:
        lines += [f"Intent the data was cleared for: **{licence.intent}**; decision "
                  f"**{licence.decision}** (rule `{licence.rule}`, registry entries "
                  f"{', '.join(f'`{e}`' for e in licence.entries) or '-'}).", ""]
        if licence.obligations:
            lines += ["This student must carry:", ""] + [f"- {o}" for o in licence.obligations]
        else:
            lines += ["The registry lists no obligation for these teachers' outputs."]
        if prefixes:
            lines += ["", f"Its name must begin with {', '.join(repr(p) for p in prefixes)}: "
                      "the title above does; keep it when you publish."]
        if licence.user_conditions:
            lines += ["", "Conditions on you:", ""] + [f"- {c}" for c in licence.user_conditions]
        if unknown:
            lines += ["", f"**{unknown:,} training rows carry no provenance**: the decision "
                      "above does not cover them."]
    lines += ["", "Licence facts come from synth's registry (`synth licence list`); re-check "
              "them before you publish.", ""]
    return "\n".join(lines)
