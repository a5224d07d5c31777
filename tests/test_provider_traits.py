"""Provider differences come from the provider's own module (its ``TRAITS``), not from
branches on provider names: a plugin that declares traits gets the same checks."""

import pytest

import synth
from synth.errors import ConfigError
from synth.teachers import (
    PROVIDERS,
    ProviderTraits,
    TeacherOptions,
    provider_traits,
    register_provider,
)
from synth.teachers import anthropic as anthropic_mod
from synth.teachers import local as local_mod
from synth.teachers import openai as openai_mod


class SelfHostedWire(openai_mod.OpenAIWire):
    provider = "selfhosted"


def _factory(model: str, options: TeacherOptions):
    from synth.teachers.http import HttpTeacher

    return HttpTeacher(wire=SelfHostedWire(), model=model, base_url=options.base_url,
                       api_key=None)


@pytest.fixture
def plugin():
    """A provider registered as a plugin would be: an OpenAI-compatible server of one's
    own, with no terms of service (no --intent needed), top-5 logprobs, no reasoning."""
    traits = ProviderTraits(needs_intent=False, max_logprobs=5, label="selfhosted")
    _factory.traits = traits  # what an entry point's object may carry
    register_provider("selfhosted", _factory)
    yield traits
    PROVIDERS.unregister("selfhosted")


def test_built_in_providers_declare_their_traits():
    assert provider_traits("openai") is openai_mod.TRAITS
    assert provider_traits("anthropic") is anthropic_mod.TRAITS
    assert provider_traits("local") is local_mod.TRAITS
    assert openai_mod.TRAITS.max_logprobs == 20 and openai_mod.TRAITS.needs_intent
    assert anthropic_mod.TRAITS.max_logprobs == 0
    assert anthropic_mod.TRAITS.reasoning_temperature == 1.0
    assert not local_mod.TRAITS.needs_intent and local_mod.TRAITS.has_dtype


def test_plugin_traits_shape_the_checks(plugin, tmp_path, server, prompts_file):
    src = prompts_file([{"id": "a", "prompt": "hello"}])
    base = dict(input=src, teacher="selfhosted:gpt-test", base_url=f"{server.url}/v1",
                accept_terms=("unknown",))
    with pytest.raises(ConfigError, match="--logprobs: selfhosted returns at most 5"):
        synth.generate(out=tmp_path / "a", logprobs=6, **base)
    with pytest.raises(ConfigError, match="--reasoning: selfhosted has no reasoning switch"):
        synth.generate(out=tmp_path / "b", reasoning=True, **base)
    assert server.n_requests == 0
    # no terms of service: runs without --intent (checked as research), like a local model
    res = synth.generate(out=tmp_path / "c", logprobs=5, **base)
    assert res.summary["status"]["ok"] == 1 and res.summary["provider"] == "selfhosted"
    assert res.table().column("intent").to_pylist() == [None]


def test_the_judge_reads_the_same_traits(plugin, server):
    from synth.curate.judge import LLMJudge

    LLMJudge(teacher="selfhosted:gpt-test", base_url=f"{server.url}/v1")  # no intent needed
    with pytest.raises(ValueError, match="intent is required"):
        LLMJudge(teacher="openai:gpt-test", base_url=f"{server.url}/v1")


def test_an_undeclared_plugin_is_treated_as_an_api(tmp_path):
    register_provider("bare", lambda model, options: None)
    try:
        t = provider_traits("bare")
        assert t.needs_intent and t.max_logprobs is None and t.reasoning is None
    finally:
        PROVIDERS.unregister("bare")


def test_built_in_providers_declare_where_they_run():
    assert local_mod.TRAITS.in_process and not local_mod.TRAITS.batch_api
    assert local_mod.TRAITS.token_counter is not None
    for api in (openai_mod.TRAITS, anthropic_mod.TRAITS):
        assert not api.in_process and api.batch_api and api.token_counter is None


# ------------------------------------------------ a provider synth has never heard of


def _count_words(model: str):
    """The in-process plugin's own token counter: one token per word, plus 2 a message."""
    return (lambda messages: sum(len(m["content"].split()) + 2 for m in messages)), None


