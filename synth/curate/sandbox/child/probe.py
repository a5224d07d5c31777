"""What :func:`synth.curate.sandbox.containment` measures: each protection tried from
inside the sandbox, through raw libc calls, which the audit hook does not see.

Reads ``{"mounts": [...], "canary": PATH, "ipc_key": KEY | null}`` from stdin (the mount
points the child should find read-only, a file it should not see, a SysV message queue
it should not reach) and prints one JSON line of findings. It forks, signals and
ptraces its parent on purpose: run it only in the sandbox.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import socket
import struct
import sys
from typing import Any

RLIMITS = ("cpu", "as", "fsize", "nofile", "core", "nproc")


def measure(mounts: list[str], canary: str, ipc_key: int | None) -> dict[str, Any]:
    libc = ctypes.CDLL(None, use_errno=True)
    res: dict[str, Any] = {"uid": os.getuid()}
    fd = libc.socket(2, 1, 0)
    addr = struct.pack("=H", 2) + struct.pack("!H", 9) + bytes([127, 0, 0, 1]) + bytes(8)
    rc = libc.connect(fd, addr, len(addr))
    res["connect_errno"] = 0 if rc == 0 else ctypes.get_errno()
    libc.close(fd)
    writable = []
    for mp in mounts:
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
    f = libc.open(canary.encode(), 0, 0)
    res["host_files_hidden"] = f < 0
    if f >= 0:
        libc.close(f)
    res["proc_hidden"] = not os.path.exists("/proc/self") and os.listdir("/proc") == []
    res["ipc_hidden"] = ipc_key is not None and libc.msgget(ipc_key, 0) < 0
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
                      for name in RLIMITS}
    try:
        socket.socket()
        res["audit_hook"] = False
    except PermissionError as e:
        res["audit_hook"] = "SANDBOX" in str(e)
    return res


def main() -> None:
    params = json.loads(sys.stdin.buffer.read())
    print(json.dumps(measure(params["mounts"], params["canary"], params["ipc_key"])))
