"""The kernel layers of the sandbox, set up between fork and exec of each child.

Namespaces (network, IPC, mount; a user namespace when not root), the private root
(a read-only tmpfs of read-only binds, then ``chroot``), a fresh uid per process when
root, resource limits and the seccomp filter. :func:`make_preexec` builds the function
that applies them in the child; :func:`sandbox_mode` decides, once per process, which of
them this host allows. What they add up to is in :mod:`synth.curate.sandbox`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

from synth.curate.sandbox.limits import SandboxLimits

__all__ = ["MODE_NAMES", "THREADS", "libc", "sandbox_mode", "make_preexec", "mount_table",
           "root_plan", "take_uid", "release_uid", "kill_uid", "tasks_of_uid"]

# --------------------------------------------------------------------------- kernel bits

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NS_ANY = 0x7E020000 | 0x00000080   # NEWNS..NEWNET, NEWCGROUP, NEWTIME
_CLONE_THREAD = 0x00010000
THREADS = 32   # tasks RLIMIT_NPROC allows beyond the processes: threads are fine
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_NOATIME, _MS_NODIRATIME, _MS_BIND = 32, 1024, 2048, 4096
_MS_REC, _MS_PRIVATE, _MS_RELATIME, _MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_MS_MOVE = 8192
_MOUNT_FLAG_NAMES = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
                     "noatime": _MS_NOATIME, "nodiratime": _MS_NODIRATIME,
                     "relatime": _MS_RELATIME, "strictatime": _MS_STRICTATIME}
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2

libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.unshare.argtypes = [ctypes.c_int]
        libc.chroot.argtypes = [ctypes.c_char_p]
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_ulong, ctypes.c_void_p]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                               ctypes.c_ulong, ctypes.c_ulong]
    except (OSError, AttributeError):
        libc = None

_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_UID_LOW, _UID_HIGH = 300_000, 2_000_000
_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


def mount_table() -> list[tuple[bytes, int]]:
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


def root_plan(table: list[tuple[bytes, int]]):
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


def tasks_of_uid(uid: int) -> int:
    n = 0
    for pid in _pids_of_uid(uid):
        try:
            n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return n


def take_uid() -> int:
    with _uids_lock:
        for _ in range(100):
            uid = random.randrange(_UID_LOW, _UID_HIGH)
            if uid in _uids_in_use or _pids_of_uid(uid):
                continue
            _uids_in_use.add(uid)
            return uid
    raise RuntimeError("no free sandbox uid")


def release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


def kill_uid(uid: int) -> int:
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
    lib = libc
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


def sandbox_mode() -> tuple[str, str]:
    """(mode, why): how this process sandboxes children. Decided once per process."""
    global _mode_cache
    with _mode_lock:
        if _mode_cache is None:
            if os.environ.get("SYNTH_SANDBOX_NO_NAMESPACES") == "1":
                _mode_cache = ("none", "SYNTH_SANDBOX_NO_NAMESPACES=1 is set")
            elif libc is None:
                _mode_cache = ("none", "not Linux (no libc)")
            elif _IS_ROOT:
                _mode_cache = ("root", "running as root: own uid and namespaces per process")
            else:
                why = _userns_test()
                _mode_cache = ("userns", "not root; unprivileged user namespaces") \
                    if why is None else \
                    ("none", f"not root, and no user namespace: {why}")
        return _mode_cache


def make_preexec(limits: SandboxLimits, workdir: str, *, mode: str, uid: int | None,
                  plan=None):
    """Build the function run in the child between fork and exec.

    Everything it needs is computed here, in the parent; the function itself
    only makes system calls (it may run while other threads of the parent hold
    locks, so it must not allocate much or take locks). A kernel layer the mode
    promises that cannot be set up raises, so the run fails instead of running
    with less than :func:`containment` reported.
    """
    lib = libc
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
    nproc = 1 + max(0, limits.max_procs) + THREADS
    nproc_shared = None
    if uid is None and not _IS_ROOT and hasattr(os, "getuid"):
        try:
            nproc_shared = tasks_of_uid(os.getuid()) + nproc
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
