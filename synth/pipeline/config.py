"""The pipeline file: one YAML document naming every stage of a run, validated up front.

::

    name: quickstart
    teacher: local:smollm2-135m-instruct     # default teacher of every stage
    intent: research
    accept_terms: [unknown]
    generate:                                # any number of generate stages, in order
      - name: answers
        recipe: responses                    # synth.recipes: responses, cot, textbook, ...
        input: prompts.jsonl                 # recipe parameters (files: relative to this file)
        max_tokens: 160                      # generate options (synth generate's flags)
    curate: default                          # a filter set name, a file, or {filters: ...}
    train: {student: "from-teacher:layers=15", loss: sft+kl, epochs: 2}
    eval: {holdout: 0.1}                     # prompts held out of training, then compared
    quantise: [q8_0, q4_0]                   # GGUF files of the student, scored beside it
    route: {target: 0.95, price: openai:gpt-4.1-mini}   # student → teacher cascade
    estimate: {requests_per_day: 1000}       # break-even inputs for `synth estimate`
    report: {vendi: true}                    # Vendi score on MiniLM embeddings (~20 s on CPU)

A generate stage's keys are split three ways: ``name``, ``recipe``, ``teacher`` /
``teachers`` / ``route`` are the stage's own; keys the recipe's parameter model declares go
to the recipe; every other key must be an option of ``synth generate`` (``max_tokens``,
``temperature``, ``concurrency``...). ``train`` and ``eval`` take the options of ``synth
train`` and ``synth eval`` (their data and output paths are the run directory's).
``quantise`` (quant names of ``synth export --format gguf``) has the eval stage write the
student's GGUF files into ``eval/`` and score them beside it (``synth eval --compare``);
``route`` (``target``, ``price``, ``student_usd_per_hour``) turns on ``synth eval
--cascade`` with those settings, and ``synth estimate`` then prices the routed pair.

Every mistake is an :class:`~synth.errors.InputError` naming the file, the line and the
key (``quickstart.yaml:14: generate[0].max_tokens: ...``), raised before anything runs.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ValidationError

from synth.errors import ConfigError, InputError, UserError
from synth.options import MAX_TOKENS, error_text, option
from synth.pipeline.after import check_quantisable, compare_paths, quantise_section, route_section
from synth.yamlfile import load_yaml

__all__ = ["Pipeline", "GenerateStage", "load_pipeline", "check_before_run", "STAGE_KINDS",
           "MAX_TOKENS", "RunConfig", "EstimateConfig"]

log = logging.getLogger("synth")

STAGE_KINDS = ("generate", "curate", "train", "eval")
_TOP = {"name", "description", "teacher", "intent", "accept_terms", "licence_file",
        "price_file", "options", "generate", "curate", "train", "eval", "quantise", "route",
        "estimate", "report"}
_STAGE_OWN = {"name", "recipe", "teacher", "teachers", "route"}
_ROUTE_KEYS = {"teacher", "weight", "quota"}
#: generate options a pipeline sets itself, never a stage
_GEN_RESERVED = {"input", "prompts", "out", "teacher", "samples_file", "wait"}
_TRAIN_RESERVED = {"data", "out", "resume", "wait"}
_EVAL_RESERVED = {"student", "data", "out"}
_ESTIMATE_KEYS = {"dry_run": int, "requests_per_day": (int, float),
                  "student_cost_per_hour": (int, float),
                  "student_requests_per_hour": (int, float),
                  "train_cost_usd": (int, float), "teacher_share": (int, float)}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOKEN_KEYS = ("max_tokens", "max_new_tokens")


@dataclass
class GenerateStage:
    name: str
    recipe: str
    params: Any                      # the recipe's validated Params
    routes: list                     # list[TeacherRoute]
    route: str                       # split | all
    options: dict[str, Any]          # generate options shared by the stage's calls
    raw: dict[str, Any]              # the stage as written (for the fingerprint)
    line: int | None = None


@dataclass
class Pipeline:
    name: str
    path: Path
    base_dir: Path
    text: str
    teacher: str | None
    intent: str | None
    accept_terms: tuple[str, ...]
    licence_file: Path | None
    price_file: Path | None
    generate: list[GenerateStage] = field(default_factory=list)
    curate: dict[str, Any] | None = None     # {"filters": name or path}
    train: dict[str, Any] | None = None      # TrainConfig fields (less data/out)
    eval: dict[str, Any] | None = None       # EvalConfig fields (less student/data/out)
    quantise: tuple[str, ...] = ()           # GGUF quants the eval stage writes and scores
    holdout: float = 0.0
    estimate: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    vendi: bool = True                       # report.vendi: embed a sample (MiniLM)

    def stage_keys(self) -> list[str]:
        """Stages in run order: ``generate.<name>`` for each generate stage, then the
        single-instance stages present."""
        keys = [f"generate.{g.name}" for g in self.generate]
        keys += [k for k in ("curate", "train", "eval") if getattr(self, k) is not None]
        return keys


class _Lines:
    """File lines of the YAML document's keys, by path (``("generate", 0, "max_tokens")``)."""

    def __init__(self, node: yaml.Node | None):
        self.node = node

    def line(self, path: tuple) -> int | None:
        node, best = self.node, None
        for part in path:
            if node is None:
                break
            best = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                nxt = None
                for k, v in node.value:
                    if k.value == part:
                        best, nxt = k.start_mark.line + 1, v
                        break
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                node = node.value[part]
                best = node.start_mark.line + 1
            else:
                node = None
        return best


