"""The language step on hand-made rows in known languages; filter set wiring and bad params."""

import sys

import polars as pl
import pytest

pytest.importorskip("py3langid")

from synth.curate import curate, load_filter_set  # noqa: E402
from synth.curate.langid import Language, identifier, strip_code  # noqa: E402
from synth.errors import ConfigError, InputError  # noqa: E402

EN = ("Photosynthesis is the process by which green plants use sunlight to turn water and "
      "carbon dioxide into sugar and oxygen.")
FR = ("La photosynthèse est le processus par lequel les plantes vertes utilisent la lumière "
      "du soleil pour transformer l'eau et le dioxyde de carbone en sucre.")
DE = ("Die Photosynthese ist der Vorgang, bei dem grüne Pflanzen das Sonnenlicht nutzen, um "
      "Wasser und Kohlendioxid in Zucker und Sauerstoff umzuwandeln.")
ES = ("La fotosíntesis es el proceso mediante el cual las plantas verdes utilizan la luz del "
      "sol para convertir el agua y el dióxido de carbono en azúcar y oxígeno.")
SHORT_FR = "Oui, bien sûr."  # 14 chars: the model says fr, but too short to judge
CODE = ("Here is a short helper that sums the squares of a list of numbers.\n\n```python\n"
        + "\n".join(f"def f{i}(xs):\n    return sum(x * x for x in xs if x % {i + 2} == 0)\n"
                    for i in range(40)) + "```\n")
ACRONYMS = "OK: GPU, CPU, RAM, SSD, USB, HDMI, API, SDK."  # judged, but nobody is sure


def rows(*responses, prompts=None):
    n = len(responses)
    return pl.DataFrame({
        "id": [f"r{i}" for i in range(n)], "response": list(responses),
        "messages": [[{"role": "user", "content": p}] for p in (prompts or ["q"] * n)]})


def test_keeps_english_drops_confident_other_languages():
    v = Language(languages=["en"])(rows(EN, FR, DE, ES, SHORT_FR, "", None, CODE, ACRONYMS))
    assert v.drop.to_list() == [None, "language: fr (1.00)", "language: de (1.00)",
                                "language: es (0.98)", None, None, None, None, None]
    assert v.df["lang"].to_list() == ["en", "fr", "de", "es", None, None, None, "en", "id"]
    assert v.df.schema["lang"] == pl.String and v.df.schema["lang_score"] == pl.Float64
    s = v.df["lang_score"].to_list()
    assert s[4] is None and s[5] is None and s[6] is None
    assert s[0] > 0.99 and s[8] < 0.5  # acronyms: top guess 'id' but unsure, so kept
    # with the code block in, en would score about 0.4; fences are cut before judging
    assert s[7] > 0.99 and identifier().classify(CODE)[1] < 0.5


def test_more_languages_min_chars_and_min_confidence():
    df = rows(EN, FR, DE, SHORT_FR, ACRONYMS)
    assert Language(languages=("en", "fr"))(df).drop.to_list() == [
        None, None, "language: de (1.00)", None, None]
    v = Language(languages=["en"], min_chars=5, min_confidence=0.05)(df)
    assert v.drop.to_list()[3:] == ["language: fr (0.66)", "language: id (0.07)"]
    assert Language(languages=["en"], min_confidence=1.0)(df).drop.null_count() == 5


def test_prompt_field_judges_the_request():
    df = rows(EN, EN, prompts=[EN, DE])
    v = Language(languages=["en"], field="prompt")(df)
    assert v.drop.to_list() == [None, "language: de (1.00)"]
    assert Language(languages=["en"])(df).drop.to_list() == [None, None]


def test_strip_code():
    assert strip_code("a ```x``` b ~~~y~~~ c") == "a   b   c"
    assert strip_code("intro\n```py\nunclosed(") == "intro\n "
    assert strip_code("plain") == "plain"


