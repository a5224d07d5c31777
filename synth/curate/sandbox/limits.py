"""What a sandboxed run may use, and what came of it."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxLimits", "SandboxResult"]


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
