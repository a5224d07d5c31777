"""The house rules, run as tests: imports respect private names and floors (a linter in
tests/lint_imports.py), ruff is clean, and no module grows past the size a reader holds."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lint_imports import ROOT, check_tree

#: Modules allowed past ~700 lines, and why (none today).
LONG_MODULES: dict[str, str] = {}


def test_no_private_names_across_modules_and_a_clean_ground_floor():
    assert check_tree() == []


def test_the_linter_catches_each_kind_of_breach(tmp_path):
    pkg = tmp_path / "synth"
    for d in ("", "curate", "train", "pipeline"):
        (pkg / d).mkdir(parents=True, exist_ok=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "curate" / "minhash.py").write_text("def _mix(z):\n    return z\n")
    (pkg / "curate" / "_jit.py").write_text("def kernel():\n    pass\n")
    (pkg / "curate" / "steps.py").write_text(  # the same package may use its private module
        "from synth.curate._jit import kernel\nfrom synth.curate.minhash import _mix\n")
    (pkg / "train" / "a.py").write_text(
        "import synth.curate.minhash as mh\nfrom synth.curate import minhash\n"
        "from synth.curate._jit import kernel\nx = mh._mix(1) + minhash._mix(2)\n")
    (pkg / "hashing.py").write_text("from synth.pipeline import run\n")
    (pkg / "pipeline" / "run.py").write_text("from ..curate.minhash import _mix\n")
    found = "\n".join(check_tree(pkg))
    assert "synth.curate.steps imports private name _mix" in found  # same package, still no
    assert "synth.curate.steps imports private module" not in found
    assert "synth.train.a imports private module synth.curate._jit" in found
    assert found.count("synth.train.a uses private name _mix of synth.curate.minhash") == 2
    assert "ground-floor synth.hashing imports stage synth.pipeline" in found
    assert "synth.pipeline.run imports private name _mix from synth.curate.minhash" in found
    assert len(found.splitlines()) == 6, found


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([ruff, "check", "synth", "tests", "bench"], cwd=root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]


def test_no_module_is_longer_than_a_reader_holds():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 720}
    assert set(long) <= set(LONG_MODULES), long


def test_the_verbs_import_as_packages():
    code = ("import synth.train.config as a, synth.generate.config as b, synth;"
            "print(callable(synth.train) and callable(synth.generate))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "True", r.stderr[-2000:]
