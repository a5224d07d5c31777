"""The child's command line: ``ROLE network=0|1 procs=0|1 [NAME=FD ...]``.

``network`` and ``procs`` say what the audit hook allows (the sandbox's limits); the
file descriptors are the pipes a role talks on. Nothing secret travels here: the tests
reach the judge on its stdin, never its argv.
"""
from __future__ import annotations

import builtins
import sys

from . import audit

ROLES = ("run", "serve", "judge", "probe")


def parse(argv: list[str]) -> tuple[str, bool, bool, dict[str, int]]:
    """(role, network, procs, {name: fd}) from the command line; ValueError if malformed."""
    if not argv or argv[0] not in ROLES:
        raise ValueError(f"usage: ROLE network=0|1 procs=0|1 [NAME=FD ...], ROLE one of "
                         f"{', '.join(ROLES)}; got {argv!r}")
    opts: dict[str, int] = {}
    for a in argv[1:]:
        key, eq, value = a.partition("=")
        if not eq or not key or key in opts:
            raise ValueError(f"not NAME=NUMBER, or given twice: {a!r}")
        opts[key] = int(value)
    flags = opts.pop("network", None), opts.pop("procs", None)
    if any(f not in (0, 1) for f in flags):
        raise ValueError("network=0|1 and procs=0|1 are required")
    return argv[0], flags[0] == 1, flags[1] == 1, opts


def run_solution(hook: audit.Hook) -> None:
    """``run_python``'s program: ``solution.py`` as ``__main__``, under the hook."""
    with open("solution.py", encoding="utf-8") as f:
        src = f.read()
    code = compile(src, "solution.py", "exec")
    sys.addaudithook(hook)
    sys.argv = ["solution.py"]
    exec(code, {"__name__": "__main__", "__builtins__": builtins, "__file__": "solution.py"})


def seal() -> None:
    """In the sandbox, no module of this package can be imported any more: code the child
    did not write could otherwise name one (a solution's ``add`` reported as module
    ``synth_sandbox_child.x``) and have the judge import a file planted in its own folder
    (writable where the sandbox has no uid of its own), or re-run the launcher."""
    if __package__ == "synth_sandbox_child":  # the copy the sandbox runs, not synth's own
        sys.modules[__package__].__path__ = []


def main(argv: list[str]) -> int:
    try:
        role, network, procs, fds = parse(argv)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    # made first, in the working directory the sandbox gave, which it guards
    hook = audit.make_hook(network, procs)
    # each role imports only what it needs, and all of it before any code it did not write
    if role == "serve":
        from . import serve
    elif role == "judge":
        from . import judge
    elif role == "probe":
        from . import probe
    seal()
    if role == "run":
        run_solution(hook)
    elif role == "serve":
        serve.main(fds["read"], fds["write"], hook)
    elif role == "judge":
        judge.main(fds["report"], fds["to"], fds["from"], hook)
    else:
        sys.addaudithook(hook)
        probe.main()
    return 0
