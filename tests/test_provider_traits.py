"""Provider differences come from the provider's own module (its ``TRAITS``), not from
branches on provider names: a plugin that declares traits gets the same checks."""

import pytest

import synth
from synth.errors import ConfigError
from synth.teachers import (
    _REGISTRY,
    _TRAITS,
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
    _REGISTRY.pop("selfhosted", None)
    _TRAITS.pop("selfhosted", None)


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
        _REGISTRY.pop("bare", None)
        _TRAITS.pop("bare", None)
