"""``synth run PIPELINE.yaml``: every stage of a distillation in one run directory.

generate stages (each a recipe) → the dataset (their rows merged, one licence) → split
(held-out source prompts, before anything filters) → curate (the training side) → train →
eval (on every held-out source prompt) → ``report.html``.

The split comes before curation on purpose: the held-out prompts are drawn from every prompt
the recipes asked, with the rows the recipes dropped and the requests that failed, so that
``synth eval`` sees the prompts the teacher got wrong too (a split after a ``cot`` recipe or
curation would hold out only prompts the teacher was verified to solve). It keys on the
source prompt (:func:`synth.rows.source_key`): a prompt's samples, its teachers' answers and
its evolutions stay on one side.

Each stage is skipped when its outputs are complete and its inputs and settings are
unchanged: ``manifest.json`` records, per stage, a fingerprint (sha256 of the stage's
settings, the content of every file it reads — input files, templates, the previous
stage's outputs — and the synth version) and the sha256 of every output it wrote. A stage
whose fingerprint or outputs differ runs again; so does every stage after it, since its
inputs changed. A generate stage that runs again re-asks only what its request cache lacks
(a changed template costs only the prompts it changes); a killed train stage continues
from its last checkpoint.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from synth.errors import ConfigError
from synth.models import file_sha256
from synth.pipeline.config import Pipeline, check_before_run, load_pipeline

__all__ = ["run_pipeline", "PipelineResult", "MANIFEST", "stage_dir"]

log = logging.getLogger("synth")

MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


@dataclass
class PipelineResult:
    out: Path
    manifest: dict[str, Any]
    report: Path | None
    ran: list[str]
    skipped: list[str]


def stage_dir(out: Path, key: str) -> Path:
    """Where a stage writes: ``generate/<name>``, ``curate``, ``student``, ``eval``."""
    if key.startswith("generate."):
        return out / "generate" / key.split(".", 1)[1]
    return out / {"dataset": ".", "curate": "curate", "split": "split", "train": "student",
                  "eval": "eval"}[key]


def _canon(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                        default=str)


def _digest(*parts: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(_canon(p))
        h.update(b"\0")
    return h.hexdigest()


def _files_in(value: Any, base_dir: Path) -> dict[str, str]:
    """sha256 of every existing file a parameter names (input files, templates)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for v in value.values():
            out.update(_files_in(v, base_dir))
    elif isinstance(value, (list, tuple)):
        for v in value:
            out.update(_files_in(v, base_dir))
    elif isinstance(value, (str, Path)) and len(str(value)) < 4096 and "\n" not in str(value):
        p = Path(value).expanduser()
        p = p if p.is_absolute() else base_dir / p
        try:
            if p.is_file():
                out[str(value)] = file_sha256(p)
        except OSError:
            pass
    return out


def _shipped_templates() -> str:
    """One hash over every shipped template: a recipe names its templates in code, so any
    edit of one must count as a change of every generate stage's settings."""
    from importlib import resources

    root = resources.files("synth") / "prompts"
    parts = []
    for fam in sorted(root.iterdir(), key=lambda x: x.name):
        if fam.is_dir():
            for f in sorted(fam.iterdir(), key=lambda x: x.name):
                if f.name.endswith(".j2"):
                    parts.append((f"{fam.name}/{f.name}", f.read_bytes().hex()))
    return _digest(parts)


def _outputs(d: Path, names: list[str]) -> dict[str, str]:
    return {n: file_sha256(d / n) for n in names if (d / n).is_file()}


def _complete(out: Path, entry: dict[str, Any] | None, fingerprint: str) -> bool:
    """The recorded stage finished with these inputs and its outputs are still as written."""
    if not entry or entry.get("status") != "done" or entry.get("fingerprint") != fingerprint:
        return False
    outputs = entry.get("outputs") or {}
    if not outputs:
        return False
    for rel, sha in outputs.items():
        p = out / rel
        if not p.is_file() or file_sha256(p) != sha:
            return False
    return True


