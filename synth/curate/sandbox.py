"""Run model-written Python in a contained child process.

Containment (:func:`containment` measures which layers are in force here, by a probe):

* a separate process (``python -I``: isolated mode, no user site, no ``PYTHON*``
  variables) in its own session, a fixed minimal environment (nothing of the
  parent's: no API keys) and a throwaway working directory, removed afterwards;
* resource limits: CPU seconds, address space, file size, open files, no core
  dumps, number of processes;
* the kernel layers, in one of three modes:

  - ``root`` (synth runs as root): a fresh, otherwise unused uid per process, a
    private network namespace with no interface up (no network, loopback
    included), and a private root: a read-only tmpfs holding only read-only binds of
    ``/usr``, ``/bin``, ``/sbin``, ``/lib*``, ``/etc``, ``/sys``, five ``/dev`` nodes
    and the interpreter's directories, plus the writable working directory, then
    ``chroot``. No ``/proc`` in it, no ``/home``, ``/root``, ``/tmp``, ``/var``:
    no input file, reference, key or other run to read; and an IPC namespace (no
    SysV shared memory or queues of anyone else);
  - ``user-namespace`` (not root, unprivileged user namespaces allowed): the same
    network and IPC namespaces and private root, made from a user namespace; the process
    keeps your uid, so the seccomp filter below is what stops it touching your other
    processes;
  - ``none`` (not root and no user namespaces, or ``SYNTH_SANDBOX_NO_NAMESPACES=1``,
    a switch for tests): no kernel isolation of files or network;

* in every mode a seccomp filter (x86-64 and arm64): no ``ptrace``, no
  ``process_vm_readv/writev``, no ``pidfd_*``, no signals or ``prlimit`` to any
  process but itself, no new namespaces, no ``mount``, no io_uring, no BPF, no
  keyrings, no kernel modules;
* inside the interpreter, before the model's code runs, an audit hook refusing
  sockets, process creation, signals to others, writes outside the working
  directory and reads of other processes' ``/proc``. Alone it is bypassable
  (ctypes); it is the second line;
* in the parent: a wall-clock timeout and an output cap (output is read as it
  comes, only ``output_bytes`` are kept, the group is killed past the cap).

What runs in the sandbox to verify code answers, and what "correct" means, is in
:mod:`synth.curate.verify_code`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import json
import os
import platform
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
from typing import Iterable

__all__ = [
    "SandboxLimits", "SandboxResult", "run_python", "run_many", "sandbox_capabilities",
    "containment", "describe_containment", "weak_sandbox_message",
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


# --------------------------------------------------------------------------- kernel bits

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NS_ANY = 0x7E020000 | 0x00000080   # NEWNS..NEWNET, NEWCGROUP, NEWTIME
_CLONE_THREAD = 0x00010000
_THREADS = 32   # tasks RLIMIT_NPROC allows beyond the processes: threads are fine
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_NOATIME, _MS_NODIRATIME, _MS_BIND = 32, 1024, 2048, 4096
_MS_REC, _MS_PRIVATE, _MS_RELATIME, _MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_MS_MOVE = 8192
_MOUNT_FLAG_NAMES = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
                     "noatime": _MS_NOATIME, "nodiratime": _MS_NODIRATIME,
                     "relatime": _MS_RELATIME, "strictatime": _MS_STRICTATIME}
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.unshare.argtypes = [ctypes.c_int]
        _libc.chroot.argtypes = [ctypes.c_char_p]
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_void_p]
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong, ctypes.c_ulong]
    except (OSError, AttributeError):
        _libc = None

_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_UID_LOW, _UID_HIGH = 300_000, 2_000_000
_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()

_MARK_NET = "SANDBOX: network attempt blocked"
_MARK_PROC = "SANDBOX: process creation blocked"
_MARK_FS = "SANDBOX: write outside the working directory blocked"
_MARK_SIG = "SANDBOX: signal to another process blocked"
_MARK_PROCFS = "SANDBOX: reading another process blocked"


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


# What a sandboxed process sees of the host in modes root and user-namespace: the
# system's programs and libraries, the interpreter's own directories (stdlib,
# site-packages), five device nodes and its working directory. Not /home, /root, /tmp,
# /var, /work, ...: no input file, no reference, no other run, no key.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
_DEV_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _root_plan(table: list[tuple[bytes, int]]):
    """(entries, read-only remounts, visible mount points) of the private root.

    entries: (kind, host path, target) with kind ``link``/``dir``/``file``; remounts:
    (path inside the new root, flags the original mount had, which a user namespace may
    not drop). Paths inside the root are relative to it, as bytes."""
    def flags_of(path: str) -> int:
        best, flags = b"", 0
        for mp, keep in table:
            m = mp.decode("utf-8", "replace")
            if (path == m or path.startswith(m.rstrip("/") + "/")) and len(mp) >= len(best):
                best, flags = mp, keep
        return flags

    keep = [d for d in _SYSTEM_DIRS if os.path.lexists(d)] + _interpreter_dirs()
    keep = sorted(set(keep), key=lambda d: (d.count("/"), d))
    chosen: list[str] = []
    for d in keep:   # drop what a kept directory already brings
        if not any(d.startswith(c.rstrip("/") + "/") and not os.path.islink(c)
                   for c in chosen):
            chosen.append(d)
    entries, ro, visible = [], [], []
    for d in chosen:
        if os.path.islink(d):
            entries.append(("link", os.readlink(d).encode(), d.encode()))
            continue
        entries.append(("dir", d.encode(), d.encode()))
        ro.append((d.encode(), flags_of(d)))
        visible.append(d)
        for mp, fl in table:
            m = mp.decode("utf-8", "replace")
            if m.startswith(d.rstrip("/") + "/"):
                ro.append((mp, fl))
                visible.append(m)
    for n in _DEV_NODES:
        if os.path.exists(n):
            entries.append(("file", n.encode(), n.encode()))
            ro.append((n.encode(), flags_of(n)))
    return entries, ro, visible


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


def _tasks_of_uid(uid: int) -> int:
    n = 0
    for pid in _pids_of_uid(uid):
        try:
            n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return n


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


# --------------------------------------------------------------------------- seccomp

class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# (audit arch, syscall numbers) -- from the kernel's unistd headers
_SYSCALLS = {
    "x86_64": (0xC000003E, dict(
        ptrace=101, process_vm_readv=310, process_vm_writev=311, pidfd_open=434,
        pidfd_getfd=438, pidfd_send_signal=424, kcmp=312, perf_event_open=298,
        process_madvise=440, move_pages=279, migrate_pages=256, setns=308, unshare=272,
        mount=165, umount2=166, pivot_root=155, chroot=161, bpf=321, userfaultfd=323,
        keyctl=250, add_key=248, request_key=249, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        open_tree=428, move_mount=429, mount_setattr=442, kexec_load=246,
        kexec_file_load=320, init_module=175, finit_module=313, delete_module=176,
        quotactl=179, swapon=167, swapoff=168, reboot=169, acct=163,
        kill=62, tkill=200, tgkill=234, rt_sigqueueinfo=129, rt_tgsigqueueinfo=297,
        prlimit64=302, clone=56, clone3=435, fork=57, vfork=58)),
    "aarch64": (0xC00000B7, dict(
        ptrace=117, process_vm_readv=270, process_vm_writev=271, pidfd_open=434,
        pidfd_getfd=438, pidfd_send_signal=424, kcmp=272, perf_event_open=241,
        process_madvise=440, move_pages=239, migrate_pages=238, setns=268, unshare=97,
        mount=40, umount2=39, pivot_root=41, chroot=51, bpf=280, userfaultfd=282,
        keyctl=219, add_key=217, request_key=218, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        open_tree=428, move_mount=429, mount_setattr=442, kexec_load=104,
        kexec_file_load=294, init_module=105, finit_module=273, delete_module=106,
        quotactl=60, swapon=224, swapoff=225, reboot=142, acct=89,
        kill=129, tkill=130, tgkill=131, rt_sigqueueinfo=138, rt_tgsigqueueinfo=240,
        prlimit64=261, clone=220, clone3=435)),
}
_SELF_ONLY = ("tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
_SELF_OR_ZERO = ("kill", "prlimit64")


def _seccomp_program(allow_procs: bool):
    """A BPF filter as a ctypes array plus the indices whose ``k`` is the child's pid
    (``+pid`` / ``-pid``), filled in by the child itself; None on other architectures.
    Unless ``allow_procs``, threads may be made but not processes, and signals go only
    to the process itself."""
    arch = _SYSCALLS.get(platform.machine())
    if arch is None:
        return None
    audit_arch, nr = arch
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | _errno.EPERM, 0x00050000 | _errno.ENOSYS
    prog: list[list] = []   # [code, jt, jf, k]; jt/jf may be labels
    labels: dict[str, int] = {}
    pid_slots: list[tuple[int, int]] = []   # (index, sign)

    def emit(code, k=0, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    emit(ld, 4)                           # seccomp_data.arch
    emit(jeq, audit_arch, 1, 0)
    emit(ret, eperm)                      # another ABI (e.g. int 0x80): refused
    emit(ld, 0)                           # seccomp_data.nr
    if platform.machine() == "x86_64":
        emit(jge, 0x40000000, "deny", 0)  # the x32 ABI
    skip = set(_SELF_ONLY + _SELF_OR_ZERO + ("clone", "clone3", "fork", "vfork"))
    for name, n in nr.items():
        if name not in skip or (name in ("fork", "vfork") and not allow_procs):
            emit(jeq, n, "deny", 0)
    emit(jeq, nr["clone3"], "enosys", 0)  # flags live in memory: make libc fall back to clone
    emit(jeq, nr["clone"], "clone", 0)
    if not allow_procs:
        for name in _SELF_ONLY:
            emit(jeq, nr[name], "self", 0)
        emit(jeq, nr["kill"], "self0", 0)
    emit(jeq, nr["prlimit64"], "self0", 0)
    emit(ret, allow)
    # BPF jumps only forward: the checks first, the verdicts they jump to last
    labels["clone"] = len(prog)
    emit(ld, 16)                          # args[0] (low half): clone flags
    if allow_procs:
        emit(jset, _CLONE_NS_ANY, "deny", "allow")
    else:
        emit(jset, _CLONE_NS_ANY, "deny", 0)
        emit(jset, _CLONE_THREAD, "allow", "deny")
    labels["self"] = len(prog)
    emit(ld, 16)
    pid_slots.append((len(prog), 1))
    emit(jeq, 0, "allow", "deny")
    labels["self0"] = len(prog)
    emit(ld, 16)
    pid_slots.append((len(prog), 1))
    emit(jeq, 0, "allow", 0)
    emit(jeq, 0, "allow", 0)              # pid 0: its own process group
    pid_slots.append((len(prog), -1))
    emit(jeq, 0, "allow", "deny")         # -pid: its own group, by number
    labels["deny"] = len(prog)
    emit(ret, eperm)
    labels["enosys"] = len(prog)
    emit(ret, enosys)
    labels["allow"] = len(prog)
    emit(ret, allow)

    arr = (_SockFilter * len(prog))()
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256
        arr[i] = _SockFilter(code, jt, jf, k)
    fprog = _SockFprog(len(prog), ctypes.cast(arr, ctypes.POINTER(_SockFilter)))
    return arr, fprog, pid_slots


# --------------------------------------------------------------------------- mode

_mode_cache: tuple[str, str] | None = None
_mode_lock = threading.Lock()
MODE_NAMES = {"root": "root", "userns": "user-namespace", "none": "none"}


def _userns_test() -> str | None:
    """None if an unprivileged user namespace with its own mounts and network can be
    made here, else why not (tried in a throwaway child)."""
    r, w = os.pipe()
    lib = _libc
    uid, gid = os.getuid(), os.getgid()

    def attempt():
        os.close(r)
        try:
            if lib.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
            for path, data in ((b"/proc/self/setgroups", b"deny"),
                               (b"/proc/self/uid_map", b"%d %d 1" % (uid, uid)),
                               (b"/proc/self/gid_map", b"%d %d 1" % (gid, gid))):
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            if lib.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
                raise OSError(ctypes.get_errno(), "mount(MS_PRIVATE) in the namespace")
            os.write(w, b"ok")
        except OSError as e:
            os.write(w, f"{e.strerror or e} ({e.args[-1] if e.args else ''})".encode()[:300])
            raise
    try:
        subprocess.run([shutil.which("true") or sys.executable, *([] if shutil.which("true")
                        else ["-c", ""])], preexec_fn=attempt, close_fds=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, pass_fds=(w,))
    except (OSError, subprocess.SubprocessError):
        pass
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode("utf-8", "replace")
    return None if msg == "ok" else (msg or "the attempt did not run")


def _mode() -> tuple[str, str]:
    """(mode, why): how this process sandboxes children. Decided once per process."""
    global _mode_cache
    with _mode_lock:
        if _mode_cache is None:
            if os.environ.get("SYNTH_SANDBOX_NO_NAMESPACES") == "1":
                _mode_cache = ("none", "SYNTH_SANDBOX_NO_NAMESPACES=1 is set")
            elif _libc is None:
                _mode_cache = ("none", "not Linux (no libc)")
            elif _IS_ROOT:
                _mode_cache = ("root", "running as root: own uid and namespaces per process")
            else:
                why = _userns_test()
                _mode_cache = ("userns", "not root; unprivileged user namespaces") \
                    if why is None else \
                    ("none", f"not root, and no user namespace: {why}")
        return _mode_cache


def _make_preexec(limits: SandboxLimits, workdir: str, *, mode: str, uid: int | None,
                  plan=None):
    """Build the function run in the child between fork and exec.

    Everything it needs is computed here, in the parent; the function itself
    only makes system calls (it may run while other threads of the parent hold
    locks, so it must not allocate much or take locks). A kernel layer the mode
    promises that cannot be set up raises, so the run fails instead of running
    with less than :func:`containment` reported.
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
    # RLIMIT_NPROC counts threads too; process creation itself is the seccomp
    # filter's to refuse, the limit bounds what gets through
    nproc = 1 + max(0, limits.max_procs) + _THREADS
    nproc_shared = None
    if uid is None and not _IS_ROOT and hasattr(os, "getuid"):
        try:
            nproc_shared = _tasks_of_uid(os.getuid()) + nproc
        except OSError:
            pass
    net = 0 if limits.network else _CLONE_NEWNET
    my_uid, my_gid = os.getuid(), os.getgid()
    maps = [(b"/proc/self/setgroups", b"deny"),
            (b"/proc/self/uid_map", b"%d %d 1" % (my_uid, my_uid)),
            (b"/proc/self/gid_map", b"%d %d 1" % (my_gid, my_gid))]
    sec = _seccomp_program(allow_procs=limits.max_procs > 0) if lib is not None else None
    entries, remounts, _ = plan or ([], [], [])
    root = os.path.join(workdir, ".root").encode()

    def die(what):
        raise OSError(ctypes.get_errno(), f"sandbox: {what} failed")

    def private_root() -> None:
        """A read-only tmpfs holding binds of the kept paths and the (writable) workdir,
        then chroot into it. No /proc in it: nothing of any process to read."""
        if lib.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            die("making mounts private")
        if lib.mount(b"tmpfs", root, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=755") != 0:
            die("mounting the private root")
        for kind, src, dst in entries:
            target = root + dst
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if kind == "link":
                os.symlink(src, target)
                continue
            if kind == "dir":
                os.makedirs(target, exist_ok=True)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            if lib.mount(src, target, None, _MS_BIND | (_MS_REC if kind == "dir" else 0),
                         None) != 0:
                die(f"binding {src.decode()}")
        os.makedirs(root + wd, exist_ok=True)
        os.makedirs(root + b"/proc", exist_ok=True)
        if lib.mount(wd, root + wd, None, _MS_BIND, None) != 0:
            die("binding the working directory")
        for dst, keep in remounts:   # best effort per mount: the probe checks each one
            lib.mount(None, root + dst, None,
                      _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | keep, None)
        if lib.mount(None, root, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                     b"mode=755") != 0:
            die("making the private root read-only")
        if lib.chroot(root) != 0:
            die("chroot")

    def preexec():
        if mode == "root":
            if lib.unshare(_CLONE_NEWNS | _CLONE_NEWIPC | net) != 0:
                die("unshare(mount, ipc, network)")
            private_root()
        elif mode == "userns":
            if lib.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWIPC | net) != 0:
                die("unshare(user, mount, ipc, network)")
            for path, data in maps:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            private_root()
        try:  # re-enter the working directory: through the new mount, if there is one
            os.chdir(wd)
        except OSError:
            pass
        for which, value in rlims:
            try:
                resource.setrlimit(which, value)
            except (ValueError, OSError):
                pass
        if mode == "root" and uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            # after the uid change: the limit counts this uid's processes only,
            # and this run has the uid to itself
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        elif nproc_shared is not None:
            try:  # counts every process of our (non-root) uid; root ignores it
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc_shared, nproc_shared))
            except (ValueError, OSError):
                pass
        if sec is not None:
            arr, fprog, slots = sec
            pid = os.getpid()
            for i, sign in slots:
                arr[i].k = (sign * pid) & 0xFFFFFFFF
            # best effort: containment() reads back whether the filter is on
            if lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
                lib.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
    return preexec


