"""``verify_code`` on a Ray cluster one of whose nodes cannot sandbox model code: the run
stops before any model code runs, naming that node; with ``allow_weak_sandbox`` it runs
and ``curation.json`` says which node is weak. The cluster (a head and a worker, one CPU
each, on this machine) runs the worker with the sandbox's namespaces switched off."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from synth.curate import curate
from synth.errors import ConfigError
from tests.conftest import two_node_ray

ray = pytest.importorskip("ray")

_OK = "```python\ndef add(a, b):\n    return a + b\n```"


@pytest.fixture(scope="module")
def weak_cluster():
    from synth.curate.sandbox import containment

    if containment()["weak"]:
        pytest.skip("the sandbox is weak on this machine already")
    with two_node_ray(env_vars={"SYNTH_SANDBOX_NO_NAMESPACES": "1"}) as c:
        yield c


def _rows(tmp_path):
    d = tmp_path / "rows"
    d.mkdir()
    pl.DataFrame({"id": [f"c{i}" for i in range(8)], "response": [_OK] * 8,
                  "reference": ["assert add(2, 3) == 5"] * 8}).write_parquet(
        d / "p.parquet", row_group_size=2)
    return d


def test_a_weak_node_stops_the_run_before_model_code_runs(weak_cluster, tmp_path):
    (tmp_path / "f.yaml").write_text("steps:\n  - verify_code: {workers: 1}\n")
    with pytest.raises(ConfigError, match=r"verify_code on the Ray node .* \(node \w+\): "
                       r".*(SYNTH_SANDBOX_NO_NAMESPACES|weak|not in force)"):
        curate(_rows(tmp_path), filters=str(tmp_path / "f.yaml"), engine="ray",
               ray_address=weak_cluster.address, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_allowed_weak_node_is_reported_as_such(weak_cluster, tmp_path):
    (tmp_path / "f.yaml").write_text(
        "steps:\n  - verify_code: {workers: 1, allow_weak_sandbox: true}\n")
    r = curate(_rows(tmp_path), filters=str(tmp_path / "f.yaml"), engine="ray",
               ray_address=weak_cluster.address, out=tmp_path / "o")
    assert r.kept.height == 8
    box = orjson.loads((tmp_path / "o" / "curation.json").read_bytes())["steps"][0][
        "info"]["sandbox"]
    assert box["weak"] is True and box["allow_weak_sandbox"] is True
    assert sorted(n["weak"] for n in box["nodes"]) == [False, True]
    assert box["summary"].startswith("not the same on every node: ")


def test_a_step_sent_to_a_weak_process_refuses_there(tmp_path):
    """An engine ships the step (checked where it was built) to its workers by pickle,
    which skips the constructor's check: the step checks again where the code runs."""
    import os
    import pickle
    import subprocess
    import sys

    from synth.curate.verify import VerifyCode
    from tests.conftest import ROOT

    (tmp_path / "step.pkl").write_bytes(pickle.dumps(VerifyCode(workers=1)))
    pl.DataFrame({"id": ["a"], "response": [_OK], "reference": ["assert add(1, 1) == 2"]}
                 ).write_parquet(tmp_path / "rows.parquet")
    code = ("import pickle, sys, polars as pl\n"
            "from synth.errors import ConfigError\n"
            f"step = pickle.loads(open({str(tmp_path / 'step.pkl')!r}, 'rb').read())\n"
            f"rows = pl.read_parquet({str(tmp_path / 'rows.parquet')!r})\n"
            "try:\n    step.block_verdict(rows)\nexcept ConfigError as e:\n"
            "    print('refused:', e); sys.exit(3)\nprint('ran model code')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "SYNTH_SANDBOX_NO_NAMESPACES": "1"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "refused:" in r.stdout and "ran model code" not in r.stdout