def _where(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Checker:
    def __init__(self, display: str, lines: _Lines):
        self.display, self.lines = display, lines

    def error(self, path: tuple, msg: str) -> InputError:
        return InputError(msg, path=self.display, line=self.lines.line(path),
                          field=_where(path) or None)

    def unknown(self, path: tuple, key: str, allowed: set[str]) -> InputError:
        near = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return self.error(path + (key,), f"unknown key{hint}; allowed: "
                          f"{', '.join(sorted(allowed))}")

    def model(self, cls: type[BaseModel], data: dict[str, Any], path: tuple) -> Any:
        """``cls(**data)`` or an error naming the first bad key and its line."""
        try:
            return cls(**data)
        except ValidationError as e:
            err = e.errors()[0]
            if err["type"] == "extra_forbidden":
                raise self.unknown(path, str(err["loc"][0]), set(cls.model_fields)) from None
            raise self.error(path + tuple(err["loc"])[:1], error_text(err)) from None


def _teacher_routes(stage: dict, top_teacher: str | None, ck: _Checker, path: tuple,
                    gen_fields: set[str]):
    from synth.recipes.base import TeacherRoute

    if "teacher" in stage and "teachers" in stage:
        raise ck.error(path + ("teachers",), "give teacher or teachers, not both")
    if "teachers" in stage:
        items = stage["teachers"]
        if not isinstance(items, list) or not items:
            raise ck.error(path + ("teachers",), "must be a non-empty list of "
                           "{teacher: PROVIDER:MODEL, weight: W | quota: N, ...}")
        routes = []
        for i, it in enumerate(items):
            p = path + ("teachers", i)
            if isinstance(it, str):
                it = {"teacher": it}
            if not isinstance(it, dict) or not isinstance(it.get("teacher"), str):
                raise ck.error(p, "each teacher is a spec or {teacher: PROVIDER:MODEL, ...}")
            for k in it:
                if k not in _ROUTE_KEYS and k not in gen_fields - _GEN_RESERVED:
                    raise ck.unknown(p, k, _ROUTE_KEYS | (gen_fields - _GEN_RESERVED))
            w, q = it.get("weight"), it.get("quota")
            if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float))
                                  or not math.isfinite(w) or w < 0):
                raise ck.error(p + ("weight",), f"must be a finite number >= 0, got {w!r}")
            if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 0):
                raise ck.error(p + ("quota",), f"must be a whole number >= 0, got {q!r}")
            if w is not None and q is not None:
                raise ck.error(p, "give weight or quota, not both")
            opts = {k: v for k, v in it.items() if k not in _ROUTE_KEYS}
            routes.append(TeacherRoute(teacher=it["teacher"], weight=w, quota=q,
                                       options=opts))
        if len({r.teacher for r in routes}) != len(routes):
            raise ck.error(path + ("teachers",), "a teacher is listed twice")
        return routes
    teacher = stage.get("teacher", top_teacher)
    if not isinstance(teacher, str) or not teacher:
        raise ck.error(path, "no teacher: set teacher here or at the top of the file")
    return [TeacherRoute(teacher=teacher)]