@pytest.fixture
def runtime_providers():
    """Two providers registered at runtime, known to synth only by their traits:
    ``workbench`` runs its models in-process (its own counter, no batch API), ``relay``
    declares nothing (an API, by default)."""
    register_provider("workbench", lambda model, options: None, ProviderTraits(
        label="a workbench model", needs_intent=False, in_process=True, batch_api=False,
        token_counter=_count_words))
    register_provider("relay", lambda model, options: None)
    yield
    for name in ("workbench", "relay"):
        PROVIDERS.unregister(name)


def test_the_estimate_reads_a_runtime_providers_traits(runtime_providers, tmp_path):
    from synth.pipeline.estimate import estimate_stage
    from synth.recipes.base import PlannedCall, TeacherRoute
    from synth.records import Prompt

    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n"
                      "  - {provider: workbench, match: '', input: 0, output: 0}\n"
                      "  - {provider: relay, match: '', input: 1.0, output: 2.0, batch: 0.5}\n")
    prompts = [Prompt(id=f"p{i}", messages=[{"role": "user", "content": "one two three"}])
               for i in range(4)]
    est = {}
    for provider in ("workbench", "relay"):
        est[provider], = estimate_stage(
            "gen", [PlannedCall("answers", 4, prompts)], [TeacherRoute(f"{provider}:m")],
            {"price_file": prices, "max_tokens": 10}, out=tmp_path / provider,
            dry_run=0)["teachers"]
    wb, relay = est["workbench"], est["relay"]
    # its own counter (3 words + 2), and no batch API: said, not priced
    assert wb["token_counter"] == "tokenizer" and wb["input_tokens"] == 4 * 5
    assert wb["batch_cost_usd"] is None
    assert wb["batch_reason"] == "workbench teacher: no batch API (and nothing to save)"
    # undeclared: estimate_tokens ((13 + 8) // 4 + 4 = 9) and the table's batch price
    assert relay["token_counter"] == "estimate_tokens" and relay["input_tokens"] == 4 * 9
    assert relay["batch_reason"] is None
    assert relay["batch_cost_usd"] == pytest.approx(relay["cost_usd"] * 0.5)


def test_the_pipeline_check_reads_a_runtime_providers_traits(runtime_providers, tmp_path):
    from synth.errors import InputError
    from synth.pipeline import load_pipeline

    def pipeline(teacher):
        p = tmp_path / f"{teacher.split(':')[0]}.yaml"
        p.write_text(f"name: x\nteacher: {teacher}\ngenerate:\n  - name: a\n"
                     "    recipe: responses\n    prompts: [hi]\n"
                     "train: {student: 'from-teacher:layers=1'}\n")
        return p

    # an in-process pipeline teacher is the train stage's teacher too
    assert load_pipeline(pipeline("workbench:m")).train["teacher"] == "workbench:m"
    with pytest.raises((InputError, ConfigError), match="the pipeline's teacher is not a "
                       "local one"):
        load_pipeline(pipeline("relay:m"))


def test_the_licence_check_reads_a_runtime_providers_traits(runtime_providers):
    from synth.licences import check, load_registry

    reg = load_registry(None)
    # an API reaching OpenAI's own model through a local gateway carries OpenAI's terms
    d = check(reg, provider="relay", model="gpt-4o-mini", base_url="http://localhost:4000/v1",
              intent="internal")
    assert d.entries == ["openai-api"]
    # in-process weights of that name reach no service: only a model licence could apply
    d = check(reg, provider="workbench", model="gpt-4o-mini", base_url=None,
              intent="internal")
    assert d.entries == [] and d.rule == "unknown"


def test_the_trainer_reads_a_runtime_providers_traits(runtime_providers):
    from synth.train.trainer import check_teacher_spec

    check_teacher_spec("workbench:m")  # in-process: may teach online
    check_teacher_spec("local:smollm2-135m-instruct")
    check_teacher_spec("models/my-teacher")  # no provider: a folder for the model store
    for spec in ("relay:m", "openai:gpt-4o", "anthropic:claude-sonnet-4-5"):
        with pytest.raises(ConfigError, match="a training teacher runs in-process"):
            check_teacher_spec(spec)
