"""The audit hook every sandboxed interpreter installs before code it did not write runs:
no sockets, no process creation, no signals to other processes, no writes outside the
working directory, no reads of other processes' ``/proc``. Alone it is bypassable
(ctypes); it is the second line behind the kernel's."""
from __future__ import annotations

import os
from typing import Any, Callable

# What the hook says when it refuses; the supervisor finds these in stderr to name why
# a run failed.
MARK_NET = "SANDBOX: network attempt blocked"
MARK_PROC = "SANDBOX: process creation blocked"
MARK_FS = "SANDBOX: write outside the working directory blocked"
MARK_SIG = "SANDBOX: signal to another process blocked"
MARK_PROCFS = "SANDBOX: reading another process blocked"

Hook = Callable[[str, tuple[Any, ...]], None]


def make_hook(network: bool, procs: bool) -> Hook:
    """The hook for a process whose working directory is the current one. What it
    compares against is bound here, in its closure, and its event sets are frozen:
    rebinding ``os.fsdecode``, ``os.path.realpath`` or this module's marks after it is
    installed changes nothing it reads directly. It is a tripwire, not the boundary: code
    in the same process can still reach what ``realpath`` calls inside ``os`` (or use
    ctypes), which is why the kernel's layers (private root, own uid, seccomp) are what
    hold, and why mode ``none`` is reported as weak."""
    wd = os.path.realpath(os.getcwd())
    realpath, fsdecode, sep, getpid = os.path.realpath, os.fsdecode, os.sep, os.getpid
    mark_net, mark_proc, mark_fs, mark_sig, mark_procfs = (
        MARK_NET, MARK_PROC, MARK_FS, MARK_SIG, MARK_PROCFS)
    socket_events = frozenset({
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"})
    proc_events = frozenset({
        "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "os.exec",
        "subprocess.Popen", "os.startfile", "pty.spawn"})
    path_events = frozenset({
        "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
        "os.utime", "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod", "shutil.rmtree"})
    two_path_events = frozenset({
        "os.rename", "os.link", "os.symlink", "shutil.move", "shutil.copyfile",
        "shutil.copytree"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(p: Any) -> bool:
        if isinstance(p, int):
            return True
        try:
            p = fsdecode(p)
        except Exception:
            return False
        r = realpath(p)
        return r == wd or r.startswith(wd + sep) or r == "/dev/null"

    def other_proc(p: Any) -> bool:
        if isinstance(p, int):
            return False
        try:
            r = realpath(fsdecode(p))
        except Exception:
            return True
        parts = r.split(sep)
        return len(parts) > 2 and parts[1] == "proc" and parts[2] not in (
            "self", "thread-self", str(getpid()))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not network and event in socket_events:
            raise PermissionError(mark_net)
        if not procs and event in proc_events:
            raise PermissionError(mark_proc)
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writing and not inside(path):
                raise PermissionError(mark_fs)
            if other_proc(path):
                raise PermissionError(mark_procfs)
        elif event in path_events:
            if args and not inside(args[0]):
                raise PermissionError(mark_fs)
        elif event in two_path_events:
            for a in args[:2]:
                if not inside(a):
                    raise PermissionError(mark_fs)
        elif event in ("os.kill", "os.killpg") and not procs:
            if args and args[0] not in (0, getpid(), -getpid()):
                raise PermissionError(mark_sig)
    return hook
