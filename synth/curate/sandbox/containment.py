"""How contained sandboxed code is here, measured by a probe run in the sandbox
(:mod:`synth.curate.sandbox.child.probe`), and the words for it."""
from __future__ import annotations

import errno as _errno
import json
import os
import random
import sys
import tempfile
import threading

from synth.curate.sandbox import kernel
from synth.curate.sandbox.limits import SandboxLimits
from synth.curate.sandbox.supervisor import run_child

__all__ = ["containment", "describe_containment", "weak_sandbox_message",
           "sandbox_capabilities"]

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
    mode, why = kernel.sandbox_mode()
    limits = SandboxLimits(wall_s=15, cpu_s=5)
    visible = kernel.root_plan(kernel.mount_table())[2] if mode != "none" else sorted(
        {mp.decode("utf-8", "replace") for mp, _ in kernel.mount_table()})
    # a file any user may read, outside what the sandbox is meant to see
    fd, canary = tempfile.mkstemp(prefix="synth-canary-")
    os.write(fd, b"canary")
    os.close(fd)
    os.chmod(canary, 0o644)
    # and a SysV message queue (0o666), which an IPC namespace hides
    libc = kernel.libc
    key, qid = random.randrange(1, 2**31), -1
    if libc is not None:
        qid = libc.msgget(key, 0o1000 | 0o666)   # IPC_CREAT
    try:
        params = {"mounts": visible, "canary": canary, "ipc_key": key if qid >= 0 else None}
        r = run_child("probe", limits, stdin=json.dumps(params).encode())
    finally:
        os.remove(canary)
        if libc is not None and qid >= 0:
            libc.msgctl(qid, 0, None)   # IPC_RMID
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
        rl["nproc"] = nproc <= 1 + kernel.THREADS
    else:                                           # shared with your own processes
        rl["nproc"] = nproc <= kernel.tasks_of_uid(os.getuid()) + 1 + kernel.THREADS + 64
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
    out = {"mode": kernel.MODE_NAMES[mode], "why": why, "in_force": in_force, "weak": weak,
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