class _Run:
    def __init__(self, p: Pipeline, out: Path, on_event: Callable[..., None] | None,
                 progress: bool | None, stages: dict[str, Any]):
        from synth.version import __version__

        self.p, self.out, self.progress = p, out, progress
        self.on_event = on_event or (lambda *a, **k: None)
        self.version = __version__
        self.manifest: dict[str, Any] = {"version": _MANIFEST_VERSION, "pipeline": p.name,
                                         "stages": stages}
        self.ran: list[str] = []
        self.skipped: list[str] = []

    # ---- manifest
    def save(self) -> None:
        from synth.io import write_atomic

        self.manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_atomic(self.out / MANIFEST, orjson.dumps(self.manifest,
                                                        option=orjson.OPT_INDENT_2))

    def stage(self, key: str, fingerprint: str, force: bool,
              body: Callable[[], tuple[list[str], dict[str, Any]]]) -> bool:
        """Run ``body`` unless the stage is complete and unchanged; returns whether it ran.
        ``body`` returns the output paths (relative to the run directory) and a summary."""
        entry = self.manifest["stages"].get(key)
        if not force and _complete(self.out, entry, fingerprint):
            entry["status_last_run"] = "skipped"
            self.skipped.append(key)
            self.on_event("skip", key, entry.get("summary") or {})
            return False
        resumed = self.was_interrupted(key, fingerprint)
        self.manifest["stages"][key] = {"status": "running", "fingerprint": fingerprint,
                                        "started_at": time.time(), "resumed": resumed}
        self.save()
        self.on_event("start", key, {"resumed": resumed})
        t = time.perf_counter()
        outputs, summary = body()
        seconds = round(time.perf_counter() - t, 3)
        self.manifest["stages"][key] = {
            "status": "done", "status_last_run": "ran", "fingerprint": fingerprint,
            "seconds": seconds, "finished_at": time.time(), "resumed": resumed,
            "outputs": {rel: file_sha256(self.out / rel) for rel in outputs},
            "files": _stage_files(self.out, key), "summary": summary}
        self.save()
        self.ran.append(key)
        self.on_event("done", key, {**summary, "seconds": seconds})
        return True

    def was_interrupted(self, key: str, fingerprint: str) -> bool:
        e = self.manifest["stages"].get(key)
        return bool(e and e.get("status") == "running" and e.get("fingerprint") == fingerprint)


# ---------------------------------------------------------------------------- stages


def _generate(run: _Run, g, force: bool) -> None:
    from synth.recipes.base import get_recipe

    p, out = run.p, run.out
    key = f"generate.{g.name}"
    top = {"teacher": p.teacher, "intent": p.intent, "accept_terms": p.accept_terms}
    fp = _digest("generate", run.version, g.raw, top, g.options,
                 [(r.teacher, r.weight, r.quota, r.options) for r in g.routes],
                 _files_in(g.raw, p.base_dir), _files_in(g.options, p.base_dir),
                 _shipped_templates())
    d = stage_dir(out, key)

    def body():
        from synth.recipes.base import Teaching

        d.mkdir(parents=True, exist_ok=True)
        teaching = Teaching(g.routes, {**g.options, "progress": run.progress}, d,
                            mode=g.route)
        t = time.perf_counter()
        result = get_recipe(g.recipe)().run(g.params, teaching, base_dir=p.base_dir)
        summary = _write_stage(d, g, result, teaching, time.perf_counter() - t)
        rel = f"generate/{g.name}"
        return [f"{rel}/traces.parquet", f"{rel}/rejects.parquet", f"{rel}/stage.json"], {
            "rows": summary["rows"], "rejected": summary["rejected"],
            "cost_usd": summary["cost_usd"], "requests": summary["requests"],
            "sent": summary["sent"]}

    run.stage(key, fp, force, body)


