"""The parent's side of a sandboxed run: start the child, feed it, read it, stop it.

A :class:`Child` is one interpreter, ``python -I -B _boot ROLE ...``, in its own session
and throwaway directory, with a fixed minimal environment and the kernel layers of
:mod:`synth.curate.sandbox.kernel` applied between fork and exec. What it runs is the
package :mod:`synth.curate.sandbox.child`, copied into that directory (inside the
private root, synth itself is not there to import).
"""
from __future__ import annotations

import functools
import importlib.resources
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Iterable

from synth.curate.sandbox import kernel
from synth.curate.sandbox.child.audit import (
    MARK_FS,
    MARK_NET,
    MARK_PROC,
    MARK_PROCFS,
    MARK_SIG,
)
from synth.curate.sandbox.limits import SandboxLimits, SandboxResult

__all__ = ["Child", "run_child", "run_python", "run_many", "failure_reason",
           "refusal_reason", "sandbox_error"]

# The child's layout in its directory: the folder the interpreter is given (its
# __main__.py is the launcher) and, inside it, the package under the name the launcher
# imports (synth/curate/sandbox/child/__main__.py).
LAUNCHER = "_boot"
CHILD_PACKAGE = "synth_sandbox_child"


@functools.lru_cache(maxsize=1)
def child_sources() -> tuple[tuple[str, bytes], ...]:
    """(file name, contents) of each module of the child package, read once."""
    pkg = importlib.resources.files("synth.curate.sandbox.child")
    return tuple(sorted((p.name, p.read_bytes()) for p in pkg.iterdir()
                        if p.name.endswith(".py") and p.is_file()))


def write_child(workdir: str) -> list[str]:
    """Put the child package into ``workdir``; the paths made."""
    boot = os.path.join(workdir, LAUNCHER)
    pkg = os.path.join(boot, CHILD_PACKAGE)
    os.mkdir(boot, 0o755)
    os.mkdir(pkg, 0o755)
    made = [boot, pkg]
    for name, data in child_sources():
        # the launcher goes beside the package only: inside it, it could be imported again
        targets = [os.path.join(boot if name == "__main__.py" else pkg, name)]
        for t in targets:
            with open(t, "wb") as f:
                f.write(data)
            made.append(t)
    return made


class _Reader(threading.Thread):
    """Drains one pipe, keeping at most ``cap`` bytes; sets ``over`` when it overflows."""

    def __init__(self, pipe: IO[bytes], cap: int, over: threading.Event):
        super().__init__(daemon=True)
        self.pipe, self.cap, self.over = pipe, cap, over
        self.buf = bytearray()
        self.truncated = False

    def run(self):
        try:
            while True:
                chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else \
                    self.pipe.read(65536)
                if not chunk:
                    break
                room = self.cap - len(self.buf)
                if len(chunk) > room:
                    self.buf += chunk[:max(room, 0)]
                    if not self.truncated:
                        self.truncated = True
                        self.over.set()
                else:
                    self.buf += chunk
        except (OSError, ValueError):
            pass
        finally:
            try:
                self.pipe.close()
            except OSError:
                pass


def _sandbox_env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8"}


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


