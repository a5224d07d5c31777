"""Plain data across the process boundary between the judge and the solution process:
JSON with tags for what JSON lacks, in length-prefixed frames, decoded strictly.

Plain data is None, bool, int, float, complex, str, bytes, bytearray, list, tuple, dict,
set and frozenset, of exactly those types: nothing else crosses, so no object with an
``__eq__`` of its own reaches the tests.
"""
from __future__ import annotations

import json
import os
from typing import Any

MAX_FRAME = 4 * 1024 * 1024
_MAX_DEPTH = 100


class Unencodable(Exception):
    """A value that is not plain data (the message names its type)."""


class BadFrame(Exception):
    """What arrived is not a frame of plain data."""


def encode(v: Any, depth: int = 0) -> Any:
    """``v`` as JSON-able data; :class:`Unencodable` unless it is plain data."""
    if depth > _MAX_DEPTH:
        raise Unencodable("a value nested deeper than 100")
    t = type(v)
    if v is None or t is bool or t is str or t is float:
        return v
    if t is int:
        return v if v.bit_length() < 12000 else {"$": "int", "v": hex(v)}
    if t is list:
        return [encode(x, depth + 1) for x in v]
    if t is tuple:
        return {"$": "tuple", "v": [encode(x, depth + 1) for x in v]}
    if t is dict:
        return {"$": "dict", "v": [[encode(k, depth + 1), encode(x, depth + 1)]
                                   for k, x in v.items()]}
    if t is set or t is frozenset:
        return {"$": t.__name__, "v": [encode(x, depth + 1) for x in v]}
    if t is bytes or t is bytearray:
        return {"$": t.__name__, "v": bytes(v).hex()}
    if t is complex:
        return {"$": "complex", "v": [v.real, v.imag]}
    raise Unencodable(f"{t.__module__}.{t.__qualname__}")


def decode(j: Any, depth: int = 0) -> Any:
    """The plain value :func:`encode` made ``j`` from; :class:`BadFrame` for anything else."""
    if depth > _MAX_DEPTH:
        raise BadFrame("nested deeper than 100")
    t = type(j)
    if j is None or t is bool or t is int or t is float or t is str:
        return j
    if t is list:
        return [decode(x, depth + 1) for x in j]
    if t is not dict or set(j) - {"$", "v"}:
        raise BadFrame("not a plain value")
    tag, v = j.get("$"), j.get("v")
    try:
        if tag == "tuple":
            return tuple(decode(x, depth + 1) for x in v)
        if tag == "dict":
            return {decode(k, depth + 1): decode(x, depth + 1) for k, x in v}
        if tag == "set":
            return {decode(x, depth + 1) for x in v}
        if tag == "frozenset":
            return frozenset(decode(x, depth + 1) for x in v)
        if tag == "bytes":
            return bytes.fromhex(v)
        if tag == "bytearray":
            return bytearray.fromhex(v)
        if tag == "complex":
            re_, im = v
            if type(re_) is not float or type(im) is not float:
                raise BadFrame("bad complex")
            return complex(re_, im)
        if tag == "int":
            return int(v, 16)
    except (TypeError, ValueError) as e:
        raise BadFrame(str(e)) from None
    raise BadFrame(f"unknown tag {tag!r}")


def send(fd: int, obj: Any) -> None:
    """Write ``obj`` (JSON-able) to ``fd`` as one frame: 4 bytes of length, then JSON."""
    data = json.dumps(obj, ensure_ascii=True).encode()
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(fd, data):]


def read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``, or None if it ends first."""
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def recv(fd: int) -> Any:
    """The next frame's JSON from ``fd``; None at its end; :class:`BadFrame` past
    :data:`MAX_FRAME` or for what is not JSON."""
    head = read_exact(fd, 4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > MAX_FRAME:
        raise BadFrame(f"a message of {n} bytes")
    body = read_exact(fd, n)
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise BadFrame(f"not JSON: {e}") from None
