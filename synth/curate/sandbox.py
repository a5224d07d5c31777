"""Run model-written Python in a contained child process, and verify code answers.

Layers of containment (each one is applied when the kernel allows it; see
:func:`sandbox_capabilities` for what is active on this machine):

* a separate process (``python -I``: isolated mode, no user site, no ``PYTHON*``
  variables, the script's directory is not put on ``sys.path``) in its own
  session / process group, so the whole group can be killed;
* a fixed, minimal environment -- nothing of the parent's (no API keys);
* a throwaway working directory, removed afterwards;
* resource limits: CPU seconds (SIGXCPU), address space (memory), file size
  (SIGXFSZ), open files, no core dumps, number of processes;
* when running as root: a fresh, otherwise unused uid per run (so
  ``RLIMIT_NPROC`` -- which root ignores -- stops a fork bomb, and stragglers of
  that uid can be found and killed), a private network namespace with no
  interfaces up (no network at all, loopback included), and a private mount
  namespace where every mount is read-only except the working directory;
* inside the interpreter, before the model's code runs, an audit hook that
  refuses sockets, process creation and writes outside the working directory.
  On its own this is bypassable (ctypes), it is the fallback when the kernel
  features above are unavailable (not root, no namespaces) and a second line
  otherwise;
* in the parent: a wall-clock timeout and an output cap; output is read
  concurrently and only ``output_bytes`` of it are kept, the group is killed as
  soon as the cap is passed.

Site-packages stay importable (no ``-S``) so tests that import e.g. numpy work;
the interpreter runs with ``-I`` so nothing from the environment or the
working directory changes what is imported.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Literal

__all__ = [
    "SandboxLimits", "SandboxResult", "Verdict", "run_python", "run_many",
    "check_solution", "extract_code", "sandbox_capabilities",
]


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    output_bytes: int = 64_000       # per stream (stdout, stderr)
    file_bytes: int = 1_000_000
    max_procs: int = 0               # processes beyond the sandboxed interpreter itself
    network: bool = False
    open_files: int = 64


@dataclass
class SandboxResult:
    ok: bool
    exit_code: int | None
    signal: int | None
    timed_out: bool
    output_truncated: bool
    stdout: str
    stderr: str
    reason: str | None
    wall_s: float
    stragglers_killed: int = 0       # processes of the sandbox uid still alive after the run


@dataclass
class Verdict:
    outcome: Literal["correct", "wrong", "unverifiable"]
    reason: str
    detail: SandboxResult | None = None


# --------------------------------------------------------------------------- kernel bits

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_NOATIME, _MS_NODIRATIME, _MS_BIND = 32, 1024, 2048, 4096
_MS_REC, _MS_PRIVATE, _MS_RELATIME, _MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_MS_MOVE = 8192
_MOUNT_FLAG_NAMES = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
                     "noatime": _MS_NOATIME, "nodiratime": _MS_NODIRATIME,
                     "relatime": _MS_RELATIME, "strictatime": _MS_STRICTATIME}

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.unshare.argtypes = [ctypes.c_int]
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_void_p]
    except (OSError, AttributeError):
        _libc = None

_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_UID_LOW, _UID_HIGH = 300_000, 2_000_000
_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()

_MARK_NET = "SANDBOX: network attempt blocked"
_MARK_PROC = "SANDBOX: process creation blocked"
_MARK_FS = "SANDBOX: write outside the working directory blocked"


def _mount_table() -> list[tuple[bytes, int]]:
    """(mount point, flags to keep) for every mount, parents before children."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                mp = parts[4].encode().decode("unicode_escape").encode("latin-1")
                flags = 0
                for opt in parts[5].split(","):
                    flags |= _MOUNT_FLAG_NAMES.get(opt, 0)
                out.append((mp, flags))
    except (OSError, IndexError):
        return []
    return out


