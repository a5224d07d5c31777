import pytest

from synth.errors import InputError
from synth.teachers.pricing import Price, load_prices


def test_longest_prefix_and_host():
    t = load_prices()
    mini = t.lookup("openai", "gpt-4o-mini-2024-07-18", "api.openai.com")
    full = t.lookup("openai", "gpt-4o-2024-08-06", "api.openai.com")
    assert mini.input == 0.15 and full.input == 2.5
    assert t.lookup("openai", "gpt-4o", "127.0.0.1") is None  # your own server: unknown
    assert t.lookup("openai", "no-such-model", "api.openai.com") is None
    assert t.lookup("local", "anything").cost(10, 10) == 0.0


def test_cost_with_cached_input():
    p = Price(input=2.0, output=8.0, cached_input=0.5)
    assert p.cost(1_000_000, 0) == pytest.approx(2.0)
    assert p.cost(1_000_000, 1_000_000, cached_input_tokens=400_000) == pytest.approx(
        0.6 * 2.0 + 0.4 * 0.5 + 8.0)
    assert p.cost(None, 5) is None


def test_price_file_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("models:\n  - {provider: openai, match: gpt-4o, input: 1, output: 2}\n")
    t = load_prices(f)
    assert t.lookup("openai", "gpt-4o-2024", "localhost").input == 1.0
    assert t.lookup("openai", "gpt-4o", "api.openai.com").input == 1.0  # later file wins ties


@pytest.mark.parametrize("text, line, needle", [
    ("models:\n  - {provider: openai, match: x, input: 1}\n", 2, "field 'output'"),
    ("models:\n  - {provider: a, match: x, input: 1, output: 1}\n"
     "  - {provider: a, match: y, input: -1, output: 1}\n", 3, "field 'input'"),
    ("models: [\n", None, "not valid YAML"),
    ("nothing: 1\n", None, "'models' list"),
])
def test_bad_price_file(tmp_path, text, line, needle):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as exc:
        load_prices(f)
    assert needle in str(exc.value) and str(f) in str(exc.value)
    if line is not None:
        assert exc.value.line == line