# --------------------------------------------------------------------------- child processes

# Installed in every sandboxed interpreter before code it did not write runs.
_AUDIT = r'''
import os as _os_, sys as _sys_
def _make_hook(net, procs):
    wd = _os_.path.realpath(_os_.getcwd())
    realpath, sep, getpid = _os_.path.realpath, _os_.sep, _os_.getpid
    socket_events = {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
                     "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"}
    proc_events = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                   "os.exec", "subprocess.Popen", "os.startfile", "pty.spawn"}
    path_events = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                   "os.truncate", "os.utime", "os.chflags", "os.lchflags", "os.mkfifo",
                   "os.mknod", "shutil.rmtree"}
    two_path_events = {"os.rename", "os.link", "os.symlink", "shutil.move",
                       "shutil.copyfile", "shutil.copytree"}
    write_flags = _os_.O_WRONLY | _os_.O_RDWR | _os_.O_CREAT | _os_.O_TRUNC | _os_.O_APPEND

    def inside(p):
        if isinstance(p, int):
            return True
        try:
            p = _os_.fsdecode(p)
        except Exception:
            return False
        r = realpath(p)
        return r == wd or r.startswith(wd + sep) or r == "/dev/null"

    def other_proc(p):
        if isinstance(p, int):
            return False
        try:
            r = realpath(_os_.fsdecode(p))
        except Exception:
            return True
        parts = r.split(sep)
        return len(parts) > 2 and parts[1] == "proc" and parts[2] not in (
            "self", "thread-self", str(getpid()))

    def hook(event, args):
        if not net and event in socket_events:
            raise PermissionError(@MNET@)
        if not procs and event in proc_events:
            raise PermissionError(@MPROC@)
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writing and not inside(path):
                raise PermissionError(@MFS@)
            if other_proc(path):
                raise PermissionError(@MPROCFS@)
        elif event in path_events:
            if args and not inside(args[0]):
                raise PermissionError(@MFS@)
        elif event in two_path_events:
            for a in args[:2]:
                if not inside(a):
                    raise PermissionError(@MFS@)
        elif event in ("os.kill", "os.killpg") and not procs:
            if args and args[0] not in (0, getpid(), -getpid()):
                raise PermissionError(@MSIG@)
    return hook
'''


