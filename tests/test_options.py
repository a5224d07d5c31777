"""Each command's options are declared once, in a model built with synth.options: the CLI
is built from it, and the Python function the command calls takes the same keywords with
the same defaults (pinned here, so the two cannot drift apart)."""

import inspect
import subprocess
import sys

import pytest
from pydantic import BaseModel

from synth.options import cli_fields, flag, make_config


def _pairs():
    from synth.curate.config import CurateConfig
    from synth.curate.runner import curate
    from synth.dataset.config import ExportConfig, MergeConfig
    from synth.dataset.export import export_run
    from synth.dataset.merge import merge_runs
    from synth.pipeline.config import EstimateConfig, RunConfig
    from synth.pipeline.estimate import estimate_pipeline
    from synth.pipeline.run import run_pipeline

    return [(CurateConfig, curate), (MergeConfig, merge_runs), (ExportConfig, export_run),
            (RunConfig, run_pipeline), (EstimateConfig, estimate_pipeline)]


@pytest.mark.parametrize("i", range(5))
def test_the_function_takes_the_models_keywords_with_its_defaults(i):
    model, fn = _pairs()[i]
    params = inspect.signature(fn).parameters
    for name, info in model.model_fields.items():
        assert name in params, f"{fn.__name__} has no keyword {name}"
        p = params[name]
        if info.is_required():
            continue  # positional or required keyword: no default to compare
        default = info.default
        assert p.default == (list(default) if isinstance(default, list) else default), name


def test_every_command_is_built_from_its_model():
    """``synth CMD --help`` lists exactly the flags its model declares."""
    from synth.dataset.config import ExportConfig, MergeConfig
    from synth.generate.config import GenerateConfig
    from synth.pipeline.config import EstimateConfig, RunConfig
    from synth.train.config import EvalConfig, TrainConfig

    models = {"generate": GenerateConfig, "train": TrainConfig, "eval": EvalConfig,
              "merge": MergeConfig, "export": ExportConfig, "run": RunConfig,
              "estimate": EstimateConfig}
    from synth.curate.config import CurateConfig

    models["curate"] = CurateConfig
    for cmd, model in models.items():
        r = subprocess.run([sys.executable, "-m", "synth", cmd, "--help"], capture_output=True,
                           text=True, env={"COLUMNS": "250", "PATH": ""})
        assert r.returncode == 0, r.stderr
        for name, info, decl, short in cli_fields(model):
            shown = decl if decl.isupper() else decl.split("/")[0]
            hidden = (info.json_schema_extra or {}).get("hidden")
            assert (shown in r.stdout) != hidden, f"synth {cmd}: {shown} (hidden: {hidden})"
            if short and not hidden:
                assert short in r.stdout


def test_a_bad_value_names_the_flag_or_the_field():
    from synth.options import option

    class Opts(BaseModel):
        model_config = {"extra": "forbid"}
        max_tokens: int = option(1, "n", ge=1, strict=True)

    from synth.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--max-tokens: .*got 0"):
        make_config(None, {"max_tokens": 0}, cls=Opts)
    with pytest.raises(ConfigError, match=r"^max_tokens: "):
        make_config(None, {"max_tokens": 0}, cls=Opts, names="fields")
    with pytest.raises(ConfigError, match="max_tokenz: not an option.*did you mean max_tokens"):
        make_config(None, {"max_tokenz": 3}, cls=Opts)
    assert flag("max_tokens", Opts) == "--max-tokens"
    with pytest.raises(TypeError):
        make_config(None, {}, cls=None)
