"""A third-party package adds a provider, a curation step or a generation recipe with zero
edits to synth: three tiny plugin packages are pip-installed (into a folder of their own)
and used through the real commands, in a fresh process that sees them."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synth.errors import PluginError
from synth.plugins import Registry, named_class

PROVIDER = '''
import time
from synth.records import Completion
from synth.teachers import ProviderTraits


class EchoTeacher:
    """Answers every prompt with its last message, shouted."""

    provider = "echo"
    base_url = None

    def __init__(self, model, options):
        self.model = model

    async def start(self):
        pass

    async def complete(self, request):
        text = request.messages[-1]["content"].upper()
        return Completion(text=text, finish_reason="stop", input_tokens=len(text) // 4,
                          output_tokens=len(text) // 4, latency_s=0.0)

    async def aclose(self):
        pass


def factory(model, options):
    return EchoTeacher(model, options)


factory.traits = ProviderTraits(label="Echo", default_base_url=None, needs_intent=False,
                                in_process=True, max_logprobs=0, batch_api=False)
'''

STEP = '''
from dataclasses import dataclass
import polars as pl
from synth.curate import Step, Verdict


@dataclass(frozen=True, kw_only=True)
class Shouty(Step):
    """Drop answers written in capitals."""

    name = "shouty"
    needs = ("id", "response")
    extra = None
    min_letters: int = 3

    def __call__(self, df):
        r = df["response"].fill_null("")
        shout = r.map_elements(
            lambda t: sum(c.isalpha() for c in t) >= self.min_letters and t == t.upper(),
            return_dtype=pl.Boolean)
        return Verdict(df, pl.Series("drop", ["shouty: all capitals" if s else None
                                              for s in shout], dtype=pl.String),
                       figures={"shouty": {"capitals": int(shout.sum())}})
'''

RECIPE = '''
from pydantic import Field
from synth.records import Prompt
from synth.recipes import PlannedCall, Recipe, RecipeParams, RecipeResult, register_recipe


class Haiku(Recipe):
    """One haiku per topic."""

    name = "haiku"
    description = "topics -> haiku"

    class Params(RecipeParams):
        topics: list[str] = Field(..., min_length=1)

    def _prompts(self, params):
        return [Prompt(id=f"haiku-{i}", messages=[{"role": "user",
                       "content": f"a haiku about {t}"}]) for i, t in enumerate(params.topics)]

    def plan(self, params, *, base_dir, samples=1):
        prompts = self._prompts(params)
        return [PlannedCall("write", len(prompts), prompts)]

    def run(self, params, teaching, *, base_dir):
        rows = teaching.ask("write", self._prompts(params))
        return RecipeResult(rows, [], {"topics": len(params.topics)})
'''


def _package(root: Path, dist: str, module: str, source: str, group: str, entry: str) -> Path:
    d = root / dist
    (d / module).mkdir(parents=True)
    (d / module / "__init__.py").write_text(textwrap.dedent(source))
    (d / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "0.0.1"
        [project.entry-points."{group}"]
        {entry} = "{module}:{'factory' if group == 'synth.providers' else entry.title()}"
        [tool.setuptools]
        packages = ["{module}"]
    """))
    return d


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    """The three packages, pip-installed into one folder (no network: no build isolation)."""
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    pkgs = [_package(src, "synth-echo", "synth_echo", PROVIDER, "synth.providers", "echo"),
            _package(src, "synth-shouty", "synth_shouty", STEP, "synth.steps", "shouty"),
            _package(src, "synth-haiku", "synth_haiku", RECIPE, "synth.recipes", "haiku")]
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(target),
                        *map(str, pkgs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return target


def _synth(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "synth", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_plugin_of_each_kind_works_through_the_commands(plugins, tmp_path):
    import polars as pl

    listing = subprocess.run(
        [sys.executable, "-c", "import synth.teachers as t, synth.curate as c, "
         "synth.recipes as r; print(t.providers(), sorted(c.STEPS), sorted(r.RECIPES))"],
        env={**os.environ, "PYTHONPATH": str(plugins)}, capture_output=True, text=True)
    assert "'echo'" in listing.stdout and "'shouty'" in listing.stdout \
        and "'haiku'" in listing.stdout, listing.stderr[-2000:]

    # the provider, through synth generate
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "hello there"}\n'
                                      '{"id": "b", "prompt": "ok"}\n')
    r = _synth(["generate", "p.jsonl", "--teacher", "echo:v1", "--out", "gen",
                "--accept-terms", "unknown"], plugins, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pl.read_parquet(tmp_path / "gen" / "traces.parquet").sort("id")
    assert rows["response"].to_list() == ["HELLO THERE", "OK"]
    assert set(rows["provider"]) == {"echo"}

    # the step, in a filter set file, through synth curate
    (tmp_path / "shout.yaml").write_text("name: shout\nsteps:\n  - drop_errors\n"
                                         "  - shouty: {min_letters: 3}\n")
    r = _synth(["curate", "gen", "--filters", "shout.yaml", "--out", "cur"], plugins, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rej = pl.read_parquet(tmp_path / "cur" / "rejects.parquet")
    assert rej["prompt_id"].to_list() == ["a"] and rej["drop_reason"][0].startswith("shouty")
    assert pl.read_parquet(tmp_path / "cur" / "curated.parquet")["prompt_id"].to_list() == ["b"]
    summary = json.loads((tmp_path / "cur" / "curation.json").read_text())
    assert {"shouty": {"capitals": 1}} in [s.get("info") for s in summary["steps"]]

    # the recipe, as a pipeline's generate stage, with the plugin teacher
    (tmp_path / "pipe.yaml").write_text(textwrap.dedent("""
        name: haiku
        teacher: echo:v1
        options: {accept_terms: [unknown]}
        generate:
          - name: poems
            recipe: haiku
            topics: [rain, moss]
    """))
    r = _synth(["run", "pipe.yaml", "--out", "run"], plugins, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    poems = pl.read_parquet(next((tmp_path / "run").rglob("traces.parquet")))
    assert sorted(poems["response"].to_list()) == ["A HAIKU ABOUT MOSS", "A HAIKU ABOUT RAIN"]


def test_a_broken_plugin_is_named_and_breaks_only_its_own_lookups(tmp_path, monkeypatch):
    """The registry itself, with entry points made up in a dist-info folder."""
    dist = tmp_path / "synth_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: synth-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[test.kinds]\nbroken = synth_missing_module:Thing\nmisnamed = json:JSONDecoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("kind", ("test.kinds",), check=named_class(json.JSONDecoder))
    reg.register("own", json.JSONDecoder)
    assert reg.names() == ["own"]  # both plugins fail: left out of the listing
    with pytest.raises(PluginError, match="synth_missing_module.*ModuleNotFoundError"):
        reg.find("broken")
    with pytest.raises(PluginError, match="name is None, the entry point says 'misnamed'"):
        reg.find("misnamed")
    assert reg.find("nothing") is None and reg["own"] is json.JSONDecoder


def test_a_registry_still_takes_item_assignment_like_the_dicts_it_replaced():
    reg = Registry("kind", ("test.none",), check=named_class(json.JSONDecoder))
    reg["own"] = json.JSONDecoder
    assert "own" in reg and reg.names() == ["own"] and len(reg) == 1
    del reg["own"]
    assert "own" not in reg
    with pytest.raises(KeyError):
        del reg["own"]


def test_a_broken_plugin_named_in_a_filter_set_or_a_spec_says_where(tmp_path, monkeypatch):
    from synth.curate.filterset import load_filter_set
    from synth.errors import InputError
    from synth.teachers import parse_spec

    dist = tmp_path / "synth_boom-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: synth-boom\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[synth.steps]\nboomstep = synth_no_such:Boom\n"
                                           "[synth.providers]\nboom = synth_no_such:f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fs = tmp_path / "fs.yaml"
    fs.write_text("name: x\nsteps:\n  - drop_errors\n  - boomstep: {}\n")
    with pytest.raises(InputError, match=r"fs.yaml:4.*boomstep.*synth_no_such"):
        load_filter_set(str(fs))
    with pytest.raises(PluginError, match=r"^--teacher 'boom:x': provider 'boom': .*synth_no_such"):
        parse_spec("boom:x")
    from synth.curate import STEPS

    assert "boomstep" not in STEPS and STEPS.get("drop_errors") is not None