def _teacher_stats(teaching, rows: list[dict], rejects: list[dict]) -> dict[str, Any]:
    from synth.teachers import parse_spec

    stats: dict[str, dict[str, Any]] = {}
    for c in teaching.calls:
        s = c["summary"]
        t = stats.setdefault(c["teacher"], {"requests": 0, "sent": 0, "from_cache": 0,
                                            "rows": 0, "accepted": 0, "rejected": 0,
                                            "errors": 0, "cost_usd": None,
                                            "input_tokens": 0, "output_tokens": 0,
                                            "batch_rows": 0, "batch_usd": 0.0,
                                            "sync_usd": 0.0,
                                            "batch_at_sync_price_usd": 0.0})
        t["requests"] += s["rows"]
        t["sent"] += s["sent"]
        t["from_cache"] += s["from_cache"]
        t["errors"] += s["status"]["error"]
        t["input_tokens"] += s["tokens"]["input"]
        t["output_tokens"] += s["tokens"]["output"]
        if s.get("cost_usd") is not None:
            t["cost_usd"] = round((t["cost_usd"] or 0.0) + s["cost_usd"], 6)
        by_route = s.get("cost_by_route") or {}
        t["batch_rows"] += by_route.get("batch_rows", 0)
        for k in ("batch_usd", "sync_usd", "batch_at_sync_price_usd"):
            t[k] = round(t[k] + (by_route.get(k) or 0.0), 6)
    specs = {}
    for spec in stats:
        try:
            specs[parse_spec(spec)] = spec
        except Exception:  # a spec generate accepted: parse_spec accepts it too
            continue
    for kind, group in (("accepted", rows), ("rejected", rejects)):
        for r in group:
            spec = specs.get((r.get("provider"), r.get("model")))
            if spec is not None:
                stats[spec][kind] += 1
    for t in stats.values():
        t["rows"] = t["accepted"] + t["rejected"]
    return stats


def _write_stage(d: Path, g, result, teaching, wall: float) -> dict[str, Any]:
    """The stage's rows (ids prefixed with the stage name, a ``stage`` column), its rejects
    (with dropped_by / drop_reason) and stage.json, each written atomically."""
    from collections import Counter

    import pyarrow as pa

    from synth.io import write_atomic
    from synth.records import TRACE_SCHEMA

    def table(rows: list[dict], extra: list[tuple[str, Any]]) -> pa.Table:
        schema = pa.schema(list(TRACE_SCHEMA) + [pa.field(n, t) for n, t in extra])
        fixed = [{**r, "id": f"{g.name}/{r['id']}", "stage": g.name} for r in rows]
        return pa.Table.from_pylist(fixed, schema=schema)

    kept = [r for r in result.rows if r.get("status") == "ok"]
    failed = [{**r, "dropped_by": "teacher", "drop_reason": f"error: {r.get('error')}"}
              for r in result.rows if r.get("status") != "ok"]
    rejects = list(result.rejects) + failed
    write_atomic(d / "traces.parquet", table(kept, [("stage", pa.string())]))
    write_atomic(d / "rejects.parquet", table(rejects, [
        ("stage", pa.string()), ("dropped_by", pa.string()), ("drop_reason", pa.string())]))
    teachers = _teacher_stats(teaching, kept, rejects)
    costs = [t["cost_usd"] for t in teachers.values()]
    summary = {
        "stage": g.name, "recipe": g.recipe, "rows": len(kept), "rejected": len(rejects),
        "rejects": dict(Counter(str(r.get("drop_reason") or "").split(":", 1)[0]
                                for r in rejects).most_common()),
        "rejects_by": dict(Counter(str(r.get("dropped_by")) for r in rejects)),
        "teachers": teachers,
        "requests": sum(t["requests"] for t in teachers.values()),
        "sent": sum(t["sent"] for t in teachers.values()),
        "cost_usd": None if all(c is None for c in costs) else
        round(sum(c or 0.0 for c in costs), 6),
        "unrouted": teaching.unrouted,
        "calls": [{"call": c["call"], "teacher": c["teacher"],
                   "dir": str(Path(c["dir"]).relative_to(d)),
                   "rows": c["summary"]["rows"], "sent": c["summary"]["sent"],
                   "from_cache": c["summary"]["from_cache"],
                   "cost_usd": c["summary"]["cost_usd"]} for c in teaching.calls],
        "info": result.info, "wall_s": round(wall, 3),
    }
    write_atomic(d / "stage.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2,
                                                default=str))
    return summary