def _interpreter_dirs() -> list[str]:
    dirs = {os.path.realpath(d) for d in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                          sys.base_exec_prefix)}
    dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
    dirs.add(os.path.dirname(os.path.abspath(sys.executable)))
    # drop those inside another
    return sorted(d for d in dirs if not any(
        o != d and d.startswith(o.rstrip("/") + "/") for o in dirs))


def _closed_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that others may not enter, if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        d = "/" + "/".join(parts[:i])
        try:
            if not os.stat(d).st_mode & 0o001:
                return d
        except OSError:
            return None
    return None


def _reveal_plan(workdir: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(closed dir, [(staging dir, interpreter dir)])] and create the staging dirs."""
    plan: dict[str, list[tuple[str, str]]] = {}
    for n, d in enumerate(_interpreter_dirs()):
        h = _closed_ancestor(d)
        if h is not None and not workdir.startswith(h + "/"):
            st = os.path.join(workdir, f".stage{n}")
            os.mkdir(st, 0o700)
            plan.setdefault(h, []).append((st, d))
    return sorted(plan.items())


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def _take_uid() -> int:
    with _uids_lock:
        for _ in range(100):
            uid = random.randrange(_UID_LOW, _UID_HIGH)
            if uid in _uids_in_use or _pids_of_uid(uid):
                continue
            _uids_in_use.add(uid)
            return uid
    raise RuntimeError("no free sandbox uid")


def _release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


def _kill_uid(uid: int) -> int:
    """SIGKILL every process owned by ``uid``; returns how many were found."""
    seen: set[int] = set()
    for _ in range(50):
        pids = _pids_of_uid(uid)
        if not pids:
            break
        for pid in pids:
            seen.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return len(seen)


def _make_preexec(limits: SandboxLimits, workdir: str, uid: int | None, mounts,
                  reveal=None):
    """Build the function run in the child between fork and exec.

    Everything it needs is computed here, in the parent; the function itself
    only makes system calls (it may run while other threads of the parent hold
    locks, so it must not allocate much or take locks).
    """
    lib = _libc
    wd = workdir.encode()
    mem = limits.memory_mb * 1024 * 1024
    rlims = [
        (resource.RLIMIT_CPU, (max(1, int(limits.cpu_s)), max(1, int(limits.cpu_s)) + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    nproc = 1 + max(0, limits.max_procs)
    nproc_shared = None
    if uid is None and not _IS_ROOT and hasattr(os, "getuid"):
        try:
            nproc_shared = len(_pids_of_uid(os.getuid())) + nproc
        except OSError:
            pass

    hidden = [(h.encode(), [(st.encode(), pp.encode()) for st, pp in pairs])
              for h, pairs in (reveal or [])]

    def enter_namespaces() -> bool:
        """New network + mount namespaces, read-only but for the workdir.

        Returns whether the interpreter stays reachable for an unprivileged uid.
        """
        if lib.unshare(_CLONE_NEWNS) != 0:
            if not limits.network:
                lib.unshare(_CLONE_NEWNET)
            return not hidden
        if not limits.network:
            lib.unshare(_CLONE_NEWNET)
        # from here on every mount change stays inside this child's namespace
        if lib.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            return not hidden
        reachable = True
        extra_ro = []
        # directories the sandbox uid cannot enter but that hold the
        # interpreter (e.g. /root/.pyenv): cover them with an empty tmpfs
        # (hiding everything else in them) and bind back only the
        # interpreter's own directories
        for h, pairs in hidden:
            staged = [lib.mount(pp, st, None, _MS_BIND | _MS_REC, None) == 0
                      for st, pp in pairs]
            if not all(staged) or lib.mount(b"tmpfs", h, b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                            b"mode=755") != 0:
                reachable = False
                continue
            extra_ro.append((h, False))
            for st, pp in pairs:
                try:
                    os.makedirs(pp, exist_ok=True)
                except OSError:
                    pass
                if lib.mount(st, pp, None, _MS_MOVE, None) == 0:
                    extra_ro.append((pp, True))
                else:
                    reachable = False
        # keep the working directory writable: make it a mount of its own
        if lib.mount(wd, wd, None, _MS_BIND, None) == 0:
            for mp, keep in mounts:
                if mp != wd:
                    lib.mount(None, mp, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None)
            for mp, is_bind in extra_ro:
                lib.mount(None, mp, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
                          | (_MS_BIND if is_bind else 0), None)
        return reachable

    def preexec():
        drop = uid is not None
        if uid is not None and lib is not None:
            drop = enter_namespaces()
        try:  # re-enter the working directory: through the new mount, if there is one
            os.chdir(wd)
        except OSError:
            pass
        for which, value in rlims:
            try:
                resource.setrlimit(which, value)
            except (ValueError, OSError):
                pass
        if drop:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            except OSError:
                drop = False
        if drop:
            # after the uid change: the limit counts this uid's processes only,
            # and this run has the uid to itself
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        elif nproc_shared is not None:
            try:  # counts every process of our (non-root) uid; root ignores it
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc_shared, nproc_shared))
            except (ValueError, OSError):
                pass
    return preexec


# The interpreter runs this file; it installs the audit hook, then runs the
# model's code (solution.py) as __main__.
_BOOT = r'''
import os, sys
_WD = os.path.realpath(os.getcwd())
_NET = {net!r}
_PROCS = {procs!r}
_SOCKET_EVENTS = {{"socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
                   "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"}}
_PROC_EVENTS = {{"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                 "os.exec", "subprocess.Popen", "os.startfile", "pty.spawn"}}
_PATH_EVENTS = {{"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                 "os.truncate", "os.utime", "os.chflags", "os.lchflags", "os.mkfifo",
                 "os.mknod", "shutil.rmtree"}}
_TWO_PATH_EVENTS = {{"os.rename", "os.link", "os.symlink", "shutil.move",
                     "shutil.copyfile", "shutil.copytree"}}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_realpath = os.path.realpath
_sep = os.sep

def _inside(p):
    if isinstance(p, int):
        return True
    try:
        p = os.fsdecode(p)
    except Exception:
        return False
    r = _realpath(p)
    return r == _WD or r.startswith(_WD + _sep) or r == "/dev/null"

def _hook(event, args):
    if not _NET and event in _SOCKET_EVENTS:
        raise PermissionError({mnet!r})
    if not _PROCS and event in _PROC_EVENTS:
        raise PermissionError({mproc!r})
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not _inside(path):
            raise PermissionError({mfs!r})
    elif event in _PATH_EVENTS:
        if args and not _inside(args[0]):
            raise PermissionError({mfs!r})
    elif event in _TWO_PATH_EVENTS:
        for a in args[:2]:
            if not _inside(a):
                raise PermissionError({mfs!r})

with open("solution.py", encoding="utf-8") as _f:
    _src = _f.read()
_code = compile(_src, "solution.py", "exec")
sys.addaudithook(_hook)
sys.argv = ["solution.py"]
del _f, _src
exec(_code, {{"__name__": "__main__", "__builtins__": __builtins__, "__file__": "solution.py"}})
'''


class _Reader(threading.Thread):
    """Drains one pipe, keeping at most ``cap`` bytes; sets ``over`` when it overflows."""

    def __init__(self, pipe, cap: int, over: threading.Event):
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


def run_python(code: str, *, limits: SandboxLimits = SandboxLimits(),
               stdin: str = "") -> SandboxResult:
    """Run ``code`` in a contained child interpreter; never raises for what the code does."""
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="synth-sandbox-"))
    uid = _take_uid() if (_IS_ROOT and _libc is not None) else None
    start = time.monotonic()
    stragglers = 0
    try:
        with open(os.path.join(workdir, "solution.py"), "w", encoding="utf-8") as f:
            f.write(code)
        with open(os.path.join(workdir, "_boot.py"), "w", encoding="utf-8") as f:
            f.write(_BOOT.format(net=limits.network, procs=limits.max_procs > 0,
                                 mnet=_MARK_NET, mproc=_MARK_PROC, mfs=_MARK_FS))
        if uid is not None:
            for p in (workdir, os.path.join(workdir, "solution.py"),
                      os.path.join(workdir, "_boot.py")):
                os.chown(p, uid, uid)
            os.chmod(workdir, 0o700)
        mounts = _mount_table() if uid is not None else []
        reveal = _reveal_plan(workdir) if uid is not None else []
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "_boot.py"], cwd=workdir, env=_sandbox_env(workdir),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True, start_new_session=True,
            preexec_fn=_make_preexec(limits, workdir, uid, mounts, reveal))
        over = threading.Event()
        readers = [_Reader(proc.stdout, limits.output_bytes, over),
                   _Reader(proc.stderr, limits.output_bytes, over)]
        for r in readers:
            r.start()

        def feed():
            try:
                if stdin:
                    proc.stdin.write(stdin.encode("utf-8"))
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        timed_out = output_limit = False
        deadline = start + limits.wall_s
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if over.wait(min(0.05, left)):
                output_limit = True
                break
        _killpg(proc.pid)
        proc.wait()
        if uid is not None:
            stragglers = _kill_uid(uid)
        for r in readers:
            r.join(timeout=2.0)
        feeder.join(timeout=1.0)
        elapsed = time.monotonic() - start
        output_limit = output_limit or any(r.truncated for r in readers)

        rc = proc.returncode
        exit_code = rc if rc >= 0 else None
        sig = -rc if rc < 0 else None
        stdout = bytes(readers[0].buf).decode("utf-8", "replace")
        stderr = bytes(readers[1].buf).decode("utf-8", "replace")
        reason = _reason(exit_code, sig, timed_out, output_limit, stderr)
        return SandboxResult(ok=reason is None, exit_code=exit_code, signal=sig,
                             timed_out=timed_out, output_truncated=output_limit,
                             stdout=stdout, stderr=stderr, reason=reason, wall_s=elapsed,
                             stragglers_killed=stragglers)
    except (OSError, subprocess.SubprocessError) as e:  # could not even start the child
        return SandboxResult(ok=False, exit_code=None, signal=None, timed_out=False,
                             output_truncated=False, stdout="", stderr=str(e),
                             reason=f"sandbox error: {e}",
                             wall_s=time.monotonic() - start)
    finally:
        if uid is not None:
            _kill_uid(uid)
            _release_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)


def _reason(exit_code, sig, timed_out, output_limit, stderr) -> str | None:
    if timed_out:
        return "timeout"
    if output_limit:
        return "output_limit"
    if _MARK_NET in stderr or "Network is unreachable" in stderr:
        return "network attempt blocked"
    if _MARK_PROC in stderr or ("BlockingIOError" in stderr and "fork" in stderr):
        return "process creation blocked"
    if _MARK_FS in stderr:
        return "write outside the working directory blocked"
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


def run_many(codes: Iterable[str], *, limits: SandboxLimits = SandboxLimits(),
             workers: int = 2) -> list[SandboxResult]:
    """Run several programs, each in its own sandbox, ``workers`` at a time, in order."""
    codes = list(codes)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda c: run_python(c, limits=limits), codes))


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


def _parse_reference(reference) -> dict | None:
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except ValueError:
            return None
    if not isinstance(reference, dict):
        return None
    test, entry = reference.get("test"), reference.get("entry_point")
    if not isinstance(test, str) or not isinstance(entry, str):
        return None
    if not entry.isidentifier() or not re.search(r"^def check\s*\(", test, re.M):
        return None
    prompt = reference.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return None
    return {"test": test, "entry_point": entry, "prompt": prompt or ""}


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def _assemble(code: str, ref: dict) -> str:
    entry, prompt = ref["entry_point"], ref["prompt"]
    if _defines(code, entry) or not prompt:
        program = code
        if prompt and not _defines(code, entry):
            program = prompt + code
        elif prompt:
            # a full solution: keep the prompt's imports/helpers around it
            program = _prompt_preamble(prompt, entry) + "\n" + code
    else:
        program = prompt + code  # a completion of the function body
    return f"{program}\n\n{ref['test']}\n\ncheck({entry})\n"


def _prompt_preamble(prompt: str, entry: str) -> str:
    """The prompt's lines before the entry point's definition (imports, helpers)."""
    m = re.search(rf"^def\s+{re.escape(entry)}\s*\(", prompt, re.M)
    return prompt[:m.start()] if m else ""


def check_solution(response: str, reference, *,
                   limits: SandboxLimits = SandboxLimits()) -> Verdict:
    """HumanEval-style verification of ``response`` against ``reference``."""
    ref = _parse_reference(reference)
    if ref is None:
        return Verdict("unverifiable", "reference missing or malformed (needs test with "
                       "check(candidate) and entry_point)", None)
    code = extract_code(response)
    if code is None:
        return Verdict("unverifiable", "no code found in the response", None)
    result = run_python(_assemble(code, ref), limits=limits)
    if result.ok:
        return Verdict("correct", "passed check()", result)
    reason = result.reason or "failed"
    if result.reason and result.reason.startswith("exit"):
        last = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        if last:
            reason = f"{reason}: {last[-1][:200]}"
    return Verdict("wrong", reason, result)


# --------------------------------------------------------------------------- capabilities

_caps_cache: dict | None = None


def sandbox_capabilities(refresh: bool = False) -> dict:
    """What containment is active here.

    Measured, not assumed: a probe runs in the sandbox and tries, through raw
    libc calls (which the audit hook cannot see), to write outside its
    directory, to fork and to open a socket; the answer says which of these the
    kernel itself refused.
    """
    global _caps_cache
    if _caps_cache is not None and not refresh:
        return dict(_caps_cache)
    probe = r"""