class Child:
    """One sandboxed interpreter in the ``role`` of the child package (``run``, ``serve``,
    ``judge``, ``probe``), in its own throwaway directory with ``files`` written beside it.
    ``fds`` are pipe ends it inherits, named on its command line (``name=fd``)."""

    def __init__(self, role: str, limits: SandboxLimits, *, over: threading.Event,
                 files: dict[str, str] | None = None, fds: dict[str, int] | None = None):
        self.limits, self.over = limits, over
        self.workdir = os.path.realpath(tempfile.mkdtemp(prefix="synth-sandbox-"))
        mode = kernel.sandbox_mode()[0]
        self.uid = kernel.take_uid() if mode == "root" else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.start = time.monotonic()
        fds = fds or {}
        try:
            made = write_child(self.workdir)
            for name, text in (files or {}).items():
                made.append(os.path.join(self.workdir, name))
                with open(made[-1], "w", encoding="utf-8") as f:
                    f.write(text)
            if self.uid is not None:
                for p in [self.workdir] + made:
                    os.chown(p, self.uid, self.uid)
            os.chmod(self.workdir, 0o700)
            plan = None
            if mode != "none":
                os.mkdir(os.path.join(self.workdir, ".root"), 0o755)
                plan = kernel.root_plan(kernel.mount_table())
            # the audit hook's switches and the pipes by name; the rest is in the files
            argv = [sys.executable, "-I", "-B", LAUNCHER, role,
                    f"network={int(bool(limits.network))}", f"procs={int(limits.max_procs > 0)}",
                    *(f"{name}={fd}" for name, fd in fds.items())]
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir,
                env=_sandbox_env(self.workdir), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
                pass_fds=tuple(fds.values()), start_new_session=True,
                preexec_fn=kernel.make_preexec(limits, self.workdir, mode=mode, uid=self.uid,
                                               plan=plan))
        except BaseException:
            self.cleanup()
            raise
        self.readers = [_Reader(self.proc.stdout, limits.output_bytes, over),
                        _Reader(self.proc.stderr, limits.output_bytes, over)]
        for r in self.readers:
            r.start()

    def feed(self, data: bytes) -> threading.Thread:
        """Write ``data`` to the child's stdin and close it, from a thread (it may block)."""
        def run():
            try:
                if data:
                    self.proc.stdin.write(data)
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def ended_by_itself(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def wait_ended(self, timeout: float) -> bool:
        """Whether the process ended by itself within ``timeout`` seconds."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, *, timed_out: bool, output_limit: bool) -> SandboxResult:
        _killpg(self.proc.pid)
        self.proc.wait()
        stragglers = kernel.kill_uid(self.uid) if self.uid is not None else 0
        for r in self.readers:
            r.join(timeout=2.0)
        output_limit = output_limit or any(r.truncated for r in self.readers)
        rc = self.proc.returncode
        exit_code = rc if rc >= 0 else None
        sig = -rc if rc < 0 else None
        stdout = bytes(self.readers[0].buf).decode("utf-8", "replace")
        stderr = bytes(self.readers[1].buf).decode("utf-8", "replace")
        reason = failure_reason(exit_code, sig, timed_out, output_limit, stderr)
        return SandboxResult(ok=reason is None, exit_code=exit_code, signal=sig,
                             timed_out=timed_out, output_truncated=output_limit,
                             stdout=stdout, stderr=stderr, reason=reason,
                             wall_s=time.monotonic() - self.start,
                             stragglers_killed=stragglers)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _killpg(self.proc.pid)
            self.proc.wait()
        if self.uid is not None:
            kernel.kill_uid(self.uid)
            kernel.release_uid(self.uid)
            self.uid = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def sandbox_error(e: BaseException, start: float) -> SandboxResult:
    """The result of a run the sandbox itself could not start."""
    return SandboxResult(ok=False, exit_code=None, signal=None, timed_out=False,
                         output_truncated=False, stdout="", stderr=str(e),
                         reason=f"sandbox error: {e}", wall_s=time.monotonic() - start)


def run_child(role: str, limits: SandboxLimits, *, files: dict[str, str] | None = None,
              stdin: bytes = b"") -> SandboxResult:
    """Run one child in ``role`` to its end, the wall clock or the output cap."""
    start = time.monotonic()
    over = threading.Event()
    try:
        child = Child(role, limits, over=over, files=files)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        return sandbox_error(e, start)
    try:
        feeder = child.feed(stdin)
        timed_out = output_limit = False
        deadline = start + limits.wall_s
        while child.proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if over.wait(min(0.05, left)):
                output_limit = True
                break
        result = child.stop(timed_out=timed_out, output_limit=output_limit)
        feeder.join(timeout=1.0)
        return result
    finally:
        child.cleanup()


def run_python(code: str, *, limits: SandboxLimits = SandboxLimits(),
               stdin: str = "") -> SandboxResult:
    """Run ``code`` in a contained child interpreter; never raises for what the code does."""
    return run_child("run", limits, files={"solution.py": code}, stdin=stdin.encode("utf-8"))


def failure_reason(exit_code: int | None, sig: int | None, timed_out: bool,
                   output_limit: bool, stderr: str) -> str | None:
    """Why a run failed, in a few words; None when it did not."""
    if timed_out:
        return "timeout"
    if output_limit:
        return "output_limit"
    marked = refusal_reason(stderr)
    if marked:
        return marked
    if sig is not None:
        if sig == signal.SIGXCPU:
            return "cpu time limit (killed by SIGXCPU)"
        if sig == signal.SIGXFSZ:
            return "file size limit (killed by SIGXFSZ)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        if sig == signal.SIGKILL and "MemoryError" in stderr:
            return "memory"
        return f"killed by {name}"
    if exit_code:
        if re.search(r"^MemoryError\b", stderr, re.M):
            return "memory"
        if "[Errno 27] File too large" in stderr:
            return "file size limit"
        return f"exit {exit_code}"
    return None


def refusal_reason(stderr: str) -> str | None:
    """A containment refusal the sandbox itself wrote to stderr, if any."""
    if MARK_NET in stderr or "Network is unreachable" in stderr:
        return "network attempt blocked"
    if MARK_PROC in stderr or ("BlockingIOError" in stderr and "fork" in stderr):
        return "process creation blocked"
    if MARK_FS in stderr:
        return "write outside the working directory blocked"
    if MARK_SIG in stderr:
        return "signal to another process blocked"
    if MARK_PROCFS in stderr:
        return "reading another process blocked"
    return None


def run_many(codes: Iterable[str], *, limits: SandboxLimits = SandboxLimits(),
             workers: int = 2) -> list[SandboxResult]:
    """Run several programs, each in its own sandbox, ``workers`` at a time, in order."""
    codes = list(codes)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda c: run_python(c, limits=limits), codes))
