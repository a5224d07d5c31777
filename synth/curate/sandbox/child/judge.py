"""The judge of ``verify_code`` (:mod:`synth.curate.verify_code`): runs the reference's
tests with proxies for the solution's functions.

No model code runs in this process. It makes itself non-dumpable before the tests arrive
(on stdin only), and reports on a pipe only it holds: ``{"ready": true}``, then one
verdict line.
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import traceback
from typing import Any

from .audit import Hook
from .wire import BadFrame, Unencodable, decode, encode, recv, send

_MUTABLE = (list, dict, set, bytearray)


class Stop(BaseException):
    """Ends the tests; not an Exception, so a test's ``except Exception`` cannot catch it.
    Made through :meth:`Judge.stop`, which keeps the first one: it stands even if a bare
    ``except:`` swallows it."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class CandidateError(Exception):
    """An exception of the solution's that is not a builtin one, by name and message."""


class AssertCounter(ast.NodeTransformer):
    """Numbers the asserts and puts a ``__synth_hit__(n)`` call before each: which ran."""

    def __init__(self) -> None:
        self.n = 0

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        self.n += 1
        call = ast.Expr(ast.Call(ast.Name("__synth_hit__", ast.Load()),
                                 [ast.Constant(self.n)], []))
        return [ast.copy_location(call, node), node]


def where(e: BaseException, src: dict[str, list[str]]) -> str:
    """`` at test line N: <the line>`` for the innermost frame of ``e`` in the tests'
    sources (``src``: file name -> lines), else empty."""
    for fs in reversed(traceback.extract_tb(e.__traceback__)):
        lines = src.get(fs.filename)
        if lines is not None and fs.lineno and fs.lineno <= len(lines):
            name = fs.filename.strip("<>")
            return f" at {name} line {fs.lineno}: {lines[fs.lineno - 1].strip()[:160]}"
    return ""


def builtin_exception(name: str, module: Any, msg: str) -> Exception:
    """The solution's exception for the tests: a builtin Exception subclass as itself
    (``except ValueError`` in a test works), anything else as :class:`CandidateError`."""
    cls = getattr(builtins, name, None)
    if module == "builtins" and isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(msg)
        except Exception:
            pass
    return CandidateError(f"{name}: {msg}")


def copy_into(old: Any, new: Any) -> None:
    """Make the tests' mutable argument ``old`` hold ``new``, its value after the call."""
    if type(new) is not type(old):
        return
    if type(old) in (list, bytearray):
        old[:] = new
    else:
        old.clear()
        old.update(new)