def _audit_text(limits: SandboxLimits) -> str:
    text = _AUDIT
    for key, mark in (("@MNET@", _MARK_NET), ("@MPROC@", _MARK_PROC), ("@MFS@", _MARK_FS),
                      ("@MSIG@", _MARK_SIG), ("@MPROCFS@", _MARK_PROCFS)):
        text = text.replace(key, repr(mark))
    return text + f"_HOOK = _make_hook({limits.network!r}, {limits.max_procs > 0!r})\n"


# run_python's interpreter runs this file: the audit hook, then the code as __main__.
_BOOT = r'''
import sys
with open("solution.py", encoding="utf-8") as _f:
    _src = _f.read()
_code = compile(_src, "solution.py", "exec")
sys.addaudithook(_HOOK)
sys.argv = ["solution.py"]
del _f, _src
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "solution.py"})
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


class _Child:
    """One sandboxed interpreter running ``boot`` (after the audit hook's definition) in
    its own throwaway directory, with ``files`` written beside it."""

    def __init__(self, boot: str, files: dict[str, str], limits: SandboxLimits, *,
                 over: threading.Event, pass_fds: tuple[int, ...] = ()):
        self.limits, self.over = limits, over
        self.workdir = os.path.realpath(tempfile.mkdtemp(prefix="synth-sandbox-"))
        mode = _mode()[0]
        self.uid = _take_uid() if mode == "root" else None
        self.proc = None
        self.start = time.monotonic()
        try:
            files = {"_boot.py": _audit_text(limits) + boot, **files}
            for name, text in files.items():
                with open(os.path.join(self.workdir, name), "w", encoding="utf-8") as f:
                    f.write(text)
            if self.uid is not None:
                for p in [self.workdir] + [os.path.join(self.workdir, n) for n in files]:
                    os.chown(p, self.uid, self.uid)
            os.chmod(self.workdir, 0o700)
            plan = None
            if mode != "none":
                os.mkdir(os.path.join(self.workdir, ".root"), 0o755)
                plan = _root_plan(_mount_table())
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "_boot.py"], cwd=self.workdir,
                env=_sandbox_env(self.workdir), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
                pass_fds=pass_fds, start_new_session=True,
                preexec_fn=_make_preexec(limits, self.workdir, mode=mode, uid=self.uid,
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

    def stop(self, *, timed_out: bool, output_limit: bool) -> SandboxResult:
        _killpg(self.proc.pid)
        self.proc.wait()
        stragglers = _kill_uid(self.uid) if self.uid is not None else 0
        for r in self.readers:
            r.join(timeout=2.0)
        output_limit = output_limit or any(r.truncated for r in self.readers)
        rc = self.proc.returncode
        exit_code = rc if rc >= 0 else None
        sig = -rc if rc < 0 else None
        stdout = bytes(self.readers[0].buf).decode("utf-8", "replace")
        stderr = bytes(self.readers[1].buf).decode("utf-8", "replace")
        reason = _reason(exit_code, sig, timed_out, output_limit, stderr)
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
            _kill_uid(self.uid)
            _release_uid(self.uid)
            self.uid = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def _sandbox_error(e: BaseException, start: float) -> SandboxResult:
    return SandboxResult(ok=False, exit_code=None, signal=None, timed_out=False,
                         output_truncated=False, stdout="", stderr=str(e),
                         reason=f"sandbox error: {e}", wall_s=time.monotonic() - start)


def run_python(code: str, *, limits: SandboxLimits = SandboxLimits(),
               stdin: str = "") -> SandboxResult:
    """Run ``code`` in a contained child interpreter; never raises for what the code does."""
    start = time.monotonic()
    over = threading.Event()
    try:
        child = _Child(_BOOT, {"solution.py": code}, limits, over=over)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        return _sandbox_error(e, start)
    try:
        feeder = child.feed(stdin.encode("utf-8"))
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


def _reason(exit_code, sig, timed_out, output_limit, stderr) -> str | None:
    if timed_out:
        return "timeout"
    if output_limit:
        return "output_limit"
    marked = _marked(stderr)
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


def _marked(stderr: str) -> str | None:
    """A containment refusal the sandbox itself wrote to stderr, if any."""
    if _MARK_NET in stderr or "Network is unreachable" in stderr:
        return "network attempt blocked"
    if _MARK_PROC in stderr or ("BlockingIOError" in stderr and "fork" in stderr):
        return "process creation blocked"
    if _MARK_FS in stderr:
        return "write outside the working directory blocked"
    if _MARK_SIG in stderr:
        return "signal to another process blocked"
    if _MARK_PROCFS in stderr:
        return "reading another process blocked"
    return None


def run_many(codes: Iterable[str], *, limits: SandboxLimits = SandboxLimits(),
             workers: int = 2) -> list[SandboxResult]:
    """Run several programs, each in its own sandbox, ``workers`` at a time, in order."""
    codes = list(codes)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda c: run_python(c, limits=limits), codes))


# --------------------------------------------------------------------------- containment

_PROBE = r'''
import ctypes, json, os, resource, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
res = {"uid": os.getuid()}
# every check through raw libc calls, which the audit hook does not see
fd = libc.socket(2, 1, 0)
addr = struct.pack("=H", 2) + struct.pack("!H", 9) + bytes([127, 0, 0, 1]) + bytes(8)
rc = libc.connect(fd, addr, len(addr))
res["connect_errno"] = 0 if rc == 0 else ctypes.get_errno()
libc.close(fd)
writable = []
for mp in MOUNTS:
    try:
        if not os.statvfs(mp).f_flag & os.ST_RDONLY:
            writable.append(mp)
    except OSError:
        pass   # hidden or unreachable: nothing to write there either
