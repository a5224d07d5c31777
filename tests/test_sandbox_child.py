"""The programs that run inside the sandbox (synth.curate.sandbox.child), tested in-process
and, outside the sandbox, as the child program itself.

The drills that run them contained are tests/test_sandbox.py and tests/test_verify_code.py.
"""
import ast
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from synth.curate.sandbox import SandboxLimits, containment, run_python
from synth.curate.sandbox.child import audit, entry, judge, serve, wire
from synth.curate.sandbox.supervisor import CHILD_PACKAGE, LAUNCHER, child_sources, write_child
from tests.conftest import ROOT

CHILD = ROOT / "synth" / "curate" / "sandbox" / "child"


# ----------------------------------------------------------------------------- the package

def test_child_imports_only_the_stdlib_and_itself():
    """Inside the private root synth is not there, and site-packages belong to the code
    the child runs: the child may lean on neither."""
    for path in sorted(CHILD.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == CHILD_PACKAGE, (path.name, name)


def test_every_module_is_copied_and_the_launcher_names_the_copy():
    assert [n for n, _ in child_sources()] == sorted(p.name for p in CHILD.glob("*.py"))
    assert all(data == (CHILD / n).read_bytes() for n, data in child_sources())
    launcher = (CHILD / "__main__.py").read_text()
    assert f"from {CHILD_PACKAGE}.entry import main" in launcher


# ----------------------------------------------------------------------------- wire

PLAIN = [None, True, 3, -2 ** 70, 10 ** 5000, 1.5, float("-inf"), "é\udcff", b"\x00\xff",
         bytearray(b"z"), 1 + 2j, [1, [2]], (1, (2, "x")), {1, 2}, frozenset("ab"),
         {(1, 2): [b"k"], "k": {"n": None}}]


@pytest.mark.parametrize("value", PLAIN, ids=lambda v: type(v).__name__)
def test_wire_round_trips_plain_data_with_its_types(value):
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value,why", [
    (lambda: 1, "builtins.function"),
    (type("Liar", (int,), {})(3), ".Liar"),    # a subclass is not its base: serve.plain
    ([object()], "builtins.object"),
])
def test_wire_refuses_what_is_not_plain(value, why):
    with pytest.raises(wire.Unencodable, match=why):
        wire.encode(value)


def test_wire_refuses_deep_nesting():
    deep: list = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(wire.Unencodable, match="deeper than 100"):
        wire.encode(deep)


@pytest.mark.parametrize("frame", [
    {"$": "tuple", "v": [1], "x": 2}, {"$": "nope", "v": 1}, {"$": "complex", "v": [1, 2]},
    {"$": "bytes", "v": "zz"}, {"$": "int", "v": 5}, {"a": 1},
])
def test_wire_decodes_strictly(frame):
    with pytest.raises(wire.BadFrame):
        wire.decode(frame)