class Remote:
    """The solution's function, called across the process boundary."""
    __slots__ = ("_name", "_judge")

    def __init__(self, judge: Judge, name: str):
        self._name = name
        self._judge = judge

    @property
    def __name__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<solution function {self._name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        judge, name = self._judge, self._name
        judge.calls += 1
        try:
            payload = {"op": "call", "name": name, "args": [encode(a) for a in args],
                       "kwargs": {str(k): encode(v) for k, v in kwargs.items()}}
        except Unencodable as e:
            raise judge.stop("unverifiable", f"the tests pass a {e} to {name}, which "
                             "cannot cross to the solution's process (only plain data does)") \
                from None
        reply = judge.ask(payload)
        if "missing" in reply:
            raise judge.stop("fail", f"the solution defines no {name!r}")
        if "raise" in reply:
            raise judge.rebuild(reply["raise"])
        if "bad_return" in reply:
            raise judge.stop("fail", f"{name} returned a {reply['bad_return']}, not a plain "
                             "value the tests can compare")
        try:
            ret = decode(reply["ret"])
        except (BadFrame, KeyError):
            raise judge.stop("fail", "the solution's process broke the protocol") from None
        for a, new in zip(args, reply.get("args") or []):
            if new is not None and type(a) in _MUTABLE:
                judge.copy_back(a, new)
        for k, new in (reply.get("kwargs") or {}).items():
            if k in kwargs and type(kwargs[k]) in _MUTABLE:
                judge.copy_back(kwargs[k], new)
        return ret


class Judge:
    """One run of the tests in ``spec`` (``test``, ``prompt``, ``setup``, ``entry_point``,
    ``names``) against the solution process at the other end of ``to_fd``/``from_fd``."""

    def __init__(self, spec: dict[str, Any], hook: Hook, to_fd: int, from_fd: int):
        self.spec, self.hook, self.to_fd, self.from_fd = spec, hook, to_fd, from_fd
        self.calls = 0
        self.tainted = False   # the solution's values are in the tests: failures are its own
        self.hits: dict[int, int] = {}
        self.fatal: Stop | None = None
        self.ready = False
        self.src = {"<test>": spec["test"].splitlines(), "<prompt>": spec["prompt"].splitlines(),
                    "<setup>": spec["setup"].splitlines()}

    def stop(self, outcome: str, reason: str) -> Stop:
        s = Stop(outcome, reason)
        if self.fatal is None:
            self.fatal = s
        return s

    def hit(self, k: int) -> None:
        self.hits[k] = self.hits.get(k, 0) + 1

    def hello(self) -> None:
        """Wait for the solution process to have loaded the answer."""
        if self.ready:
            return
        try:
            msg = recv(self.from_fd)
        except (BadFrame, OSError) as e:
            raise self.stop("fail", f"the solution's process broke the protocol ({e})") from None
        if type(msg) is not dict:
            msg = None if msg is None else {}
        if msg is None:
            raise self.stop("fail", "the solution's process ended before it was ready")
        if "load_error" in msg:
            e = msg["load_error"]
            raise self.stop("fail", f"the solution does not run: {e['type']}: {e['message']}")
        if msg != {"ready": True}:
            raise self.stop("fail", "the solution's process broke the protocol")
        self.ready = True

    def ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.hello()
        try:
            send(self.to_fd, payload)
            reply = recv(self.from_fd)
        except BadFrame as e:
            raise self.stop("fail", f"the solution's process broke the protocol ({e})") from None
        except OSError:
            reply = None
        if reply is None:
            raise self.stop("fail", "the solution's process ended during a call")
        if type(reply) is not dict:
            raise self.stop("fail", "the solution's process broke the protocol")
        return reply

    def rebuild(self, d: dict[str, Any]) -> Exception:
        name, msg = str(d.get("type")), str(d.get("message"))
        if not d.get("exception"):
            raise self.stop("fail", f"the solution raised {name} ({msg[:200]})".replace(" ()", ""))
        return builtin_exception(name, d.get("module"), msg)

    def copy_back(self, old: Any, new: Any) -> None:
        try:
            new = decode(new)
        except BadFrame:
            raise self.stop("fail", "the solution's process broke the protocol") from None
        copy_into(old, new)

    def bind(self, ns: dict[str, Any], wanted: list[str]) -> None:
        """Give the tests the solution's names they use: proxies for its functions, its
        modules and plain values."""
        kinds = self.ask({"op": "kinds", "names": wanted})
        for n in wanted:
            k = kinds.get(n) if isinstance(kinds, dict) else None
            kind = k.get("kind") if isinstance(k, dict) else None
            if kind == "callable" or kind == "missing":
                ns[n] = Remote(self, n)       # a missing one fails when it is called
            elif kind == "module":     # e.g. math the answer imported and the test uses
                self.tainted = True
                try:
                    ns[n] = __import__(str(k.get("module")))
                except Exception:
                    raise self.stop("fail", f"the tests use {n}, which the solution imports "
                                    "but the tests cannot") from None
            elif kind == "value":
                self.tainted = True
                try:
                    ns[n] = decode(k.get("value"))
                except BadFrame:
                    raise self.stop("fail", "the solution's process broke the protocol") \
                        from None
            elif kind == "unsendable":
                raise self.stop("fail", f"the solution's {n} is a {k.get('type')}, not a "
                                "function or plain value")
            else:
                raise self.stop("fail", "the solution's process broke the protocol")

    def run_tests(self) -> int:
        """Run the tests; the number of assert statements in them."""
        ns = {"__name__": "__synth_test__", "__builtins__": builtins, "__synth_hit__": self.hit}
        counter = AssertCounter()
        tree = ast.fix_missing_locations(counter.visit(ast.parse(self.spec["test"], "<test>")))
        test_code = compile(tree, "<test>", "exec")
        sys.addaudithook(self.hook)
        for key in ("prompt", "setup"):
            if self.spec[key]:
                try:
                    exec(compile(self.spec[key], f"<{key}>", "exec"), ns)
                except BaseException as e:
                    raise self.stop("unverifiable", f"the reference's {key} does not run: "
                                    f"{type(e).__name__}: {e}"[:300]) from None
        self.hello()
        wanted = list(self.spec["names"])   # free in the tests by construction: the answer's
        if wanted:
            self.bind(ns, wanted)
        entry = self.spec["entry_point"]
        if entry:
            ns[entry] = Remote(self, entry)
        exec(test_code, ns)
        if entry:
            ns["check"](ns[entry])
        return counter.n

    def verdict(self) -> dict[str, Any]:
        """Run the tests and judge: ``pass`` only when they ran to the end, called the
        solution and (if they have any) ran an assert."""
        try:
            try:
                n_asserts = self.run_tests()
            except Stop:
                raise
            except AssertionError as e:
                msg = str(e).strip()
                raise self.stop("fail", f"AssertionError{where(e, self.src)}"
                                + (f" ({msg[:120]})" if msg else ""))
            except BaseException as e:
                if not self.tainted and self.calls == 0:
                    raise self.stop("unverifiable", "the tests failed before calling the "
                                    f"solution: {type(e).__name__}: {str(e)[:200]}"
                                    f"{where(e, self.src)}")
                raise self.stop("fail", f"{type(e).__name__}: {str(e)[:200]}"
                                f"{where(e, self.src)}")
            if self.fatal is not None:
                raise self.fatal
            stats = {"calls": self.calls, "asserts_run": sum(self.hits.values()),
                     "assert_statements": n_asserts, "assert_statements_run": len(self.hits)}
            if self.calls == 0:
                raise self.stop("unverifiable", "the tests never called the solution")
            if n_asserts and not self.hits:
                # the answer was called, and what it returned steered the tests past every
                # assert (e.g. [] to a loop of asserts): a way to be kept unchecked, so wrong
                raise self.stop("fail", f"none of the tests' {n_asserts} assert statements "
                                f"ran after {self.calls} call(s) of the solution")
            return {"verdict": "pass", "reason": "passed", **stats}
        except Stop as s:
            s = self.fatal or s
            return {"verdict": s.outcome, "reason": s.reason, "calls": self.calls,
                    "asserts_run": sum(self.hits.values())}
        except BaseException as e:
            return {"verdict": "unverifiable", "reason": f"judge error: {type(e).__name__}: {e}"}


def report(fd: int, obj: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(obj) + "\n").encode())


def undumpable() -> None:
    """Before the tests arrive: nobody of our uid may read our memory or fds."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)    # PR_SET_DUMPABLE 0
    except Exception:
        pass


def main(report_fd: int, to_fd: int, from_fd: int, hook: Hook) -> None:
    """Say ready on ``report_fd``, read the tests from stdin, run them, report the verdict
    there. Never returns."""
    undumpable()
    report(report_fd, {"ready": True})
    spec = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    judge = Judge(spec, hook, to_fd, from_fd)
    verdict = judge.verdict()
    try:
        report(report_fd, verdict)
    except BaseException as e:
        report(report_fd, {"verdict": "unverifiable",
                           "reason": f"judge error: {type(e).__name__}: {e}"})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
