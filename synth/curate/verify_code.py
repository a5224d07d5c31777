"""Verify code answers: the reference's tests run against the answer, in the sandbox
(:mod:`synth.curate.sandbox`), in a way the answer's code cannot fool.

Verification (:func:`check_solution`) does not trust the process that runs the
model's code with anything. Two sandboxed interpreters run per answer:

* the *solution* process runs the model's code and then serves calls: it gets a
  function name and plain-data arguments, and sends back a plain-data result;
* the *judge* process runs the reference's tests (``check(candidate)`` or the
  ``assert`` lines). The candidate it is given is a proxy: each call crosses to
  the solution process and back as JSON of plain data only (None, bool, int,
  float, complex, str, bytes, list, tuple, dict, set). The judge makes itself
  non-dumpable before it receives the tests, and the tests reach it through its
  stdin pipe only, never a file, argv or environment.

Both programs are stdlib-only modules of the sandbox's child package
(:mod:`synth.curate.sandbox.child.serve`, :mod:`synth.curate.sandbox.child.judge`, speaking
:mod:`synth.curate.sandbox.child.wire`); this module is the parent's side.

"Correct" means the judge, which no model code runs in, reported on a pipe only it
holds that the tests ran to the end with no failure, that the solution was called
at least once and (when the tests have ``assert`` statements) that at least one
assert ran. The model's code cannot reach that pipe, the judge's memory, ``check``,
``AssertionError``, the builtins or the judge's stdout: ``sys.exit``/``os._exit``,
``atexit``, ``sys.excepthook``, signal handlers, closing or redirecting stdout,
threads, monkeypatching, gc/frame/``inspect`` walks and ``/proc`` reads all happen
in the other process, where there is no token and no test to find. An object with
an ``__eq__`` that always says True cannot cross (only plain data does); a subclass
of a plain type crosses as its plain value. What is not defended: an answer that
special-cases the test inputs it is called with (it sees the inputs, never the
expected outputs), tests that are themselves weak, and, in mode ``none``, a program
that uses ctypes to act as you (read synth's memory, write your files).
"""
from __future__ import annotations

import ast
import builtins as _builtins
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from synth.curate.sandbox import SandboxLimits, SandboxResult
from synth.curate.sandbox.supervisor import (
    Child,
    failure_reason,
    refusal_reason,
    sandbox_error,
)

__all__ = ["Verdict", "TestSpec", "BadReference", "check_solution", "extract_code",
           "parse_reference"]


@dataclass
class Verdict:
    outcome: Literal["correct", "wrong", "unverifiable"]
    reason: str
    detail: SandboxResult | None = None      # the solution's process
    judge: SandboxResult | None = None       # the process that ran the tests
    stats: dict = field(default_factory=dict)  # calls, asserts run, assert statements


# --------------------------------------------------------------------------- verification

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(response: str) -> str | None:
    """The code of a model's answer: fenced python blocks, else the raw text if it parses."""
    if not isinstance(response, str) or not response.strip():
        return None
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(response)]
    if blocks:
        py = [b for lang, b in blocks if lang in ("python", "py", "python3")]
        chosen = py or [b for lang, b in blocks if lang == ""]
        code = "\n\n".join(b.rstrip() for b in chosen).strip("\n")
        return code + "\n" if code.strip() else None
    text = response.strip("\n")
    try:
        compile(text, "<response>", "exec")
    except (SyntaxError, ValueError):
        # maybe an indented function body completing a prompt: still code-like
        if re.search(r"^\s*(def |return |import |from |class |for |if |while )", text, re.M):
            return text + "\n"
        return None
    return text + "\n"


class BadReference(ValueError):
    """A reference that is neither HumanEval-style JSON nor a Python test script."""


@dataclass(frozen=True)
class TestSpec:
    """Parsed tests. ``kind`` is ``humaneval`` (``check(candidate)`` called with
    ``entry_point``) or ``script`` (top-level code with ``assert`` lines); ``names`` are
    the names the tests use without defining them: the solution's functions."""

    __test__ = False  # not a pytest class

    kind: Literal["humaneval", "script"]
    test: str
    entry_point: str | None = None
    prompt: str = ""
    setup: str = ""
    names: tuple[str, ...] = ()
    asserts: int = 0