def test_wire_frames_over_a_pipe():
    r, w = os.pipe()
    try:
        wire.send(w, {"x": [1, "two"]})
        assert wire.recv(r) == {"x": [1, "two"]}
        os.write(w, (wire.MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(wire.BadFrame, match="a message of"):
            wire.recv(r)
        os.write(w, (3).to_bytes(4, "big") + b"{x}")
        with pytest.raises(wire.BadFrame, match="not JSON"):
            wire.recv(r)
        os.write(w, (10).to_bytes(4, "big") + b"{}")
        os.close(w)
        w = -1
        assert wire.recv(r) is None          # the frame ends early: the process is gone
        assert wire.recv(r) is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# ----------------------------------------------------------------------------- audit hook

def test_audit_hook_refuses_and_allows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hook = audit.make_hook(network=False, procs=False)   # called, never installed here
    refusals = [
        (("socket.connect", (None, ("127.0.0.1", 9))), audit.MARK_NET),
        (("subprocess.Popen", ("ls", ["ls"], None, None)), audit.MARK_PROC),
        (("os.system", (b"ls",)), audit.MARK_PROC),
        (("open", ("/tmp/x", "w", 0)), audit.MARK_FS),
        (("open", (str(tmp_path / ".." / "x"), None, os.O_WRONLY | os.O_CREAT)), audit.MARK_FS),
        (("os.remove", ("/etc/passwd", None)), audit.MARK_FS),
        (("os.rename", (str(tmp_path / "a"), "/tmp/b", None, None)), audit.MARK_FS),
        (("open", ("/proc/1/environ", "r", 0)), audit.MARK_PROCFS),
        (("os.kill", (1, 9)), audit.MARK_SIG),
    ]
    for (event, args), mark in refusals:
        with pytest.raises(PermissionError, match=mark):
            hook(event, args)
    for event, args in [("open", ("inside.txt", "w", 0)), ("open", ("/etc/hostname", "r", 0)),
                        ("open", ("/dev/null", "w", 0)), ("open", (3, "w", 0)),
                        ("open", ("/proc/self/status", "r", 0)),
                        ("os.remove", (str(tmp_path / "f"), None)),
                        ("os.kill", (os.getpid(), 0)), ("os.kill", (0, 0)),
                        ("import", ("json", None, None, None, None))]:
        hook(event, args)
    lenient = audit.make_hook(network=True, procs=True)
    for event, args in [("socket.connect", (None, ("127.0.0.1", 9))),
                        ("subprocess.Popen", ("ls", ["ls"], None, None)), ("os.kill", (1, 0))]:
        lenient(event, args)
    with pytest.raises(PermissionError, match=audit.MARK_FS):
        lenient("open", ("/tmp/x", "a", 0))


def test_audit_hook_keeps_what_it_compares_against(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hook = audit.make_hook(network=False, procs=False)
    monkeypatch.setattr(os.path, "realpath", lambda p: str(tmp_path / "fake"))
    monkeypatch.setattr(audit, "MARK_FS", "changed")
    monkeypatch.setattr(os, "fsdecode", lambda p: str(tmp_path / "x"))
    with pytest.raises(PermissionError, match="SANDBOX: write outside"):
        hook("open", (b"/tmp/x", "w", 0))
    # its event sets cannot be emptied through the closure
    sets = [c.cell_contents for c in hook.__closure__ if isinstance(c.cell_contents, frozenset)]
    assert len(sets) == 4


# ----------------------------------------------------------------------------- serve

def test_serve_makes_return_values_plain():
    class Liar(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__

    class Dict(dict):
        pass
    assert type(serve.plain(Liar(3))) is int and serve.plain(Liar(3)) == 3
    assert type(serve.plain(Dict(a=1))) is dict
    assert serve.plain([True, (1.5, "s")]) == [True, (1.5, "s")]
    with pytest.raises(wire.Unencodable):
        serve.plain(x for x in ())
    assert serve.describe(ValueError("bad")) == {"type": "ValueError", "module": "builtins",
                                                 "message": "bad", "exception": True}
    assert serve.describe(SystemExit(0))["exception"] is False
    ns = {"f": len, "math": os, "n": 3, "g": (x for x in ())}
    assert serve.kinds(ns, ["f", "math", "n", "g", "h"]) == {
        "f": {"kind": "callable"}, "math": {"kind": "module", "module": "os"},
        "n": {"kind": "value", "value": 3},
        "g": {"kind": "unsendable", "type": "builtins.generator"}, "h": {"kind": "missing"}}
    xs = [1]
    assert serve.returned(None, [xs, 2], {"k": {"a": 1}, "j": 3}) == {
        "ret": None, "args": [[1], None], "kwargs": {"k": {"$": "dict", "v": [["a", 1]]}}}
    assert serve.returned(object(), [], {}) == {"bad_return": "builtins.object"}


# ----------------------------------------------------------------------------- judge

def test_judge_helpers():
    tree = judge.AssertCounter().visit(ast.parse("assert a\nif x:\n    assert b\n"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [c.args[0].value for c in calls] == [1, 2]
    assert isinstance(judge.builtin_exception("ValueError", "builtins", "m"), ValueError)
    other = judge.builtin_exception("Oops", "solution", "m")
    assert isinstance(other, judge.CandidateError) and str(other) == "Oops: m"
    assert isinstance(judge.builtin_exception("SystemExit", "builtins", "0"),
                      judge.CandidateError)   # not an Exception: never rebuilt as itself
    xs, d = [3, 1], {"a": 1}
    judge.copy_into(xs, [1, 3])
    judge.copy_into(d, {"b": 2})
    judge.copy_into(xs, "not a list")
    assert xs == [1, 3] and d == {"b": 2}
    try:
        exec(compile("x = 1\nassert x == 2\n", "<test>", "exec"), {})
    except AssertionError as e:
        assert judge.where(e, {"<test>": ["x = 1", "assert x == 2"]}) == \
            " at test line 2: assert x == 2"
        assert judge.where(e, {}) == ""


def _judge(monkeypatch, test, ns, entry_point="add", names=(), ready=None):
    """A judge run in this process against ``ns`` served from a thread, as the solution
    process would (the audit hook is not installed here)."""
    monkeypatch.setattr(sys, "addaudithook", lambda hook: None)
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def solution():
        try:
            wire.send(from_w, ready or {"ready": True})
            serve.answer(ns, to_r, from_w)
        finally:
            os.close(from_w)   # the judge hears the end, as when the process dies
    t = threading.Thread(target=solution, daemon=True)
    t.start()
    spec = {"test": test, "prompt": "", "setup": "", "entry_point": entry_point,
            "names": list(names)}
    try:
        return judge.Judge(spec, lambda event, args: None, to_w, from_r).verdict()
    finally:
        os.close(to_w)
        t.join(5)
        os.close(to_r)
        os.close(from_r)


CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"


def test_judge_passes_fails_and_counts(monkeypatch):
    v = _judge(monkeypatch, CHECK, {"add": lambda a, b: a + b})
    assert v == {"verdict": "pass", "reason": "passed", "calls": 2, "asserts_run": 2,
                 "assert_statements": 2, "assert_statements_run": 2}
    v = _judge(monkeypatch, CHECK, {"add": lambda a, b: a - b})
    assert v["verdict"] == "fail"
    assert v["reason"] == "AssertionError at test line 2: assert candidate(2, 3) == 5"
    v = _judge(monkeypatch, "def check(candidate):\n    pass\n", {"add": max})
    assert v["verdict"] == "unverifiable" and v["reason"] == "the tests never called the solution"


def test_judge_first_stop_stands_when_the_tests_swallow_it(monkeypatch):
    swallow = "def check(candidate):\n    try:\n        candidate(1)\n    except:\n        pass\n"
    v = _judge(monkeypatch, swallow, {}, entry_point="f")
    assert v["verdict"] == "fail" and v["reason"] == "the solution defines no 'f'"


def test_judge_rebuilds_exceptions_and_copies_arguments_back(monkeypatch):
    def root(x):
        if x < 0:
            raise ValueError("negative")
        return int(x ** 0.5)
    test = ("def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError as e:"
            "\n        assert 'negative' in str(e)\n    assert candidate(4) == 2\n")
    assert _judge(monkeypatch, test, {"root": root}, entry_point="root")["verdict"] == "pass"
    test = "def check(candidate):\n    xs = [3, 1]\n    candidate(xs)\n    assert xs == [1, 3]\n"
    assert _judge(monkeypatch, test, {"f": list.sort}, entry_point="f")["verdict"] == "pass"


def test_judge_binds_the_solutions_names_and_hears_load_errors(monkeypatch):
    v = _judge(monkeypatch, "assert add(N, 1) == 3\n", {"add": lambda a, b: a + b, "N": 2},
               entry_point=None, names=("add", "N"))
    assert v["verdict"] == "pass"
    v = _judge(monkeypatch, CHECK, {}, ready={"load_error": {"type": "SyntaxError",
                                                            "message": "bad"}})
    assert v["verdict"] == "fail" and v["reason"] == "the solution does not run: SyntaxError: bad"


# ----------------------------------------------------------------------------- the program

@pytest.mark.parametrize("argv", [[], ["nope", "network=0", "procs=0"], ["run", "procs=0"],
                                  ["run", "network=2", "procs=0"], ["run", "network=0", "x"],
                                  ["run", "network=0", "network=1", "procs=0"]])
def test_entry_refuses_a_malformed_command_line(argv):
    with pytest.raises(ValueError):
        entry.parse(argv)


def test_entry_parses_roles_switches_and_pipes():
    assert entry.parse(["judge", "network=0", "procs=1", "report=5", "to=6", "from=7"]) == \
        ("judge", False, True, {"report": 5, "to": 6, "from": 7})


SOLUTION = """
import socket, sys
print(sys.argv, __name__, [p for p in sys.path if "_boot" in p])
socket.socket()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_the_child_runs_by_path_as_the_sandbox_starts_it(tmp_path):
    """The launch the sandbox uses, without its kernel layers: the copy's folder is
    not left on sys.path and the audit hook is in before the code runs."""
    write_child(str(tmp_path))
    (tmp_path / "solution.py").write_text(SOLUTION)
    r = subprocess.run([sys.executable, "-I", "-B", LAUNCHER, "run", "network=0", "procs=0"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.stdout == "['solution.py'] __main__ []\n", r.stderr
    assert r.returncode == 1 and r.stderr.rstrip().endswith(f"PermissionError: {audit.MARK_NET}")
    assert not list(tmp_path.rglob("__pycache__"))
    r = subprocess.run([sys.executable, "-I", "-B", LAUNCHER, "walk"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage: ROLE" in r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_the_child_runs_as_a_module_outside_the_sandbox(tmp_path):
    (tmp_path / "solution.py").write_text(SOLUTION)
    r = subprocess.run([sys.executable, "-m", "synth.curate.sandbox.child", "run", "network=1",
                        "procs=0"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and r.stdout == "['solution.py'] __main__ []\n", r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_sandboxed_code_gets_the_isolated_interpreter():
    code = ("import os, sys\nprint(sys.flags.isolated, sys.flags.ignore_environment, "
            "sys.flags.no_user_site, sys.dont_write_bytecode)\n"
            "print(sys.argv, [p for p in sys.path if '_boot' in p or p in ('', '.')])\n"
            "print(sorted(os.listdir('.')))\n")
    r = run_python(code, limits=SandboxLimits(wall_s=10.0))
    assert r.ok, r.stderr
    flags, paths, listing = r.stdout.splitlines()
    assert flags == "1 1 1 True" and paths == "['solution.py'] []"
    assert LAUNCHER in listing and "__pycache__" not in listing


def test_sandboxed_code_cannot_import_the_child_package_again(tmp_path):
    """The judge imports the names a solution reports as modules: none may be a module of
    the child package, from its folder (a planted file) or the launcher run again."""
    code = ("import importlib, os, sys\n"
            "pkg = sys.modules['synth_sandbox_child']\n"
            "open(os.path.join(pkg.__spec__.submodule_search_locations[0], 'evil.py'), 'w')"
            ".write('print(\"planted\")')\n"
            "for name in ('evil', 'probe', '__main__'):\n"
            "    try:\n"
            "        importlib.import_module('synth_sandbox_child.' + name)\n"
            "        print('imported', name)\n"
            "    except ImportError:\n"
            "        print('refused', name)\n")
    r = run_python(code, limits=SandboxLimits(wall_s=10.0))
    assert r.stdout.splitlines() == ["refused evil", "refused probe", "refused __main__"], \
        (r.stdout, r.stderr)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_the_probe_role_reports_from_under_the_audit_hook():
    c = containment()
    assert c["probe_ok"] and c["in_force"]["audit_hook"] is True   # in every mode
    socket.socket().close()    # the parent itself is under no hook