res["writable_mounts"] = writable
blocked = []
for d in ("/tmp", "/var/tmp", "/dev/shm", sys.prefix):
    p = os.path.join(d, ".synth_probe_%d" % os.getpid()).encode()
    f = libc.open(p, 0o1 | 0o100, 0o600)
    blocked.append(f < 0 or not os.path.isdir(d))
    if f >= 0:
        libc.close(f)
        libc.unlink(p)
res["raw_writes_blocked"] = all(blocked)
f = libc.open(CANARY.encode(), 0, 0)
res["host_files_hidden"] = f < 0
if f >= 0:
    libc.close(f)
res["proc_hidden"] = not os.path.exists("/proc/self") and os.listdir("/proc") == []
res["ipc_hidden"] = IPC_KEY is not None and libc.msgget(IPC_KEY, 0) < 0
res["seccomp"] = libc.prctl(21, 0, 0, 0, 0) == 2
res["signal_parent_blocked"] = libc.kill(os.getppid(), 0) != 0
res["ptrace_parent_blocked"] = libc.ptrace(0x4206, os.getppid(), 0, 0) != 0   # SEIZE: no stop
pid = libc.fork()
if pid == 0:
    libc._exit(0)
res["fork_blocked"] = pid < 0
if pid > 0:
    os.waitpid(pid, 0)
