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

from synth.curate.sandbox import (
    SandboxLimits,
    SandboxResult,
    _Child,
    _marked,
    _reason,
    _sandbox_error,
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


# Plain data across the process boundary: JSON with tags, decoded strictly. Shared by
# the judge and the solution process (both are stdlib-only scripts).
_WIRE = r'''
import os as _wos, json as _wjson
_MAXFRAME = 4 * 1024 * 1024
class _Unencodable(Exception):
    pass
class _BadFrame(Exception):
    pass

def _enc(v, depth=0):
    if depth > 100:
        raise _Unencodable("a value nested deeper than 100")
    t = type(v)
    if v is None or t is bool or t is str or t is float:
        return v
    if t is int:
        return v if v.bit_length() < 12000 else {"$": "int", "v": hex(v)}
    if t is list:
        return [_enc(x, depth + 1) for x in v]
    if t is tuple:
        return {"$": "tuple", "v": [_enc(x, depth + 1) for x in v]}
    if t is dict:
        return {"$": "dict", "v": [[_enc(k, depth + 1), _enc(x, depth + 1)]
                                   for k, x in v.items()]}
    if t is set or t is frozenset:
        return {"$": t.__name__, "v": [_enc(x, depth + 1) for x in v]}
    if t is bytes or t is bytearray:
        return {"$": t.__name__, "v": bytes(v).hex()}
    if t is complex:
        return {"$": "complex", "v": [v.real, v.imag]}
    raise _Unencodable(f"{t.__module__}.{t.__qualname__}")

def _dec(j, depth=0):
    if depth > 100:
        raise _BadFrame("nested deeper than 100")
    t = type(j)
    if j is None or t is bool or t is int or t is float or t is str:
        return j
    if t is list:
        return [_dec(x, depth + 1) for x in j]
    if t is not dict or set(j) - {"$", "v"}:
        raise _BadFrame("not a plain value")
    tag, v = j.get("$"), j.get("v")
    try:
        if tag == "tuple":
            return tuple(_dec(x, depth + 1) for x in v)
        if tag == "dict":
            return {_dec(k, depth + 1): _dec(x, depth + 1) for k, x in v}
        if tag == "set":
            return {_dec(x, depth + 1) for x in v}
        if tag == "frozenset":
            return frozenset(_dec(x, depth + 1) for x in v)
        if tag == "bytes":
            return bytes.fromhex(v)
        if tag == "bytearray":
            return bytearray.fromhex(v)
        if tag == "complex":
            re_, im = v
            if type(re_) is not float or type(im) is not float:
                raise _BadFrame("bad complex")
            return complex(re_, im)
        if tag == "int":
            return int(v, 16)
    except (TypeError, ValueError) as e:
        raise _BadFrame(str(e)) from None
    raise _BadFrame(f"unknown tag {tag!r}")

def _send(fd, obj):
    data = _wjson.dumps(obj, ensure_ascii=True).encode()
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[_wos.write(fd, data):]

def _read_exact(fd, n):
    out = bytearray()
    while len(out) < n:
        chunk = _wos.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            return None
        out += chunk
    return bytes(out)

def _recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > _MAXFRAME:
        raise _BadFrame(f"a message of {n} bytes")
    body = _read_exact(fd, n)
    if body is None:
        return None
    try:
        return _wjson.loads(body)
    except (ValueError, RecursionError) as e:
        raise _BadFrame(f"not JSON: {e}") from None
'''

# The solution process: runs the model's module, then answers calls from the judge.
# Nothing here is trusted; whatever this process does, the judge only ever receives
# plain data from it.
_SERVE = r'''
import sys, traceback
_R, _W = @R@, @W@

def _plain(v, depth=0):
    """A return value as plain data: subclasses of plain types as their plain value
    (an int subclass whose __eq__ always says True crosses as the int it holds), numpy
    scalars as Python scalars; anything else cannot cross."""
    if depth > 100:
        raise _Unencodable("a value nested deeper than 100")
    t = type(v)
    if v is None or t in (bool, int, float, str, bytes, bytearray, complex):
        return v
    if t in (list, tuple):
        return t(_plain(x, depth + 1) for x in v)
    if t in (set, frozenset):
        return t(_plain(x, depth + 1) for x in v)
    if t is dict:
        return {_plain(k, depth + 1): _plain(x, depth + 1) for k, x in v.items()}
    if getattr(t, "__module__", "") == "numpy" and getattr(v, "ndim", None) == 0:
        return _plain(v.item(), depth + 1)
    for base in (bool, int, float, complex, str, bytes, bytearray, tuple, list, dict,
                 frozenset, set):
        if isinstance(v, base):
            if base is bool:
                return bool(v)
            if base is int:
                return int.__int__(v)
            if base is float:
                return float.__float__(v)
            if base is str:
                return str.__str__(v)
            if base in (dict,):
                return _plain(dict(dict.items(v)), depth + 1)
            return _plain(base(v), depth + 1)
    raise _Unencodable(f"{t.__module__}.{t.__qualname__}")

def _desc(e):
    try:
        msg = str(e)
    except BaseException:
        msg = "?"
    t = type(e)
    return {"type": t.__name__, "module": t.__module__, "message": msg[:500],
            "exception": isinstance(e, Exception)}

with open("solution.py", encoding="utf-8") as _f:
    _src = _f.read()
_ns = {"__name__": "solution", "__builtins__": __builtins__, "__file__": "solution.py"}
try:
    _code = compile(_src, "solution.py", "exec")
    sys.addaudithook(_HOOK)
    exec(_code, _ns)
except BaseException as e:
    traceback.print_exc()
    _send(_W, {"load_error": _desc(e)})
    sys.stderr.flush()
    _wos._exit(1)
_send(_W, {"ready": True})
_MUTABLE = (list, dict, set, bytearray)
_raised = 0
while True:
    msg = _recv(_R)
    if msg is None:
        _wos._exit(0)
    name = msg.get("name")
    if msg.get("op") == "kinds":
        out = {}
        for n in msg["names"]:
            if n not in _ns:
                out[n] = {"kind": "missing"}
            elif type(_ns[n]) is type(sys):
                out[n] = {"kind": "module", "module": str(_ns[n].__name__)}
            elif callable(_ns[n]):
                out[n] = {"kind": "callable"}
            else:
                try:
                    out[n] = {"kind": "value", "value": _enc(_plain(_ns[n]))}
                except _Unencodable as e:
                    out[n] = {"kind": "unsendable", "type": str(e)}
        _send(_W, out)
        continue
    fn = _ns.get(name)
    if fn is None:
        _send(_W, {"missing": name})
        continue
    args = [_dec(a) for a in msg["args"]]
    kwargs = {k: _dec(v) for k, v in msg["kwargs"].items()}
    try:
        ret = fn(*args, **kwargs)
    except BaseException as e:
        _raised += 1
        if _raised <= 3:   # enough to see why; tests that expect exceptions stay quiet
            traceback.print_exc()
        _send(_W, {"raise": _desc(e)})
        continue
    try:
        reply = {"ret": _enc(_plain(ret)),
                 "args": [_enc(_plain(a)) if type(a) in _MUTABLE else None for a in args],
                 "kwargs": {k: _enc(_plain(v)) for k, v in kwargs.items()
                            if type(v) in _MUTABLE}}
    except _Unencodable as e:
        reply = {"bad_return": str(e)}
    except BaseException as e:
        reply = {"bad_return": f"a value whose conversion raised {type(e).__name__}"}
    _send(_W, reply)
'''

# The judge: runs the tests with proxies for the solution's functions. No model code
# runs in this process; it reports on a pipe that only it holds.
_JUDGE = r'''
import ast, builtins, sys, traceback
try:  # before the tests arrive: nobody of our uid may read our memory or fds
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)    # PR_SET_DUMPABLE 0
except Exception:
    pass
_V, _TO, _FROM = @V@, @TO@, @FROM@

def _report(obj):
    _wos.write(_V, (_wjson.dumps(obj) + "\n").encode())

_FATAL = None

class _Stop(BaseException):
    """Ends the tests; not an Exception, so a test's ``except Exception`` cannot catch it,
    and the first one stands even if a bare ``except:`` swallows it."""
    def __init__(self, outcome, reason):
        global _FATAL
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason
        if _FATAL is None:
            _FATAL = self

class _CandidateError(Exception):
    pass

_report({"ready": True})
_M = _wjson.loads(sys.stdin.buffer.read())
sys.stdin.close()
_CALLS = 0
_TAINTED = False
_HITS = {}
_SRC = {"<test>": _M["test"].splitlines(), "<prompt>": _M["prompt"].splitlines(),
        "<setup>": _M["setup"].splitlines()}

def _hit(k):
    _HITS[k] = _HITS.get(k, 0) + 1

class _Count(ast.NodeTransformer):
    def __init__(self):
        self.n = 0
    def visit_Assert(self, node):
        self.n += 1
        call = ast.Expr(ast.Call(ast.Name("__synth_hit__", ast.Load()),
                                 [ast.Constant(self.n)], []))
        return [ast.copy_location(call, node), node]

_ready = None

def _hello():
    global _ready
    if _ready is None:
        try:
            msg = _recv(_FROM)
        except (_BadFrame, OSError) as e:
            raise _Stop("fail", f"the solution's process broke the protocol ({e})") from None
        if type(msg) is not dict:
            msg = None if msg is None else {}
        if msg is None:
            raise _Stop("fail", "the solution's process ended before it was ready")
        if "load_error" in msg:
            e = msg["load_error"]
            raise _Stop("fail", f"the solution does not run: {e['type']}: {e['message']}")
        if msg != {"ready": True}:
            raise _Stop("fail", "the solution's process broke the protocol")
        _ready = True

def _ask(payload):
    _hello()
    try:
        _send(_TO, payload)
        reply = _recv(_FROM)
    except _BadFrame as e:
        raise _Stop("fail", f"the solution's process broke the protocol ({e})") from None
    except OSError:
        reply = None
    if reply is None:
        raise _Stop("fail", "the solution's process ended during a call")
    if type(reply) is not dict:
        raise _Stop("fail", "the solution's process broke the protocol")
    return reply

def _rebuild(d):
    name, msg = str(d.get("type")), str(d.get("message"))
    if not d.get("exception"):
        raise _Stop("fail", f"the solution raised {name} ({msg[:200]})".replace(" ()", ""))
    cls = getattr(builtins, name, None)
    if d.get("module") == "builtins" and isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(msg)
        except Exception:
            pass
    return _CandidateError(f"{name}: {msg}")

def _copy_back(old, new):
    try:
        new = _dec(new)
    except _BadFrame:
        raise _Stop("fail", "the solution's process broke the protocol") from None
    if type(new) is not type(old):
        return
    if type(old) in (list, bytearray):
        old[:] = new
    else:
        old.clear()
        old.update(new)

class _Remote:
    """The solution's function, called across the process boundary."""
    __slots__ = ("_name",)
    def __init__(self, name):
        self._name = name
    @property
    def __name__(self):
        return self._name
    def __repr__(self):
        return f"<solution function {self._name}>"
    def __call__(self, *args, **kwargs):
        global _CALLS
        _CALLS += 1
        try:
            payload = {"op": "call", "name": self._name, "args": [_enc(a) for a in args],
                       "kwargs": {str(k): _enc(v) for k, v in kwargs.items()}}
        except _Unencodable as e:
            raise _Stop("unverifiable", f"the tests pass a {e} to {self._name}, which "
                        "cannot cross to the solution's process (only plain data does)") \
                from None
        reply = _ask(payload)
        if "missing" in reply:
            raise _Stop("fail", f"the solution defines no {self._name!r}")
        if "raise" in reply:
            raise _rebuild(reply["raise"])
        if "bad_return" in reply:
            raise _Stop("fail", f"{self._name} returned a {reply['bad_return']}, not a plain "
                        "value the tests can compare")
        try:
            ret = _dec(reply["ret"])
        except (_BadFrame, KeyError):
            raise _Stop("fail", "the solution's process broke the protocol") from None
        for a, new in zip(args, reply.get("args") or []):
            if new is not None and type(a) in (list, dict, set, bytearray):
                _copy_back(a, new)
        for k, new in (reply.get("kwargs") or {}).items():
            if k in kwargs and type(kwargs[k]) in (list, dict, set, bytearray):
                _copy_back(kwargs[k], new)
        return ret

def _where(e):
    for fs in reversed(traceback.extract_tb(e.__traceback__)):
        lines = _SRC.get(fs.filename)
        if lines is not None and fs.lineno and fs.lineno <= len(lines):
            where = fs.filename.strip("<>")
            return f" at {where} line {fs.lineno}: {lines[fs.lineno - 1].strip()[:160]}"
    return ""

def _run():
    ns = {"__name__": "__synth_test__", "__builtins__": builtins, "__synth_hit__": _hit}
    counter = _Count()
    tree = ast.fix_missing_locations(counter.visit(ast.parse(_M["test"], "<test>")))
    test_code = compile(tree, "<test>", "exec")
    sys.addaudithook(_HOOK)
    for key in ("prompt", "setup"):
        if _M[key]:
            try:
                exec(compile(_M[key], f"<{key}>", "exec"), ns)
            except BaseException as e:
                raise _Stop("unverifiable", f"the reference's {key} does not run: "
                            f"{type(e).__name__}: {e}"[:300]) from None
    _hello()
    global _TAINTED
    wanted = list(_M["names"])   # free in the tests by construction: the answer's
    if wanted:
        kinds = _ask({"op": "kinds", "names": wanted})
        for n in wanted:
            k = kinds.get(n) if isinstance(kinds, dict) else None
            kind = k.get("kind") if isinstance(k, dict) else None
            if kind == "callable" or kind == "missing":
                ns[n] = _Remote(n)       # a missing one fails when it is called
            elif kind == "module":     # e.g. math the answer imported and the test uses
                _TAINTED = True        # the solution's values are in: failures are its own
                try:
                    ns[n] = __import__(str(k.get("module")))
                except Exception:
                    raise _Stop("fail", f"the tests use {n}, which the solution imports but "
                                "the tests cannot") from None
            elif kind == "value":
                _TAINTED = True
                try:
                    ns[n] = _dec(k.get("value"))
                except _BadFrame:
                    raise _Stop("fail", "the solution's process broke the protocol") from None
            elif kind == "unsendable":
                raise _Stop("fail", f"the solution's {n} is a {k.get('type')}, not a "
                            "function or plain value")
            else:
                raise _Stop("fail", "the solution's process broke the protocol")
    entry = _M["entry_point"]
    if entry:
        ns[entry] = _Remote(entry)
    exec(test_code, ns)
    if entry:
        ns["check"](ns[entry])
    return counter.n

try:
    try:
        n_asserts = _run()
    except _Stop:
        raise
    except AssertionError as e:
        msg = str(e).strip()
        raise _Stop("fail", f"AssertionError{_where(e)}" + (f" ({msg[:120]})" if msg else ""))
    except BaseException as e:
        if not _TAINTED and _CALLS == 0:
            raise _Stop("unverifiable", "the tests failed before calling the solution: "
                        f"{type(e).__name__}: {str(e)[:200]}{_where(e)}")
        raise _Stop("fail", f"{type(e).__name__}: {str(e)[:200]}{_where(e)}")
    if _FATAL is not None:
        raise _FATAL
    stats = {"calls": _CALLS, "asserts_run": sum(_HITS.values()),
             "assert_statements": n_asserts, "assert_statements_run": len(_HITS)}
    if _CALLS == 0:
        raise _Stop("unverifiable", "the tests never called the solution")
    if n_asserts and not _HITS:
        # the answer was called, and what it returned steered the tests past every assert
        # (e.g. [] to a loop of asserts): a way to be kept unchecked, so it is wrong
        raise _Stop("fail", f"none of the tests' {n_asserts} assert statements ran after "
                    f"{_CALLS} call(s) of the solution")
    _report({"verdict": "pass", "reason": "passed", **stats})
except _Stop as s:
    s = _FATAL or s
    _report({"verdict": s.outcome, "reason": s.reason, "calls": _CALLS,
             "asserts_run": sum(_HITS.values())})
except BaseException as e:
    _report({"verdict": "unverifiable", "reason": f"judge error: {type(e).__name__}: {e}"})
sys.stdout.flush()
sys.stderr.flush()
_wos._exit(0)
'''


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
        boot = _WIRE + _JUDGE.replace("@V@", str(v_w)).replace("@TO@", str(to_w)) \
            .replace("@FROM@", str(from_r))
        judge = _Child(boot, {}, limits, over=over, pass_fds=(v_w, to_w, from_r))
        for fd in (v_w, to_w, from_r):
            os.close(fd)
            fds.remove(fd)
        boot = _WIRE + _SERVE.replace("@R@", str(to_r)).replace("@W@", str(from_w))
        sol = _Child(boot, {"solution.py": program}, limits, over=over,
                     pass_fds=(to_r, from_w))
        for fd in (to_r, from_w):
            os.close(fd)
            fds.remove(fd)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        for c in (judge, sol):
            if c is not None:
                c.cleanup()
        for fd in fds:
            os.close(fd)
        return Verdict("unverifiable", f"sandbox error: {e}", _sandbox_error(e, start))
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
    marked = _marked(s_res.stderr)
    if sol_ended and marked is None:
        ended = _reason(s_res.exit_code, s_res.signal, False, False, s_res.stderr)
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