def _generate_stage(stage: Any, i: int, top: dict, ck: _Checker, names: set[str],
                    base_dir: Path) -> GenerateStage:
    from synth.generate.config import GenerateConfig
    from synth.recipes.base import get_recipe

    path = ("generate", i)
    if not isinstance(stage, dict):
        raise ck.error(path, "each generate stage is a mapping with name and recipe")
    for key in ("name", "recipe"):
        if not isinstance(stage.get(key), str):
            raise ck.error(path + ((key,) if key in stage else ()),
                           f"{key}: required (a string)")
    name = stage["name"]
    if not _NAME.match(name):
        raise ck.error(path + ("name",), f"{name!r}: lower-case letters, digits, '-', '_'")
    if name in names:
        raise ck.error(path + ("name",), f"{name!r}: two generate stages have this name")
    names.add(name)
    try:
        recipe = get_recipe(stage["recipe"])
    except UserError as e:
        raise ck.error(path + ("recipe",), str(e).removeprefix("recipe: ")) from None
    gen_fields = set(GenerateConfig.model_fields)
    recipe_fields = set(recipe.Params.model_fields)
    params, options = {}, dict(top.get("options") or {})
    for k, v in stage.items():
        if k in _STAGE_OWN:
            continue
        if k in recipe_fields:
            params[k] = v
        elif k in gen_fields and k not in _GEN_RESERVED:
            options[k] = v
        elif k == "wait":
            raise ck.error(path + (k,), "a pipeline waits for its batches (the next stage "
                           "needs their rows); `synth generate --batch --no-wait` submits "
                           "and exits")
        else:
            raise ck.unknown(path, k, recipe_fields | (gen_fields - _GEN_RESERVED)
                             | _STAGE_OWN)
    route = stage.get("route", "split")
    if route not in ("split", "all"):
        raise ck.error(path + ("route",), f"must be split or all, got {route!r}")
    routes = _teacher_routes(stage, top.get("teacher"), ck, path, gen_fields)
    for k, v in params.items():  # template files: relative to this file, like input files
        if k == "template" or k.endswith("_template"):
            params[k] = _template_ref(v, base_dir)
        elif k == "templates" and isinstance(v, dict):
            params[k] = {op: _template_ref(t, base_dir) for op, t in v.items()}
    p = ck.model(recipe.Params, params, path)
    for k in ("intent", "accept_terms", "licence_file", "price_file"):
        if top.get(k) is not None and k not in options:
            options[k] = top[k]
    for k in ("licence_file", "price_file"):
        if options.get(k) is not None:
            options[k] = str(_rel(options[k], base_dir))
    _check_tokens(ck, path, stage)  # first: its message names the key's own line
    for j, it in enumerate(stage.get("teachers") or []):
        _check_tokens(ck, path + ("teachers", j), it)
    # Each option is checked now, as synth generate would check it (prompts stand in for
    # the input the recipe makes), so a typo fails before the first stage runs.
    for r in routes:
        try:
            GenerateConfig(prompts=[], out=Path("."), teacher=r.teacher,
                           **{**options, **r.options})
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            msg = error_text(err)
            where = path + ((key,) if key in stage else ())
            raise ck.error(where, f"{key}: {msg}" if key not in stage else msg) from None
    return GenerateStage(name=name, recipe=stage["recipe"], params=p, routes=routes,
                         route=route, options=options, raw=stage,
                         line=ck.lines.line(path))