_HOW = ("give JSON {\"test\": \"def check(candidate): ...\", \"entry_point\": NAME} "
        "(HumanEval), {\"test_list\": [\"assert f(1) == 2\", ...]} (MBPP) or a Python "
        "script of assert lines")


def _parse_py(src: str, what: str) -> ast.Module:
    try:
        return ast.parse(src, filename=f"<{what}>")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        raise BadReference(f"the {what} is not valid Python"
                           f"{f' (line {line})' if line else ''}: {getattr(e, 'msg', e)}") \
            from None


def _bound_and_loaded(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names bound anywhere in ``tree`` (any scope) and names read from it."""
    bound, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                bound.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound, loaded


def _stubs(tree: ast.Module) -> set[str]:
    """Top-level functions with no body but a docstring, ``pass`` or ``...``."""
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and all(
                isinstance(b, ast.Pass) or (isinstance(b, ast.Expr) and isinstance(
                    b.value, ast.Constant) and (isinstance(b.value.value, str)
                                                or b.value.value is Ellipsis))
                for b in n.body):
            out.add(n.name)
    return out


def _count_asserts(tree: ast.AST) -> int:
    return sum(isinstance(n, ast.Assert) for n in ast.walk(tree))


def parse_reference(reference) -> TestSpec | None:
    """The tests in a row's ``reference``; None when there is none; :class:`BadReference`
    when it is there but is neither kind. Accepts a dict, a JSON string of one (HumanEval's
    ``test`` + ``entry_point`` [+ ``prompt``], or MBPP's ``test_list`` [+
    ``test_setup_code``, ``test_imports``]) or a plain Python script of ``assert`` lines."""
    if reference is None or (isinstance(reference, str) and not reference.strip()):
        return None
    if isinstance(reference, str):
        text = reference
        try:
            reference = json.loads(text)
        except ValueError:
            reference = text
        if isinstance(reference, (int, float)) or reference is None:
            reference = text  # "72" is JSON too: judge it as the script it is not
    if isinstance(reference, str):
        return _script_spec(reference, "", "")
    if not isinstance(reference, dict):
        raise BadReference(f"a JSON {type(reference).__name__} is not a test; {_HOW}")
    setup = reference.get("test_setup_code") or ""
    imports = reference.get("test_imports") or []
    if not isinstance(setup, str) or not isinstance(imports, list) or not all(
            isinstance(i, str) for i in imports):
        raise BadReference("test_setup_code must be a string and test_imports a list of "
                           "strings")
    setup = "\n".join(imports + [setup]).strip("\n")
    if "test_list" in reference:
        tl = reference["test_list"]
        if not isinstance(tl, list) or not tl or not all(isinstance(t, str) for t in tl):
            raise BadReference("test_list must be a non-empty list of strings (assert lines)")
        return _script_spec("\n".join(tl), setup, "")
    test, entry = reference.get("test"), reference.get("entry_point")
    if not isinstance(test, str) or not test.strip():
        raise BadReference(f"no \"test\" string (keys: {', '.join(sorted(reference)) or 'none'})"
                           f"; {_HOW}")
    prompt = reference.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadReference("prompt must be a string")
    if entry is None:
        return _script_spec(test, setup, prompt)
    if not isinstance(entry, str) or not entry.isidentifier():
        raise BadReference(f"entry_point must be a function name, not {entry!r}")
    tree = _parse_py(test, "test")
    if not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
        raise BadReference("a test with an entry_point must define check(candidate)")
    bound, loaded = _bound_and_loaded(tree)
    for extra in (prompt, setup):
        if extra:
            try:
                b, _ = _bound_and_loaded(ast.parse(extra))
            except (SyntaxError, ValueError):
                b = set()
            bound |= b
    names = sorted(loaded - bound - set(dir(_builtins)) - {entry})
    return TestSpec("humaneval", test, entry, prompt, setup, tuple(names),
                    _count_asserts(tree))


def _script_spec(test: str, setup: str, prompt: str) -> TestSpec:
    tree = _parse_py(test, "test script")
    n = _count_asserts(tree)
    if n == 0:
        raise BadReference(f"the test script has no assert statement; {_HOW}")
    if any(isinstance(s, ast.FunctionDef) and s.name == "check" for s in tree.body) and \
            not any(isinstance(s, ast.Assert) for s in tree.body) and \
            "check(" not in "".join(ast.unparse(s) for s in tree.body
                                    if not isinstance(s, ast.FunctionDef)):
        raise BadReference("the test defines check(candidate) but never calls it: add "
                           "\"entry_point\"")
    bound, loaded = _bound_and_loaded(tree)
    if setup:
        bound |= _bound_and_loaded(_parse_py(setup, "test setup code"))[0]
    if prompt:   # the prompt's helpers are the tests'; its stubs are for the answer to fill
        try:
            ptree = ast.parse(prompt)
        except (SyntaxError, ValueError):
            ptree = None
        if ptree is not None:
            bound |= _bound_and_loaded(ptree)[0] - _stubs(ptree)
    names = sorted(loaded - bound - set(dir(_builtins)))
    if not names:
        raise BadReference("the test script uses no function it does not define itself, so "
                           "it cannot test an answer")
    return TestSpec("script", test, None, prompt, setup, tuple(names), n)


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def _prompt_preamble(prompt: str, entry: str) -> str:
    """The prompt's lines before the entry point's definition (imports, helpers)."""
    m = re.search(rf"^def\s+{re.escape(entry)}\s*\(", prompt, re.M)
    return prompt[:m.start()] if m else ""


def _solution_program(code: str, spec: TestSpec) -> str:
    """The module the solution process runs: the answer, completed by the prompt."""
    head = spec.setup + "\n\n" if spec.setup else ""
    prompt, entry = spec.prompt, spec.entry_point
    if not prompt:
        return head + code
    if entry and not _defines(code, entry):
        return head + prompt + code      # a completion of the function body
    if not entry:   # the whole prompt: an indented answer completes its last function,
        first = next((ln for ln in code.splitlines() if ln.strip()), "")
        return head + prompt + ("" if first[:1].isspace() else "\n") + code  # else redefines
    # a full solution: keep the prompt's imports/helpers around it
    return head + _prompt_preamble(prompt, entry) + "\n" + code


class _VerdictReader(threading.Thread):
    """Reads the judge's report pipe: a ``ready`` line, then one verdict line."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd = fd
        self.ready, self.done = threading.Event(), threading.Event()
        self.verdict: dict | None = None
        self.extra = False   # anything after the verdict (never expected)

    def run(self):
        buf = b""
        try:
            while len(buf) < 1_000_000:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        msg = None
                    if msg == {"ready": True} and not self.ready.is_set():
                        self.ready.set()
                    elif isinstance(msg, dict) and "verdict" in msg and self.verdict is None:
                        self.verdict = msg
                        self.done.set()
                    else:
                        self.extra = True
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.ready.set()
            self.done.set()


