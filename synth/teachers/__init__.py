"""Teachers and the provider registry.

A spec string ``PROVIDER:MODEL`` picks a provider and a model: ``openai:gpt-4o-mini``,
``anthropic:claude-sonnet-4-5``, ``local:smollm2-135m-instruct``. Providers live in
:data:`PROVIDERS` (a :class:`synth.plugins.Registry`): synth's own register below; a plugin
package adds one with :func:`register_provider` or an entry point in the ``synth.providers``
group (``synth.teachers``, its earlier name, still works) whose object is a factory
``(model: str, options: TeacherOptions) -> Teacher`` carrying its :class:`ProviderTraits`
as ``.traits``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from synth.errors import ConfigError, MissingAPIKeyError, PluginError, TeacherSpecError
from synth.plugins import GROUPS, Registry
from synth.teachers import anthropic as _anthropic_wire
from synth.teachers import local as _local_mod
from synth.teachers import openai as _openai_wire
from synth.teachers.base import ProviderTraits, Teacher, estimate_tokens

__all__ = [
    "Teacher",
    "TeacherOptions",
    "TeacherFactory",
    "ProviderTraits",
    "register_provider",
    "PROVIDERS",
    "providers",
    "provider_traits",
    "parse_spec",
    "make_teacher",
    "check_requirements",
    "estimate_tokens",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TeacherOptions:
    """Everything about *how* to reach a teacher (none of it changes the answers, except
    ``dtype`` which is therefore also a request parameter)."""

    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 64
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 600.0
    max_retries: int = 5
    retry_initial_delay: float = 0.5
    dtype: str = "fp32"
    max_batch_size: int = 32


TeacherFactory = Callable[[str, TeacherOptions], Teacher]


def _plugin(name: str, factory: Any) -> tuple[TeacherFactory, ProviderTraits]:
    """What a ``synth.providers`` entry point gives: a factory, its traits on ``.traits``
    (none: the defaults, which promise nothing a provider may lack)."""
    if not callable(factory):
        raise TypeError(f"expected a teacher factory, got {factory!r}")
    traits = getattr(factory, "traits", None) or ProviderTraits(label=name)
    if not isinstance(traits, ProviderTraits):
        raise TypeError(f".traits must be a ProviderTraits, got {type(traits).__name__}")
    return factory, traits


#: name → ``(factory, traits)``: synth's providers and every installed plugin's.
PROVIDERS: Registry[tuple[TeacherFactory, ProviderTraits]] = Registry(
    "provider", GROUPS["provider"], check=_plugin)


def register_provider(name: str, factory: TeacherFactory,
                      traits: ProviderTraits | None = None) -> None:
    """Make ``name:MODEL`` specs build teachers with ``factory``. ``traits`` say what the
    provider accepts (logprobs, reasoning, whether ``--intent`` is required); a factory
    may also carry them as a ``traits`` attribute (entry-point plugins)."""
    if traits is not None and not isinstance(traits, ProviderTraits):
        raise TypeError(f"traits must be a ProviderTraits, got {type(traits).__name__}")
    factory, own = _plugin(name, factory)  # a factory must be callable, whatever its traits
    PROVIDERS.register(name, (factory, traits or own))


def _known() -> str:
    return ", ".join(PROVIDERS.names())


def provider_traits(provider: str) -> ProviderTraits:
    """The :class:`ProviderTraits` of a registered provider (a spec's part before ``:``)."""
    entry = PROVIDERS.find(provider)
    if entry is None:
        raise TeacherSpecError(f"unknown provider {provider!r} (known: {_known()})")
    return entry[1]


def providers() -> list[str]:
    return PROVIDERS.names()


def parse_spec(spec: str) -> tuple[str, str]:
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise TeacherSpecError(
            f"--teacher {spec!r}: expected PROVIDER:MODEL, e.g. openai:gpt-4o-mini, "
            "anthropic:claude-sonnet-4-5 or local:smollm2-135m-instruct")
    try:
        found = PROVIDERS.find(provider)
    except PluginError as e:  # installed, but its package fails to load
        raise PluginError(f"--teacher {spec!r}: {e}") from None
    if found is None:
        raise TeacherSpecError(
            f"--teacher {spec!r}: unknown provider {provider!r} (known: {_known()})")
    return provider, model


def check_requirements(spec: str) -> None:
    """Fail now, with the install command, if the provider's packages are missing."""
    from synth.deps import require

    provider, _ = parse_spec(spec)
    t = provider_traits(provider)
    require(t.requires, what=f"--teacher {spec}", install=t.install)


def make_teacher(spec: str, options: TeacherOptions | None = None) -> Teacher:
    """Build (but do not start) the teacher a spec names."""
    provider, model = parse_spec(spec)
    check_requirements(spec)
    return PROVIDERS[provider][0](model, options or TeacherOptions())


def _api_key(options: TeacherOptions, default_env: str, *, required: bool) -> str | None:
    name = options.api_key_env or default_env
    key = os.environ.get(name, "").strip()
    if not key and (required or options.api_key_env):
        how = f"export {name}=..." if options.api_key_env else (
            f"export {name}=... or pass --api-key-env NAME")
        raise MissingAPIKeyError(f"API key variable {name} is not set ({how})")
    return key or None


def _http_common(options: TeacherOptions) -> dict:
    # aiohttp is imported here, when an API teacher is built, not by `synth --help`
    from synth.teachers.http import RetryPolicy
    from synth.teachers.limits import Limiter

    if options.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    return dict(
        limiter=Limiter(concurrency=options.concurrency, rpm=options.rpm, tpm=options.tpm),
        retry=RetryPolicy(max_retries=options.max_retries,
                          initial_delay=options.retry_initial_delay),
        timeout=options.timeout,
    )


def _openai(model: str, options: TeacherOptions) -> Teacher:
    from synth.teachers.http import HttpTeacher
    from synth.teachers.openai import DEFAULT_BASE_URL, OpenAIWire

    base = options.base_url or DEFAULT_BASE_URL
    official = "api.openai.com" in base
    # Local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) usually need no key.
    key = _api_key(options, "OPENAI_API_KEY", required=official)
    return HttpTeacher(wire=OpenAIWire(official=official), model=model, base_url=base,
                       api_key=key, **_http_common(options))


def _anthropic(model: str, options: TeacherOptions) -> Teacher:
    from synth.teachers.anthropic import DEFAULT_BASE_URL, AnthropicWire
    from synth.teachers.http import HttpTeacher

    base = options.base_url or DEFAULT_BASE_URL
    key = _api_key(options, "ANTHROPIC_API_KEY", required="api.anthropic.com" in base)
    return HttpTeacher(wire=AnthropicWire(), model=model, base_url=base, api_key=key,
                       **_http_common(options))


def _local(model: str, options: TeacherOptions) -> Teacher:
    # torch and transformers are checked by make_teacher (local.TRAITS.requires) and
    # imported by the teacher when it loads its weights
    return _local_mod.LocalTeacher(model, dtype=options.dtype,
                                   max_batch_size=options.max_batch_size)


register_provider("openai", _openai, _openai_wire.TRAITS)
register_provider("anthropic", _anthropic, _anthropic_wire.TRAITS)
register_provider("local", _local, _local_mod.TRAITS)