def _rel(p: Any, base_dir: Path) -> Path:
    q = Path(str(p)).expanduser()
    return q if q.is_absolute() else base_dir / q


def _template_ref(v: Any, base_dir: Path) -> Any:
    """A template parameter as the recipe should load it: a shipped name (``cot/solve``)
    stays a name unless a file of that name lies beside the pipeline file; anything else is
    a file, relative to the pipeline file (never to the current directory), ``.j2`` or not."""
    from synth.templates import SUFFIX, template_names

    if not isinstance(v, str) or not v.strip():
        return v
    f = _rel(v, base_dir)
    if v.endswith(SUFFIX) or f.is_file() or v not in template_names():
        return str(f)
    return v


def _check_tokens(ck: _Checker, path: tuple, section: Any) -> None:
    """A token budget (``max_tokens``, ``max_new_tokens``) above :data:`MAX_TOKENS` is
    refused, naming the key (its type was checked by the command's own config)."""
    if not isinstance(section, dict):
        return
    for k in _TOKEN_KEYS:
        v = section.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > MAX_TOKENS:
            raise ck.error(path + (k,), f"{v:,} tokens is more than any model answers "
                           f"with: at most {MAX_TOKENS:,}")


def _section(top: dict, key: str, cls: type[BaseModel], reserved: set[str], ck: _Checker,
             extra: set[str] = frozenset()) -> dict[str, Any] | None:
    """A train / eval mapping, each key checked against the command's config model."""
    v = top.get(key)
    if v is None or v is False:
        return None
    if v is True:
        v = {}
    if not isinstance(v, dict):
        raise ck.error((key,), "must be a mapping of options (or true for the defaults)")
    allowed = (set(cls.model_fields) - reserved) | set(extra)
    for k in v:
        if k not in allowed:
            raise ck.unknown((key,), k, allowed)
    return dict(v)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; every error names the file, line and key."""
    from synth.train.config import EvalConfig, TrainConfig

    path = Path(path)
    display = str(path)
    if path.is_dir():
        raise ConfigError(f"{display}: is a directory, not a pipeline file")
    data, node = load_yaml(path)
    ck = _Checker(display, _Lines(node))
    if not isinstance(data, dict):
        raise InputError("a pipeline file is a YAML mapping (name, generate, curate, "
                         "train, eval)", path=display, line=1)
    for k in data:
        if k not in _TOP:
            raise ck.unknown((), str(k), _TOP)
    if not isinstance(data.get("name"), str) or not _NAME.match(data["name"]):
        raise ck.error(("name",) if "name" in data else (),
                       "name: required: lower-case letters, digits, '-', '_'")
    for k in ("teacher", "intent", "description"):
        if data.get(k) is not None and not isinstance(data[k], str):
            raise ck.error((k,), "must be a string")
    accept = data.get("accept_terms") or []
    if isinstance(accept, str):
        accept = [accept]
    if not isinstance(accept, list) or not all(isinstance(a, str) for a in accept):
        raise ck.error(("accept_terms",), "must be a list of registry entry ids")
    data = {**data, "accept_terms": tuple(accept)}
    if data.get("options") is not None and not isinstance(data["options"], dict):
        raise ck.error(("options",), "must be a mapping of synth generate options")
    base_dir = path.resolve().parent
    _check_tokens(ck, ("options",), data.get("options"))
    gens = data.get("generate") or []
    if not isinstance(gens, list):
        raise ck.error(("generate",), "must be a list of stages")
    names: set[str] = set()
    stages = [_generate_stage(s, i, data, ck, names, base_dir) for i, s in enumerate(gens)]

    curate = data.get("curate")
    if curate is True:
        curate = "default"
    if isinstance(curate, str):
        curate = {"filters": curate}
    if curate is not None and curate is not False:
        # {recipe: ...} is the old spelling, from when filter sets were curation recipes
        if isinstance(curate, dict) and {"filters", "recipe"} <= set(curate):
            raise ck.error(("curate", "recipe"), "give filters or its old name recipe, "
                           "not both")
        key = "recipe" if isinstance(curate, dict) and "recipe" in curate else "filters"
        if not isinstance(curate, dict) or set(curate) - {key, "engine", "ray_address"} or \
                not isinstance(curate.get(key), str):
            raise ck.error(("curate",), "a filter set name (filters/NAME.yaml), a filter set "
                           "file, or {filters: ..., engine: local or ray, ray_address: ...}")
        engine = curate.get("engine", "local")
        if engine not in ("local", "ray"):
            raise ck.error(("curate", "engine"), f"local or ray, not {engine!r}")
        address = curate.get("ray_address")
        if address is not None and (engine != "ray" or not isinstance(address, str)):
            raise ck.error(("curate", "ray_address"), "a Ray address, with engine: ray")
        fs = curate[key]
        if fs.endswith((".yaml", ".yml")) or "/" in fs or _rel(fs, base_dir).is_file():
            fs = str(_rel(fs, base_dir))  # a file beside the pipeline, never the cwd's
        from synth.curate.filterset import load_filter_set

        try:
            load_filter_set(fs)
        except InputError as e:
            if e.path and e.path != fs:  # a mistake inside the filter set's file: its line
                raise
            where = ("curate", key) if isinstance(data["curate"], dict) else ("curate",)
            raise ck.error(where, str(e)) from None
        curate = {"filters": fs}
        if engine == "ray":  # the same answer as local: not part of the stage's fingerprint
            curate.update(engine="ray", ray_address=address)
    else:
        curate = None

    train = _section(data, "train", TrainConfig, _TRAIN_RESERVED, ck)
    ev = _section(data, "eval", EvalConfig, _EVAL_RESERVED, ck, extra={"holdout"})
    holdout = 0.0
    if ev is not None:
        holdout = ev.pop("holdout", 0.1)
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or \
                not 0 < holdout < 1:
            raise ck.error(("eval", "holdout"), f"must be a share between 0 and 1 "
                           f"(exclusive), got {holdout!r}")
        if train is None:
            raise ck.error(("eval",), "eval compares the trained student with its "
                           "teacher: add a train section")
    if train is not None:
        if "student" not in train:
            raise ck.error(("train",), "student: required (e.g. from-teacher:layers=15)")
        needs_teacher = train.get("loss", "sft") != "sft" or \
            str(train["student"]).startswith("from-teacher")
        if needs_teacher and "teacher" not in train:
            t = data.get("teacher")
            if not t or not _in_process(str(t)):
                raise ck.error(("train",), "teacher: needed for this student or loss "
                               "(an in-process model: local:NAME, a HF dir or a .gguf); "
                               "the pipeline's teacher is not a local one")
            train["teacher"] = t
        for k in ("teacher", "student"):
            if isinstance(train.get(k), str) and train[k].endswith(".gguf"):
                train[k] = str(_rel(train[k], base_dir))
        _check_model(ck, TrainConfig, {**train, "data": Path("."), "out": Path(".")},
                     ("train",))
    if ev is not None:
        ev.setdefault("teacher", train.get("teacher") or data.get("teacher"))
        if not ev["teacher"]:
            raise ck.error(("eval",), "teacher: required (the model to compare with)")
        ev["teacher"] = str(ev["teacher"])
        if data.get("price_file") and "price_file" not in ev:  # the cascade's prices too
            ev["price_file"] = str(_rel(data["price_file"], base_dir))
        route_section(data, ck, ev)
        compare_paths(ev, base_dir, ck)
        _check_tokens(ck, ("eval",), ev)
        _check_model(ck, EvalConfig, {**ev, "student": ".", "data": Path(".")}, ("eval",))
    if ev is None and data.get("route") is not None and data.get("route") is not False:
        raise ck.error(("route",), "the eval stage measures the routed pair: add an eval "
                       "section")
    quantise = quantise_section(data, ck, ev)
    if ev is not None and ev.get("task") == "none" and (ev.get("cascade") or quantise):
        raise ck.error(("eval", "task"), "none scores no answer: "
                       + ("route" if ev.get("cascade") else "quantise")
                       + " needs task accuracy (a reference on the held-out rows)")
    if stages == [] and (curate is not None or train is not None) and \
            not data.get("generate"):
        raise ck.error((), "no generate stage: a pipeline makes its data first")

    est = data.get("estimate") or {}
    if not isinstance(est, dict):
        raise ck.error(("estimate",), "must be a mapping")
    for k, v in est.items():
        if k not in _ESTIMATE_KEYS:
            raise ck.unknown(("estimate",), k, set(_ESTIMATE_KEYS))
        if isinstance(v, bool) or not isinstance(v, _ESTIMATE_KEYS[k]) or \
                not math.isfinite(v) or v < 0:
            raise ck.error(("estimate", k), f"must be a finite number >= 0, got {v!r}")
        if k == "teacher_share" and v > 1:
            raise ck.error(("estimate", k), f"a share of requests, 0 to 1, got {v!r}")
    rep = data.get("report") or {}
    if not isinstance(rep, dict):
        raise ck.error(("report",), "must be a mapping, e.g. {vendi: false}")
    for k, v in rep.items():
        if k != "vendi":
            raise ck.unknown(("report",), k, {"vendi"})
        if not isinstance(v, bool):
            raise ck.error(("report", k), f"must be true or false, got {v!r}")
    return Pipeline(
        vendi=rep.get("vendi", True),
        name=data["name"], path=path, base_dir=base_dir,
        text=path.read_text(encoding="utf-8"), teacher=data.get("teacher"),
        intent=data.get("intent"), accept_terms=data["accept_terms"],
        licence_file=_rel(data["licence_file"], base_dir) if data.get("licence_file")
        else None,
        price_file=_rel(data["price_file"], base_dir) if data.get("price_file") else None,
        generate=stages, curate=curate, train=train, eval=ev, holdout=float(holdout),
        quantise=quantise,
        estimate=est, description=data.get("description") or "")


def _check_model(ck: _Checker, cls: type[BaseModel], data: dict, path: tuple) -> None:
    try:
        cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        raise ck.error(path + ((key,) if key else ()), error_text(err)) from None


_FILE_PARAMS = ("input", "topics", "seeds")


def check_before_run(p: Pipeline, stages: set[str] | None = None) -> None:
    """What ``synth run`` checks before it makes or touches the run directory, so that a
    mistake writes nothing: for each generate stage (of ``stages``, default all) every
    input file is read and every prompt rendered through its templates (the recipe's
    :meth:`~synth.recipes.base.Recipe.plan`, as ``synth estimate`` does), and every
    teacher's spec, packages and licence are checked for the pipeline's intent (as ``synth
    generate`` checks them before its first request). A file a stage reads outside the
    pipeline file's folder is allowed, and named on stderr (a warning)."""
    from synth.recipes.base import get_recipe

    if p.quantise and p.train and (stages is None or "eval" in stages):
        check_quantisable(p)  # the student the eval stage will export: now, not after training
    for i, g in enumerate(p.generate):
        if stages is not None and f"generate.{g.name}" not in stages:
            continue
        _note_outside(p, g, i)
        get_recipe(g.recipe)().plan(g.params, base_dir=p.base_dir,
                                    samples=g.options.get("samples", 1))
        for r in g.routes:
            _check_teacher({**g.options, **r.options}, r.teacher)