def check_solution(response: str, reference, *,
                   limits: SandboxLimits = SandboxLimits()) -> Verdict:
    """Verify ``response`` against the tests in ``reference`` (see :func:`parse_reference`).

    ``correct`` only when the judge process reports that the tests ran to the end (see the
    module docstring); a malformed reference or a response without code is
    ``unverifiable``."""
    if isinstance(reference, TestSpec):
        spec = reference
    else:
        try:
            spec = parse_reference(reference)
        except BadReference as e:
            return Verdict("unverifiable", f"malformed reference: {e}")
        if spec is None:
            return Verdict("unverifiable", "no reference")
    code = extract_code(response)
    if code is None:
        return Verdict("unverifiable", "no code found in the response")
    return _judge(_solution_program(code, spec), spec, limits)


def _judge(program: str, spec: TestSpec, limits: SandboxLimits) -> Verdict:
    start = time.monotonic()
    deadline = start + limits.wall_s
    over = threading.Event()
    fds: list[int] = []
    judge = sol = None
    try:
        v_r, v_w = os.pipe()
        to_r, to_w = os.pipe()        # judge -> solution
        from_r, from_w = os.pipe()    # solution -> judge
        fds += [v_r, v_w, to_r, to_w, from_r, from_w]
        # the judge (sandbox.child.judge) and the solution process (.serve): their pipes
        # are named on their command lines; the tests go to the judge's stdin below
        judge = Child("judge", limits, over=over,
                      fds={"report": v_w, "to": to_w, "from": from_r})
        for fd in (v_w, to_w, from_r):
            os.close(fd)
            fds.remove(fd)
        sol = Child("serve", limits, over=over, files={"solution.py": program},
                    fds={"read": to_r, "write": from_w})
        for fd in (to_r, from_w):
            os.close(fd)
            fds.remove(fd)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        for c in (judge, sol):
            if c is not None:
                c.cleanup()
        for fd in fds:
            os.close(fd)
        return Verdict("unverifiable", f"sandbox error: {e}", sandbox_error(e, start))
    fds.remove(v_r)
    reader = _VerdictReader(v_r)
    reader.start()
    try:
        timed_out = output_limit = False
        feeder = None
        while True:
            if reader.ready.is_set() and feeder is None:
                # the tests go to the judge only once it has made itself unreadable
                feeder = judge.feed(json.dumps({
                    "test": spec.test, "prompt": spec.prompt, "setup": spec.setup,
                    "entry_point": spec.entry_point, "names": list(spec.names)}).encode())
            if reader.done.is_set():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if over.wait(min(0.02, left)):
                output_limit = True
                break
            if judge.ended_by_itself():
                reader.done.wait(1.0)   # its last words may still be in the pipe
                break
        sol_ended = sol.ended_by_itself()
        if not sol_ended and "process ended" in str((reader.verdict or {}).get("reason")):
            # the judge saw the pipe close, which happens just before the process can be
            # reaped: wait for it, so the reason can carry its exit status
            sol_ended = sol.wait_ended(1.0)
        j_res = judge.stop(timed_out=timed_out, output_limit=output_limit)
        s_res = sol.stop(timed_out=timed_out, output_limit=output_limit)
        reader.join(timeout=2.0)
        if feeder is not None:
            feeder.join(timeout=1.0)
        return _decide(reader.verdict, j_res, s_res, sol_ended, timed_out, output_limit)
    finally:
        judge.cleanup()
        sol.cleanup()