def _dataset(run: _Run, force: bool) -> None:
    """The generate stages' rows as one dataset with one licence (the most restrictive of
    its teachers'): RUN/traces.parquet and the dataset card RUN/README.md."""
    from synth.dataset.merge import merge_runs

    p, out = run.p, run.out
    inputs = [out / "generate" / g.name for g in p.generate]
    fp = _digest("dataset", run.version, p.intent, p.accept_terms,
                 [file_sha256(i / "traces.parquet") for i in inputs],
                 _files_in(str(p.licence_file or ""), p.base_dir))

    def body():
        merge_runs(inputs, out=out, intent=p.intent or "research",
                   accept_terms=p.accept_terms, licence_file=p.licence_file)
        import pyarrow.parquet as pq

        n = pq.ParquetFile(out / "traces.parquet").metadata.num_rows
        return ["traces.parquet", "README.md"], {"rows": n}

    run.stage("dataset", fp, force, body)


def _curate_input(run: _Run) -> Path:
    """What curation reads: the training side of the split when prompts are held out, else
    the whole dataset."""
    return run.out / ("split/train.parquet" if run.p.eval is not None else "traces.parquet")


def _curate(run: _Run, force: bool) -> None:
    from synth.curate import curate

    p, out = run.p, run.out
    fs = p.curate["filters"]
    fs_file = Path(fs)
    if not fs_file.is_file():
        from importlib import resources

        fs_file = Path(str(resources.files("synth") / "filters" / f"{fs}.yaml"))
    src = _curate_input(run)
    # the filter set's name or path and its file's hash, as before the rename from
    # "recipe": a run directory curated then is still up to date
    fp = _digest("curate", run.version, fs, file_sha256(fs_file), str(src.relative_to(out)),
                 file_sha256(src))

    def body():
        res = curate(src, filters=fs, out=out / "curate",
                     engine=p.curate.get("engine", "local"),
                     ray_address=p.curate.get("ray_address"))
        s = res.summary
        return ["curate/curated.parquet", "curate/rejects.parquet",
                "curate/curation.json"], {"kept": s["kept"], "rejected": s["rejected"]}

    run.stage("curate", fp, force, body)


