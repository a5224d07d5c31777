"""The solution process of ``verify_code`` (:mod:`synth.curate.verify_code`): runs the
model's module, then answers the judge's calls with plain data.

Nothing here is trusted; whatever this process does, the judge only ever receives plain
data from it (:mod:`.wire`).
"""
from __future__ import annotations

import builtins
import os
import sys
import traceback
from typing import Any

from .audit import Hook
from .wire import Unencodable, decode, encode, recv, send

MUTABLE = (list, dict, set, bytearray)   # arguments whose changes go back to the tests
_MAX_DEPTH = 100
_TRACEBACKS = 3   # enough to see why; tests that expect exceptions stay quiet


def plain(v: Any, depth: int = 0) -> Any:
    """A return value as plain data: subclasses of plain types as their plain value
    (an int subclass whose __eq__ always says True crosses as the int it holds), numpy
    scalars as Python scalars; anything else cannot cross."""
    if depth > _MAX_DEPTH:
        raise Unencodable("a value nested deeper than 100")
    t = type(v)
    if v is None or t in (bool, int, float, str, bytes, bytearray, complex):
        return v
    if t in (list, tuple):
        return t(plain(x, depth + 1) for x in v)
    if t in (set, frozenset):
        return t(plain(x, depth + 1) for x in v)
    if t is dict:
        return {plain(k, depth + 1): plain(x, depth + 1) for k, x in v.items()}
    if getattr(t, "__module__", "") == "numpy" and getattr(v, "ndim", None) == 0:
        return plain(v.item(), depth + 1)
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
                return plain(dict(dict.items(v)), depth + 1)
            return plain(base(v), depth + 1)
    raise Unencodable(f"{t.__module__}.{t.__qualname__}")


def describe(e: BaseException) -> dict[str, Any]:
    """An exception as plain data, for the judge to rebuild."""
    try:
        msg = str(e)
    except BaseException:
        msg = "?"
    t = type(e)
    return {"type": t.__name__, "module": t.__module__, "message": msg[:500],
            "exception": isinstance(e, Exception)}


def kinds(ns: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """What each name the tests use is in the solution's module: a callable, a module,
    a plain value (sent along), something that cannot cross, or missing."""
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        if n not in ns:
            out[n] = {"kind": "missing"}
        elif type(ns[n]) is type(sys):
            out[n] = {"kind": "module", "module": str(ns[n].__name__)}
        elif callable(ns[n]):
            out[n] = {"kind": "callable"}
        else:
            try:
                out[n] = {"kind": "value", "value": encode(plain(ns[n]))}
            except Unencodable as e:
                out[n] = {"kind": "unsendable", "type": str(e)}
    return out


def returned(ret: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The reply to a call that returned ``ret``: the value and the mutable arguments as
    they are now; ``bad_return`` when any of them is not plain data."""
    try:
        return {"ret": encode(plain(ret)),
                "args": [encode(plain(a)) if type(a) in MUTABLE else None for a in args],
                "kwargs": {k: encode(plain(v)) for k, v in kwargs.items()
                           if type(v) in MUTABLE}}
    except Unencodable as e:
        return {"bad_return": str(e)}
    except BaseException as e:
        return {"bad_return": f"a value whose conversion raised {type(e).__name__}"}


def answer(ns: dict[str, Any], read_fd: int, write_fd: int) -> None:
    """Answer each request read from ``read_fd`` with the functions in ``ns``, until the
    judge closes it."""
    raised = 0
    while True:
        msg = recv(read_fd)
        if msg is None:
            return
        name = msg.get("name")
        if msg.get("op") == "kinds":
            send(write_fd, kinds(ns, msg["names"]))
            continue
        fn = ns.get(name)
        if fn is None:
            send(write_fd, {"missing": name})
            continue
        args = [decode(a) for a in msg["args"]]
        kwargs = {k: decode(v) for k, v in msg["kwargs"].items()}
        try:
            ret = fn(*args, **kwargs)
        except BaseException as e:
            raised += 1
            if raised <= _TRACEBACKS:
                traceback.print_exc()
            send(write_fd, {"raise": describe(e)})
            continue
        send(write_fd, returned(ret, args, kwargs))


def main(read_fd: int, write_fd: int, hook: Hook) -> None:
    """Load ``solution.py`` under ``hook``, say so on ``write_fd``, then answer calls
    until the judge is done. Never returns."""
    with open("solution.py", encoding="utf-8") as f:
        src = f.read()
    ns = {"__name__": "solution", "__builtins__": builtins, "__file__": "solution.py"}
    sys.argv = ["solution.py"]   # the module sees one argument, as a script would
    try:
        code = compile(src, "solution.py", "exec")
        sys.addaudithook(hook)
        exec(code, ns)
    except BaseException as e:
        traceback.print_exc()
        send(write_fd, {"load_error": describe(e)})
        sys.stderr.flush()
        os._exit(1)
    send(write_fd, {"ready": True})
    answer(ns, read_fd, write_fd)
    os._exit(0)