def _decide(v: dict | None, j_res: SandboxResult, s_res: SandboxResult, sol_ended: bool,
            timed_out: bool, output_limit: bool) -> Verdict:
    stats = {k: v[k] for k in ("calls", "asserts_run", "assert_statements",
                               "assert_statements_run") if v and k in v}
    if v is not None and v.get("verdict") == "pass":
        n, m = stats.get("assert_statements", 0), stats.get("assert_statements_run", 0)
        why = f"passed: {stats.get('asserts_run', 0)} asserts run, {stats['calls']} calls"
        if m < n:
            why += f" ({n - m} of {n} assert statements never ran)"
        return Verdict("correct", why, s_res, j_res, stats)
    if timed_out:
        return Verdict("wrong", "timeout", s_res, j_res, stats)
    if output_limit:
        return Verdict("wrong", "output_limit", s_res, j_res, stats)
    # a containment refusal or a resource limit in the solution says most
    marked = refusal_reason(s_res.stderr)
    if sol_ended and marked is None:
        ended = failure_reason(s_res.exit_code, s_res.signal, False, False, s_res.stderr)
        marked = ended if ended and not ended.startswith("exit") else None
    if v is None:
        if marked:
            return Verdict("wrong", marked, s_res, j_res, stats)
        last = [ln for ln in j_res.stderr.strip().splitlines() if ln.strip()]
        return Verdict("unverifiable", f"the judge process failed ({j_res.reason or 'no verdict'})"
                       + (f": {last[-1][:200]}" if last else ""), s_res, j_res, stats)
    reason = str(v.get("reason") or "failed")[:400]
    if v.get("verdict") == "unverifiable":
        return Verdict("unverifiable", reason, s_res, j_res, stats)
    if marked:
        reason = marked
    elif sol_ended and "ended" in reason:
        reason += f" ({_exit_words(s_res)})"
    return Verdict("wrong", reason, s_res, j_res, stats)


def _exit_words(r: SandboxResult) -> str:
    if r.signal is not None:
        try:
            return f"killed by {signal.Signals(r.signal).name}"
        except ValueError:
            return f"killed by signal {r.signal}"
    return f"exit status {r.exit_code}"