res["rlimits"] = {name: list(resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper())))
                  for name in ("cpu", "as", "fsize", "nofile", "core", "nproc")}
try:
    socket.socket()
    res["audit_hook"] = False
except PermissionError as e:
    res["audit_hook"] = "SANDBOX" in str(e)
print(json.dumps(res))
'''

_containment_cache: dict | None = None
_containment_lock = threading.Lock()
_KERNEL = ("separate_uid", "network_namespace", "private_root", "read_only_mounts",
           "hidden_proc", "ipc_namespace", "seccomp")
_WORDS = {"separate_uid": "own uid", "network_namespace": "network namespace",
          "private_root": "private root (no host files)",
          "read_only_mounts": "read-only mounts", "hidden_proc": "no /proc",
          "ipc_namespace": "IPC namespace",
          "seccomp": "seccomp filter", "audit_hook": "audit hook"}


def containment(refresh: bool = False) -> dict:
    """Which protections are in force for sandboxed code here, measured once per process
    by a probe that runs in the sandbox and tries each one with raw libc calls.

    ``{"mode", "why", "in_force": {separate_uid, network_namespace, private_root,
    read_only_mounts, hidden_proc, ipc_namespace, seccomp, rlimits: {cpu, as, fsize, nofile, core, nproc}, audit_hook,
    separate_judge, minimal_environment, throwaway_directory, wall_timeout, output_cap},
    "weak", "missing", "probe_ok", "summary"}``. ``weak`` is true unless the network
    namespace, the private root and read-only mounts hold, and either the own uid or the
    seccomp filter with no ``/proc`` keeps the code away from your other processes."""
    global _containment_cache
    with _containment_lock:
        if _containment_cache is None or refresh:
            _containment_cache = _probe()
        return json.loads(json.dumps(_containment_cache))


def _probe() -> dict:
    mode, why = _mode()
    limits = SandboxLimits(wall_s=15, cpu_s=5)
    visible = _root_plan(_mount_table())[2] if mode != "none" else sorted(
        {mp.decode("utf-8", "replace") for mp, _ in _mount_table()})
    # a file any user may read, outside what the sandbox is meant to see
    fd, canary = tempfile.mkstemp(prefix="synth-canary-")
    os.write(fd, b"canary")
    os.close(fd)
    os.chmod(canary, 0o644)
    # and a SysV message queue (0o666), which an IPC namespace hides
    key, qid = random.randrange(1, 2**31), -1
    if _libc is not None:
        qid = _libc.msgget(key, 0o1000 | 0o666)   # IPC_CREAT
    try:
        r = run_python(f"MOUNTS = {visible!r}\nCANARY = {canary!r}\n"
                       f"IPC_KEY = {key if qid >= 0 else None!r}\n" + _PROBE, limits=limits)
    finally:
        os.remove(canary)
        if qid >= 0:
            _libc.msgctl(qid, 0, None)   # IPC_RMID
    info: dict = {}
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    mem = limits.memory_mb * 1024 * 1024
    want = {"cpu": limits.cpu_s, "as": mem, "fsize": limits.file_bytes,
            "nofile": limits.open_files, "core": 0}
    got = info.get("rlimits", {})
    rl = {k: bool(got.get(k)) and got[k][0] == v for k, v in want.items()}
    nproc = got.get("nproc", [-1])[0]
    if not info or info["uid"] == 0 or nproc < 0:   # root ignores RLIMIT_NPROC
        rl["nproc"] = False
    elif info["uid"] != os.getuid():                # the run has the uid to itself
        rl["nproc"] = nproc <= 1 + _THREADS
    else:                                           # shared with your own processes
        rl["nproc"] = nproc <= _tasks_of_uid(os.getuid()) + 1 + _THREADS + 64
    in_force = {
        "separate_uid": bool(info) and info["uid"] not in (0, os.getuid()),
        "network_namespace": info.get("connect_errno") == _errno.ENETUNREACH,
        "private_root": bool(info.get("host_files_hidden")),
        "read_only_mounts": bool(info) and info["raw_writes_blocked"]
        and not info["writable_mounts"],
        "hidden_proc": bool(info.get("proc_hidden")),
        "ipc_namespace": bool(info.get("ipc_hidden")),
        "seccomp": bool(info.get("seccomp")),
        "rlimits": rl,
        "audit_hook": bool(info.get("audit_hook")),
        # structural, in the parent: no probe can fail them
        "separate_judge": True, "minimal_environment": True, "throwaway_directory": True,
        "wall_timeout": True, "output_cap": True,
    }
    missing = [k for k in _KERNEL if not in_force[k]]
    missing += [f"rlimit {k}" for k, ok in rl.items() if not ok]
    if not in_force["audit_hook"]:
        missing.append("audit_hook")
    weak = not (in_force["network_namespace"] and in_force["read_only_mounts"]
                and in_force["private_root"] and (
                    in_force["separate_uid"] or (in_force["seccomp"] and in_force["hidden_proc"])))
    if not info:
        why += f"; the probe failed: {r.reason}: {r.stderr.strip()[-300:]}"
    out = {"mode": MODE_NAMES[mode], "why": why, "in_force": in_force, "weak": weak,
           "missing": missing, "probe_ok": bool(info),
           "uid": info.get("uid"), "writable_mounts": info.get("writable_mounts", []),
           "kernel_blocks_fork": bool(info.get("fork_blocked")),
           "signals_to_others_blocked": bool(info.get("signal_parent_blocked"))
           and bool(info.get("ptrace_parent_blocked"))}
    out["summary"] = describe_containment(out)
    return out


def describe_containment(c: dict) -> str:
    """One line: the mode and what is and is not in force."""
    f = c["in_force"]
    on, off = [], []
    for k in _KERNEL + ("audit_hook",):
        (on if f[k] else off).append(_WORDS[k])
    rl = [k for k, ok in f["rlimits"].items() if ok]
    if rl:
        on.insert(len(on) - (1 if f["audit_hook"] else 0), "rlimits " + "/".join(rl))
    off += [f"rlimit {k}" for k, ok in f["rlimits"].items() if not ok]
    on += ["output cap", "wall timeout"]
    head = f"sandbox ({c['mode']}): "
    if not off:
        return head + ", ".join(on) + ": all in force"
    return (head + "in force: " + ", ".join(on) + "; NOT in force: " + ", ".join(off)
            + (" -- WEAK" if c["weak"] else "") + f" ({c['why']})")


def weak_sandbox_message(c: dict) -> str:
    """Why a step refuses to run model code here, and how to fix or accept that."""
    off = ", ".join(_WORDS.get(m, m) for m in c["missing"]) or "nothing measurable"
    return (f"verify_code: the sandbox is weak here (not in force: {off}; {c['why']}): "
            "model-written code would run with only the rlimits, the seccomp filter (where "
            "it holds) and the in-interpreter audit hook, which ctypes gets around. Run as "
            "root or enable unprivileged user namespaces (sysctl "
            "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or set "
            "allow_weak_sandbox: true on the verify_code step to accept that")


def sandbox_capabilities(refresh: bool = False) -> dict:
    """The older, flatter view of :func:`containment` (same probe)."""
    c = containment(refresh)
    f = c["in_force"]
    return {
        "python": sys.executable,
        "mode": c["mode"],
        "separate_process": True,
        "minimal_environment": True,
        "throwaway_directory": True,
        "rlimits": [k for k, ok in f["rlimits"].items() if ok],
        "wall_timeout": True,
        "output_cap": True,
        "unprivileged_uid": f["separate_uid"],
        "kernel_blocks_fork": c["kernel_blocks_fork"],
        "network_namespace": f["network_namespace"],
        "mount_namespace": f["read_only_mounts"],
        "private_root": f["private_root"],
        "kernel_blocks_writes_outside_workdir": f["read_only_mounts"],
        "hidden_proc": f["hidden_proc"],
        "ipc_namespace": f["ipc_namespace"],
        "seccomp": f["seccomp"],
        "audit_hook": ["socket", "process creation", "signals", "writes outside workdir",
                       "other processes' /proc"] if f["audit_hook"] else [],
        "probe_ok": c["probe_ok"],
    }
