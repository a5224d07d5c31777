"""The README's two set-up commands are the whole set-up, and CI runs command (2) verbatim."""

import re

from tests.conftest import ROOT


def commands():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [[ln for ln in b.splitlines() if ln and not ln.startswith("#")] for b in blocks[:2]]


def test_ci_runs_readme_command_two():
    first, second = commands()
    assert len(first) == 1 and len(second) == 1
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == second


def test_command_one_runs_the_embedded_quickstart():
    (first,), _ = commands()
    assert first.startswith("pip install torch==2.13.0 && ")
    assert first.endswith("&& synth run examples/quickstart.yaml")
    text = (ROOT / "examples" / "quickstart.yaml").read_text()
    assert "teacher: local:smollm2-135m-instruct" in text  # embedded: no key, no network
