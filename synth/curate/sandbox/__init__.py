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

Layout: :mod:`.limits` (what a run may use, what came of it), :mod:`.kernel` (the
kernel layers, set up between fork and exec), :mod:`.supervisor` (the parent's side of a
run: start, feed, read, stop), :mod:`.containment` (the probe's findings, in words) and
:mod:`.child`, the stdlib-only programs the sandboxed interpreters run (the audit hook,
the wire protocol, ``verify_code``'s judge and solution process, the probe).
"""
from __future__ import annotations

from synth.curate.sandbox.containment import (
    containment,
    describe_containment,
    sandbox_capabilities,
    weak_sandbox_message,
)
from synth.curate.sandbox.kernel import MODE_NAMES as MODE_NAMES  # public before the split
from synth.curate.sandbox.limits import SandboxLimits, SandboxResult
from synth.curate.sandbox.supervisor import run_many, run_python

__all__ = [
    "SandboxLimits", "SandboxResult", "run_python", "run_many", "sandbox_capabilities",
    "containment", "describe_containment", "weak_sandbox_message",
]