import ctypes, os, json
libc = ctypes.CDLL(None, use_errno=True)
res = {"uid": os.getuid(), "netns": os.readlink("/proc/self/ns/net"),
       "mntns": os.readlink("/proc/self/ns/mnt")}
p = b"/tmp/.synth_probe_%d" % os.getpid()
fd = libc.open(p, 0o1 | 0o100, 0o600)
res["fs_blocked"] = fd < 0
if fd >= 0:
    libc.close(fd); libc.unlink(p)
pid = libc.fork()
if pid == 0:
    libc._exit(0)
res["fork_blocked"] = pid < 0
if pid > 0:
    os.waitpid(pid, 0)
print(json.dumps(res))
"""
    r = run_python(probe, limits=SandboxLimits(wall_s=10, cpu_s=5))
    info: dict = {}
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass

    def own(name):
        try:
            return os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            return None
    caps = {
        "python": sys.executable,
        "separate_process": True,
        "minimal_environment": True,
        "throwaway_directory": True,
        "rlimits": ["cpu", "address_space", "file_size", "open_files", "core", "nproc"],
        "wall_timeout": True,
        "output_cap": True,
        "unprivileged_uid": bool(info) and info.get("uid") != os.getuid(),
        "kernel_blocks_fork": bool(info.get("fork_blocked")),
        "network_namespace": bool(info) and info.get("netns") != own("net"),
        "mount_namespace": bool(info) and info.get("mntns") != own("mnt"),
        "kernel_blocks_writes_outside_workdir": bool(info.get("fs_blocked")),
        "audit_hook": ["socket", "process creation", "writes outside workdir"],
        "probe_ok": r.ok,
    }
    _caps_cache = caps
    return dict(caps)
