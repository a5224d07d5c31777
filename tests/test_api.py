"""Pins the public API: a change here is a change users see."""

import synth
import synth.errors as errors


def test_public_names():
    assert sorted(synth.__all__) == sorted([
        "__version__", "generate", "agenerate", "GenerateConfig", "RunResult", "read_prompts",
        "Prompt", "Params", "Request", "Completion", "TRACE_SCHEMA", "Teacher",
        "TeacherOptions", "make_teacher", "register_provider", "SynthError", "UserError",
        "ConfigError", "InputError", "TeacherError",
        "train", "evaluate", "TrainConfig", "EvalConfig", "TrainResult",
        "run", "estimate", "export",
    ])
    for name in synth.__all__:
        assert hasattr(synth, name), name


def test_training_names_and_a_light_import():
    import importlib
    import inspect
    import subprocess
    import sys

    train = importlib.import_module("synth.train")  # the package that is also synth.train

    assert sorted(train.__all__) == sorted(["train", "evaluate", "TrainConfig", "EvalConfig",
                                            "TrainResult"])
    assert synth.train is train and callable(synth.train)
    assert inspect.signature(synth.train) == inspect.signature(train.train)
    # `import synth` (and `synth --help`) never imports torch
    code = "import sys, synth; synth.train; synth.evaluate; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"
    # nor inspect (~6 ms of the few `import synth` costs): the verbs' signatures are lazy
    code = "import sys, synth; synth.train; synth.generate; print('inspect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"


def test_curation_and_template_names():
    import synth.curate as curate
    import synth.templates as templates

    assert sorted(curate.__all__) == sorted([
        "curate", "read_rows", "CurationResult", "FilterSet", "load_filter_set",
        "filter_set_names", "Step", "StepContext", "Verdict", "STEPS", "register_step"])
    assert sorted(templates.__all__) == sorted([
        "Template", "load_template", "parse_template", "template_names", "SUFFIX"])
    for mod in (curate, templates):
        for name in mod.__all__:
            assert hasattr(mod, name), name
    # every shipped step is registered when synth.curate is imported
    assert set(curate.STEPS) == {
        "drop_errors", "truncated", "empty", "refusal", "repetition", "length", "language",
        "exact_dedup", "near_dedup", "semantic_dedup", "decontaminate", "verify_math",
        "self_consistency", "verify_code", "quality", "llm_judge"}


def test_exception_tree():
    e = errors
    assert issubclass(e.UserError, e.SynthError) and issubclass(e.TeacherError, e.SynthError)
    for cls in (e.ConfigError, e.InputError, e.TeacherUnreachableError, e.ModelLoadError,
                e.InsufficientMemoryError):
        assert issubclass(cls, e.UserError)
    for cls in (e.TeacherSpecError, e.MissingAPIKeyError):
        assert issubclass(cls, e.ConfigError)
    assert issubclass(e.RateLimitedError, e.RetryableError)
    for cls in (e.RetryableError, e.FatalRequestError, e.BudgetExceededError):
        assert issubclass(cls, e.TeacherError) and not issubclass(cls, e.UserError)
    # every class in the module is documented in its docstring
    for name in e.__all__:
        assert name in e.__doc__, name


def test_trace_schema_has_the_issue_columns():
    cols = set(synth.TRACE_SCHEMA.names)
    assert {"id", "prompt_id", "sample_index", "messages", "response", "reasoning", "logprobs",
            "finish_reason", "status", "error", "provider", "model", "model_version", "params",
            "request_hash", "input_tokens", "output_tokens", "cost_usd", "latency_s",
            "created_at", "metadata", "reference"} <= cols


def test_every_submodule_imports_as_a_name():
    """``import synth.X.Y as z`` works for every module, ``synth.train.config`` and
    ``synth.generate.config`` included: no function of synth's API is bound over a subpackage
    (``synth.train`` and ``synth.generate`` are packages that are also their verbs)."""
    import pkgutil
    import subprocess
    import sys

    names = [m.name for m in pkgutil.walk_packages(synth.__path__, "synth.")
             if not m.name.endswith("__main__") and not m.name.split(".")[-1].startswith("_")]
    assert "synth.train.config" in names and "synth.generate.config" in names
    code = "\n".join(f"import {n} as m{i}" for i, n in enumerate(names)) + (
        # and once every submodule is imported, the API's verbs still call the stage
        "\nimport inspect, sys, types, synth, synth.train as t, synth.generate as g"
        "\nimport synth.train.config as a, synth.generate.config as b"
        "\nok = synth.train is sys.modules['synth.train'] is t and synth.generate is g"
        "\nok &= all(callable(m) for m in (synth.train, synth.generate))"
        "\nok &= inspect.signature(t) == inspect.signature(t.train)"
        "\nok &= inspect.signature(g) == inspect.signature(g.generate)"
        "\nfns = [synth.evaluate, synth.agenerate, t.train, t.evaluate, g.generate]"
        "\nok &= all(isinstance(f, types.FunctionType) for f in fns)"
        "\nprint('ok' if ok else fns)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_the_verbs_call_their_stage(monkeypatch):
    """``synth.train(...)`` and ``synth.generate(...)`` reach the stage's runner."""
    import synth.generate.run as gen_run
    import synth.train.trainer as trainer

    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **kw: seen.append(("train", kw)) or 1)
    monkeypatch.setattr(gen_run, "generate", lambda cfg, **kw: seen.append(("gen", kw)) or 2)
    assert synth.train(data="d") == 1 and synth.generate(input="p") == 2
    assert seen == [("train", {"data": "d"}), ("gen", {"input": "p"})]


def test_the_verbs_pickle_and_copy_by_name_as_functions_do():
    import copy
    import pickle

    for verb in (synth.train, synth.generate):
        assert pickle.loads(pickle.dumps(verb)) is verb
        assert copy.copy(verb) is verb and copy.deepcopy(verb) is verb