def _split(run: _Run, force: bool) -> None:
    """Held-out source prompts for eval, never trained on (module docstring): the dataset's
    rows and every generate stage's rejects, divided by :func:`synth.rows.is_heldout`.
    ``split/train.parquet`` holds the training side of the dataset (what curation reads);
    ``split/heldout.parquet`` every row of a held-out prompt, rejected and failed ones
    included (with ``dropped_by`` / ``drop_reason``), each marked ``split``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from synth import rows as R
    from synth.io import make_out_dir, write_atomic

    p, out = run.p, run.out
    src = out / "traces.parquet"
    rejects = [out / "generate" / g.name / "rejects.parquet" for g in p.generate]
    rejects = [r for r in rejects if r.is_file()]
    fp = _digest("split", run.version, p.holdout, R.HELDOUT_SEED, file_sha256(src),
                 [file_sha256(r) for r in rejects])

    def keys(table: pa.Table) -> list[str]:
        cols = [c for c in ("prompt_id", "metadata", "messages", "response")
                if c in table.column_names]
        return [R.source_key(r) for r in table.select(cols).to_pylist()]

    def held(table: pa.Table) -> pa.Array:
        return pa.array([R.is_heldout(k, p.holdout) for k in keys(table)], pa.bool_())

    def mark(table: pa.Table, side: str) -> pa.Table:
        if "split" in table.column_names:
            table = table.drop_columns(["split"])
        return table.append_column("split", pa.array([side] * table.num_rows, pa.string()))

    def body():
        t = pq.read_table(src)
        mask = held(t)
        train_t, held_t = t.filter(pc.invert(mask)), t.filter(mask)
        parts = [held_t] + [d.filter(held(d)) for d in map(pq.read_table, rejects)]
        held_all = pa.concat_tables([x for x in parts if x.num_rows] or [held_t],
                                    promote_options="permissive")
        if train_t.num_rows == 0 or held_all.num_rows == 0:
            n_src = len(set(keys(t)))
            raise ConfigError(f"eval.holdout {p.holdout}: {t.num_rows} rows of {n_src} "
                              "source prompts leave "
                              f"{'nothing to train on' if train_t.num_rows == 0 else 'no held-out prompt'}"
                              "; change holdout or generate more prompts")
        d = make_out_dir(out / "split")
        write_atomic(d / "train.parquet", mark(train_t, "train"))
        write_atomic(d / "heldout.parquet", mark(held_all, "heldout"))
        n_held, n_train = len(set(keys(held_all))), len(set(keys(train_t)))
        return ["split/train.parquet", "split/heldout.parquet"], {
            "train_rows": train_t.num_rows, "heldout_rows": held_all.num_rows,
            "heldout_answered_rows": held_t.num_rows, "train_prompts": n_train,
            "heldout_prompts": n_held}

    run.stage("split", fp, force, body)


def _train(run: _Run, force: bool) -> None:
    from synth.train import train

    p, out = run.p, run.out
    # the rows the student learns: curated, else the split's training side, else all (what
    # synth.rows.locate finds for a run directory, decided here by the pipeline's sections
    # rather than by which files an earlier version of the pipeline left behind)
    data = out / ("curate/curated.parquet" if p.curate is not None else
                  "split/train.parquet" if p.eval is not None else "traces.parquet")
    fp = _digest("train", run.version, p.train, str(data.relative_to(out)), file_sha256(data),
                 _files_in(p.train, p.base_dir))
    d = stage_dir(out, "train")

    def body():
        resume = run_resume and d.is_dir() and any((d / "checkpoints").glob("step-*"))
        if d.exists() and not resume:
            _clear(d)  # a stale student (other data or settings): this run replaces it
        res = train(data=data, out=d, resume=resume, progress=run.progress, **p.train)
        s = res.summary
        files = sorted(str(f.relative_to(out)) for f in d.iterdir()
                       if f.is_file() and f.name in ("train.json", "README.md",
                                                      "config.json", "train_log.jsonl")
                       or f.suffix == ".safetensors")
        from synth.train.data import skipped_rows

        return files, {"steps": s["steps"], "final": s["final"], "tokens": s["tokens"],
                       "skipped": skipped_rows(s["data"])}

    run_resume = run.was_interrupted("train", fp)
    run.stage("train", fp, force, body)


#: What a stage folder may gain between the runs that record its files: the caches and
#: checkpoints an interrupted run leaves to resume from.
_STAGE_STATE = {"generate": ("calls/*",), "curate": ("judge/*",),
                "train": ("checkpoints/*", "train_log.jsonl")}


def _stage_files(out: Path, key: str) -> list[str]:
    """Every file the stage's folder holds, relative to the run directory (the dataset
    stage writes into the run directory itself: its outputs are its files)."""
    from synth.io import files_below

    if key == "dataset":
        return []
    return files_below(out, [stage_dir(out, key).relative_to(out).as_posix()], own=False)


def recorded_stages(out: Path, name: str, *, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """The stages ``out/manifest.json`` records (none when it is missing or damaged: every
    stage is then checked from scratch). A run directory of another pipeline (by its
    manifest, and the ``also`` files: ``estimate.json``) is refused."""
    found: dict[str, Any] = {}
    for file in (MANIFEST, *also):
        try:
            data = orjson.loads((out / file).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        if data.get("pipeline") not in (None, name):
            raise ConfigError(f"--out {out}: holds the run of pipeline "
                              f"{data.get('pipeline')!r}, not {name!r} (choose another "
                              "directory)")
        if file == MANIFEST and isinstance(data.get("stages"), dict):
            found = data["stages"]
    return found


def check_stage_folders(out: Path, stages: dict[str, Any]) -> None:
    """Before a run touches ``out``: its stage folders hold only what its stages wrote (as
    ``stages``, the manifest, recorded) and the state they resume from. A rerun replaces a
    stage's folder whole, so a file of yours put there is refused here, never deleted."""
    for key, entry in stages.items():
        recorded = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(recorded, list) or key == "dataset":
            continue  # a stage recorded before its files were: trusted
        state = _STAGE_STATE.get(key.split(".", 1)[0], ())
        d = stage_dir(out, key)
        known = set(recorded)
        # (fnmatch's * crosses "/": "calls/*" is everything below calls/)
        foreign = [rel for rel in _stage_files(out, key) if rel not in known and not any(
            fnmatch.fnmatchcase((out / rel).relative_to(d).as_posix(), pat) for pat in state)]
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(f"--out {out}: holds {shown}, which `synth run` did not write "
                              f"(its {key} stage replaces {d.name}/ when it runs again): move "
                              "it out of the run directory")