def _note_outside(p: Pipeline, g: GenerateStage, i: int) -> None:
    """Name each file the stage reads (input, topics, seeds, templates) that lies outside
    the pipeline file's folder (``..``, an absolute path): allowed, never silent."""
    from synth.inputs import BENCHMARK_PREFIX

    params = g.params.model_dump()
    for k, v in params.items():
        vals = v.values() if isinstance(v, dict) and k == "templates" else [v]
        if k not in _FILE_PARAMS and k != "templates" and not k.endswith("template"):
            continue
        for x in vals:
            if not isinstance(x, (str, Path)) or str(x).startswith(BENCHMARK_PREFIX):
                continue
            try:
                f = _rel(x, p.base_dir)
                if not f.is_file():
                    continue  # a shipped template name, or a file the recipe says is missing
                resolved = f.resolve()
            except OSError:  # not a file name at all (too long): the recipe says so
                continue
            if p.base_dir not in resolved.parents:
                log.warning("%s:%s: field 'generate[%d].%s': reads %s, outside the pipeline "
                            "file's folder", p.path, g.line, i, k, resolved)


def _in_process(spec: str) -> bool:
    """Whether a ``PROVIDER:MODEL`` spec's provider runs its model in this process (its
    ``in_process`` trait), so that a train stage can use it as its online teacher."""
    from synth.errors import TeacherSpecError
    from synth.teachers import provider_traits

    provider, sep, _ = spec.partition(":")
    if not sep:
        return False
    try:
        return provider_traits(provider).in_process
    except TeacherSpecError:  # no such provider: the load of the generate stages says so
        return False


