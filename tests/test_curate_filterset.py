"""Filter sets (curation's word; "recipe" means a generation recipe) and their deprecated
old spellings; the step protocol: a step returns its figures in its Verdict and gets what
it needs from the runner as an argument."""

import json
import subprocess
import sys
import warnings

import polars as pl
import pytest

import synth.curate as C
from synth.curate import FilterSet, StepContext, Verdict, curate, load_filter_set
from synth.curate.filterset import Origin
from tests.conftest import ROOT


def rows(*responses):
    return pl.DataFrame({"id": [f"r{i}" for i in range(len(responses))],
                         "response": list(responses)})


ROWS = rows("a fine answer here", "a fine answer here", "another good answer")


def same(a, b):
    assert a.kept.equals(b.kept) and a.rejected.equals(b.rejected)
    assert [s["reasons"] for s in a.summary["steps"]] == \
        [s["reasons"] for s in b.summary["steps"]]


# ------------------------------------------------------------------ the old spellings

def test_recipe_keyword_is_a_deprecated_alias_of_filters():
    new = curate(ROWS, filters="default")
    with pytest.warns(DeprecationWarning, match=r"curate\(filters=\.\.\.\)"):
        old = curate(ROWS, recipe="default")
    same(new, old)
    assert old.summary["filter_set"] == "default"
    with pytest.raises(TypeError, match="not both"):
        curate(ROWS, filters="default", recipe="default")
    with pytest.raises(TypeError, match="'filters'"):
        curate(ROWS)


def test_old_names_still_import_with_a_warning_and_are_not_in_all():
    for old, new in (("Recipe", FilterSet), ("load_recipe", load_filter_set),
                     ("recipe_names", C.filter_set_names)):
        with pytest.warns(DeprecationWarning, match=f"synth.curate.{old} is deprecated"):
            assert getattr(C, old) is new
        assert old not in C.__all__
    with pytest.raises(AttributeError):
        C.no_such_name  # noqa: B018
    # the old module: its names are the new objects
    code = ("import warnings; warnings.simplefilter('error'); "
            "from synth.curate.recipe import Recipe")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and "DeprecationWarning: synth.curate.recipe is deprecated" \
        in p.stderr
    code = ("import warnings; warnings.simplefilter('ignore'); "
            "from synth.curate.recipe import Recipe, load_recipe, recipe_names; "
            "import synth.curate.filterset as f; "
            "print(Recipe is f.FilterSet, load_recipe is f.load_filter_set, "
            "recipe_names() == f.filter_set_names())")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.split() == ["True"] * 3, p.stderr


def test_curation_json_keeps_the_old_keys_beside_the_new(tmp_path):
    res = curate(ROWS, filters="default", out=tmp_path / "cur")
    saved = json.loads((tmp_path / "cur" / "curation.json").read_text())
    for s in (res.summary, saved):
        assert (s["filter_set"], s["filter_set_file"]) == ("default", "filters/default.yaml")
        # what reads curation.json by the old keys (card, merge, synth.io) still finds them
        assert (s["recipe"], s["recipe_file"]) == ("default", "filters/default.yaml")
    assert "Curation report — filter set <code>default</code>" in \
        (tmp_path / "cur" / "report.html").read_text()
    # a rerun into the same folder is allowed: it is recognised as a curation's output
    curate(ROWS, filters="default", out=tmp_path / "cur")


def test_no_such_filter_set_says_so():
    with pytest.raises(Exception, match=r"no such filter set \(shipped: code, default"):
        load_filter_set("nope")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "synth", "curate", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_filters_and_the_hidden_recipe_alias(tmp_path):
    src = tmp_path / "t.parquet"
    ROWS.write_parquet(src)
    outputs = []
    for i, opt in enumerate(["--filters", "-f", "--recipe", "-r"]):
        p = cli(src, opt, "default", "--out", tmp_path / f"o{i}")
        assert p.returncode == 0, p.stderr
        assert p.stderr.splitlines()[0] == "curating 3 rows with default (8 steps):"
        assert p.stderr.splitlines()[-1].startswith("3 rows → 2 kept, 1 rejected (default)")
        outputs.append(pl.read_parquet(tmp_path / f"o{i}" / "curated.parquet"))
    assert all(o.equals(outputs[0]) for o in outputs)
    p = cli(src, "--filters", "default", "--recipe", "default", "--out", tmp_path / "both")
    assert p.returncode == 2 and "not both" in p.stderr
    assert not (tmp_path / "both").exists()
    helptext = cli("--help").stdout
    assert "--filters" in helptext and "filter set" in helptext and "--recipe" not in helptext


# ------------------------------------------------------------------ the step protocol

class Noted:
    """A duck-typed step (no Step base): called step(df), its figures returned."""

    name, needs = "noted", ("id",)

    def __call__(self, df):
        return Verdict(df, pl.Series("drop", [None] * df.height, dtype=pl.String),
                       figures={"noted": {"rows": df.height}})


class WantsContext:
    """A step that asks for the runner's context (like llm_judge) and writes beside the
    curation's outputs."""

    name, needs, takes_context = "wants_context", ("id",), True

    def __init__(self):
        self.seen = []

    def __call__(self, df, ctx):
        self.seen.append(ctx)
        if ctx.out is not None:
            (ctx.out / "mine.txt").write_text("made by the step")
        return Verdict(df, pl.Series("drop", [None] * df.height, dtype=pl.String))


def test_figures_come_back_in_the_verdict_and_context_is_an_argument(tmp_path):
    import synth.curate.runner as runner

    assert not hasattr(runner, "CURRENT_STEP")  # no global: an argument, a return value
    ctx_step = WantsContext()
    fs = FilterSet("mine", [Noted(), ctx_step], [Origin("mine", 1), Origin("mine", 2)])
    res = curate(ROWS, filters=fs)
    assert res.summary["steps"][0]["info"] == {"noted": {"rows": 3}}
    assert "info" not in res.summary["steps"][1]  # no figures, no entry (as before)
    assert ctx_step.seen == [StepContext(out=None)]
    res = curate(ROWS, filters=fs, out=tmp_path / "cur")
    assert ctx_step.seen[-1] == StepContext(out=tmp_path / "cur")
    assert (tmp_path / "cur" / "mine.txt").read_text() == "made by the step"
    saved = json.loads((tmp_path / "cur" / "curation.json").read_text())
    assert saved["steps"][0]["info"] == {"noted": {"rows": 3}}


def test_built_in_steps_return_their_figures_when_called_directly():
    from synth.curate.near_dedup import NearDedup

    v = NearDedup()(ROWS)
    assert set(v.figures) == {"minhash"} and v.figures["minhash"]["clusters"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spellings warn of nothing
        res = curate(ROWS, filters="default")
    near = [s for s in res.summary["steps"] if s["step"] == "near_dedup"][0]
    assert set(near["info"]) == {"minhash"} and near["info"]["minhash"]["clusters"] == 2