def _clear(d: Path) -> None:
    trash = d.with_name(f".{d.name}.old")
    shutil.rmtree(trash, ignore_errors=True)
    d.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _eval(run: _Run, force: bool) -> None:
    from synth.train import evaluate

    p, out = run.p, run.out
    student = stage_dir(out, "train")
    data = out / "split" / "heldout.parquet"
    weights = sorted(student.glob("*.safetensors"))
    from synth.train.variants import weight_files

    compared = [f for c in p.eval.get("compare") or () if Path(c).is_dir()  # their weights
                for f in [Path(c) / "config.json", *weight_files(Path(c))]]
    fp = _digest("eval", run.version, p.eval, p.quantise, file_sha256(data),
                 [file_sha256(w) for w in weights], _files_in(p.eval, p.base_dir),
                 [(str(f), file_sha256(f)) for f in compared])
    d = stage_dir(out, "eval")

    def body():
        from synth.train.gguf_export import export_gguf

        if d.exists():
            _clear(d)  # an earlier eval's files (other quants, a plot no longer drawn)
        # quantise: the student's GGUF files, written here and scored beside it
        ggufs = [export_gguf(student, d / f"student.{q}.gguf", quant=q).out
                 for q in p.quantise]
        res = evaluate(student=str(student), data=data, out=d, progress=run.progress,
                       **p.eval, **({"compare": tuple(map(str, ggufs))} if ggufs else {}))
        task = res.get("task") or {}
        files = sorted(str(f.relative_to(out)) for f in d.iterdir() if f.is_file())
        return files, {"rows": res.get("rows"), "prompts": task.get("n"),
                       "retained": task.get("retained")}

    run.stage("eval", fp, force, body)


# ---------------------------------------------------------------------------- driver


def _selected(p: Pipeline, from_stage: str | None, only: str | None) -> tuple[set[str], set[str]]:
    """(stages to run, stages to force) for --from / --only. A generate stage is named
    ``generate.NAME`` or ``NAME``; ``generate`` means all of them."""
    keys = p.stage_keys()
    full = [k for k in keys if k.startswith("generate.")] + \
        (["dataset"] if p.generate else []) + \
        [k for k in keys if not k.startswith("generate.")]
    if p.eval is not None:
        full.insert(full.index("curate" if "curate" in full else "train"), "split")

    def resolve(name: str, option: str) -> list[str]:
        if name == "generate":
            hits = [k for k in full if k.startswith("generate.")]
        else:
            hits = [k for k in full if k in (name, f"generate.{name}")]
        if not hits:
            names = ["generate"] + [k.split(".", 1)[1] for k in full
                                    if k.startswith("generate.")] + \
                [k for k in ("curate", "train", "eval") if k in full]
            raise ConfigError(f"{option} {name}: not a stage of this pipeline (stages: "
                              f"{', '.join(names)})")
        return hits

    if from_stage and only:
        raise ConfigError("--from and --only: give one of them")
    if only:
        hits = resolve(only, "--only")
        extra = {"dataset"} if any(h.startswith("generate.") for h in hits) else set()
        return set(hits) | extra, set(hits) | extra
    if from_stage:
        first = full.index(resolve(from_stage, "--from")[0])
        return set(full), set(full[first:])
    return set(full), set()