def _check_teacher(options: dict[str, Any], spec: str) -> None:
    """The teacher's spec, packages and licence, without a request (the same check as
    ``synth generate``'s, which the stage repeats before its first request)."""
    from synth.errors import MissingAPIKeyError
    from synth.generate.config import GenerateConfig
    from synth.generate.run import licence_check
    from synth.teachers import TeacherOptions, make_teacher, parse_spec, provider_traits

    cfg = GenerateConfig(prompts=[], out=Path("."), teacher=spec, **options)
    provider, _ = parse_spec(cfg.teacher)
    try:
        teacher = make_teacher(cfg.teacher, TeacherOptions(base_url=cfg.base_url,
                                                           api_key_env=cfg.api_key_env))
    except MissingAPIKeyError:
        return  # a stage skipped as unchanged needs no key; one that runs asks for it
    licence_check(cfg, teacher, provider_traits(provider))


# ------------------------------------------------------------- the commands' options

class RunConfig(BaseModel):
    """Everything ``synth run`` takes (declared once: :mod:`synth.options`); the keywords
    of :func:`synth.pipeline.run.run_pipeline`, which checks the values."""

    model_config = {"extra": "forbid", "frozen": True}
    command: ClassVar[str] = "run"

    path: Path = option(..., "A pipeline YAML file (see examples/).", cli="PIPELINE")
    out: Path | None = option(None, "Run directory (default: runs/<name>).", short="-o")
    from_stage: str | None = option(None, "Rerun this stage and every one after it.",
                                    cli="--from")
    only: str | None = option(None, "Run only this stage (the earlier ones must have run).")
    progress: bool | None = option(None, "Default: on when stderr is a terminal.",
                                   cli="--progress/--no-progress")


class EstimateConfig(BaseModel):
    """Everything ``synth estimate`` takes (declared once: :mod:`synth.options`); the
    keywords of :func:`synth.pipeline.estimate.estimate_pipeline`."""

    model_config = {"extra": "forbid", "frozen": True}
    command: ClassVar[str] = "estimate"

    path: Path = option(..., "A pipeline YAML file.", cli="PIPELINE")
    out: Path | None = option(None, "Run directory (default: runs/<name>): the dry run's "
                              "answers are cached there, so the real run never pays for "
                              "them again.", short="-o")
    dry_run: int | None = option(None, "Prompts per stage sent to measure answer lengths "
                                 "(default 8; 0: assume max_tokens).")