def test_filter_set_round_trip(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: mine\nsteps:\n  - empty\n"
                 "  - language: {languages: [en], min_confidence: 0.6}\n")
    rec = load_filter_set(p)
    assert rec.steps[1] == Language(languages=("en",), min_confidence=0.6)
    df = rows(EN, FR, "", DE, CODE)
    res = curate(df, filters=p)
    assert res.kept["id"].to_list() == ["r0", "r4"]
    assert res.kept.height + res.rejected.height == df.height
    assert sorted(res.rejected["id"].to_list()) == ["r1", "r2", "r3"]
    lang = res.rejected.filter(pl.col("dropped_by") == "language")
    assert sorted(zip(lang["id"], lang["drop_reason"])) == [
        ("r1", "language: fr (1.00)"), ("r3", "language: de (1.00)")]
    assert res.summary["steps"][1]["reasons"] == {"language": 2}
    assert {"lang", "lang_score"} <= set(res.kept.columns)


@pytest.mark.parametrize("params, needle", [
    ("{languages: []}", "non-empty list"),
    ("{languages: [english]}", "'english' not a two-letter"),
    ("{languages: [EN]}", "'EN' not a two-letter"),
    ("{languages: [zz]}", "does not know zz"),
    ("{languages: [en], min_confidence: 2}", "min_confidence"),
    ("{languages: [en], field: [prompt]}", "field must be"),
    ("{min_confidence: 0.5}", "languages"),
    ("{languages: [en], max_chars: 5}", "max_chars"),
])
def test_bad_params_name_file_line_step(tmp_path, params, needle):
    p = tmp_path / "r.yaml"
    p.write_text(f"steps:\n  - empty\n  - language: {params}\n")
    with pytest.raises(InputError) as exc:
        load_filter_set(p)
    assert str(exc.value).startswith(f"{p}:3: field 'language': bad parameters")
    assert exc.value.line == 3 and exc.value.field == "language"
    assert needle in str(exc.value)


def test_missing_package_fails_at_construction(monkeypatch):
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)  # import now fails
    identifier.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"pip install py3langid.*synth\[curate\]"):
            Language(languages=["en"])
    finally:
        identifier.cache_clear()  # next caller loads the real model again


def test_max_chars_judges_the_head_only():
    mixed = EN + " " + " ".join([FR] * 30)  # English first, then a lot of French
    assert Language(languages=["en"], max_chars=len(EN))(rows(mixed)).drop.to_list() == [None]
    v = Language(languages=["en"], max_chars=None)(rows(mixed))
    assert v.drop.to_list() == ["language: fr (1.00)"]


def test_batch_classifier_matches_py3langid(monkeypatch):
    pytest.importorskip("numba")
    import numpy as np

    import synth.curate.langid as L

    batch = L._batch()
    assert batch is not None
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(t.split(), int(rng.integers(1, 60))))
             for t in (EN, FR, DE, ES) for _ in range(25)]
    texts += ["", "a", "SHOUTING IN CAPITALS ONLY", "Ünïcödé wörds", "日本語のテキストです",
              "🙂🙂🙂", "\x00\x01\x7f", "x" * 3000, CODE, ACRONYMS, SHORT_FR]
    monkeypatch.setattr(L._Batch, "_CHUNK_BYTES", 500)  # many chunks, texts across edges
    got = L.classify_many(texts)
    ident = identifier()
    for text, (lang, p) in zip(texts, got):
        want_lang, want_p = ident.classify(text)
        assert lang == want_lang and p == pytest.approx(want_p, rel=1e-4, abs=1e-6), text


def test_batch_classifier_that_disagrees_is_not_used(monkeypatch, caplog):
    pytest.importorskip("numba")
    import synth.curate.langid as L

    monkeypatch.setattr(L._Batch, "_chunk", lambda self, texts: [("xx", 1.0)] * len(texts))
    with caplog.at_level("WARNING", logger="synth"):
        assert L._batch.__wrapped__() is None
    assert "batch classifier disagrees with py3langid" in caplog.text
    monkeypatch.setattr(L, "_batch", lambda: None)  # per-text path, same answers
    assert L.classify_many([EN, FR]) == [identifier().classify(EN), identifier().classify(FR)]