def run_pipeline(path: str | Path, *, out: str | Path | None = None,
                 from_stage: str | None = None, only: str | None = None,
                 progress: bool | None = None,
                 on_event: Callable[[str, str, dict], None] | None = None) -> PipelineResult:
    """Run (or resume) a pipeline. ``out`` defaults to ``runs/<name>``. ``on_event(kind,
    stage, info)`` is called as each stage starts, finishes or is skipped."""
    from synth.io import claim_out_dir, exclusive_dir, make_out_dir, write_atomic

    p = load_pipeline(path)
    out = claim_out_dir(Path(out) if out is not None else Path("runs") / p.name, "synth run",
                        default=None if out is not None else "the default")
    run_set, force = _selected(p, from_stage, only)
    stages = recorded_stages(out, p.name)
    check_stage_folders(out, stages)  # a file of yours in a stage folder: refused, not deleted
    check_before_run(p, run_set)  # inputs, templates, licences: a mistake writes nothing
    _need(p, out, run_set, stages)  # and --only on a directory that lacks earlier stages
    make_out_dir(out)
    with exclusive_dir(out):  # its stages write inside it
        # read again under the lock: a run that held it until now may have moved on
        run = _Run(p, out, on_event, progress, recorded_stages(out, p.name))
        write_atomic(out / "pipeline.yaml", p.text)

        def want(key: str) -> bool:
            return key in run_set

        for g in p.generate:
            key = f"generate.{g.name}"
            if want(key):
                _generate(run, g, key in force)
        if p.generate and want("dataset"):
            _dataset(run, "dataset" in force)
        if p.eval is not None and want("split"):
            _split(run, "split" in force)
        if p.curate is not None and want("curate"):
            _curate(run, "curate" in force)
        if p.train is not None and want("train"):
            _train(run, "train" in force)
        if p.eval is not None and want("eval"):
            _eval(run, "eval" in force)
        report = _report(run)
    return PipelineResult(out=out, manifest=run.manifest, report=report, ran=run.ran,
                          skipped=run.skipped)


def _need(p: Pipeline, out: Path, run_set: set[str], stages: dict[str, Any]) -> None:
    """With --only / --from, the stages the chosen ones read must have finished in an
    earlier run (``stages``, the manifest): checked before the run directory is touched."""
    split = ["split"] if p.eval is not None else []
    keys = [f"generate.{g.name}" for g in p.generate]
    if p.eval is not None and "split" in run_set:
        keys += ["dataset"]
    if p.curate is not None and "curate" in run_set:
        keys += ["dataset"] + split
    if p.train is not None and "train" in run_set:
        keys += split + (["curate"] if p.curate is not None else [])
    if p.eval is not None and "eval" in run_set:
        keys += ["train", "split"]
    for k in keys:
        e = stages.get(k)
        if k not in run_set and (not isinstance(e, dict) or e.get("status") != "done"):
            raise ConfigError(f"--only: stage {k} has not run in {out} yet (run the "
                              "pipeline without --only first)")


def _report(run: _Run) -> Path | None:
    try:
        from synth.pipeline.report import write_pipeline_report
    except ImportError:  # pragma: no cover - the report module ships with synth
        return None
    if run.p.vendi:
        return write_pipeline_report(run.out)
    return write_pipeline_report(run.out, encoder=None)
