"""The exception tree. Every error synth raises on purpose is a :class:`SynthError`.

::

    SynthError                      base; ``exit_code`` is what the CLI exits with
    ├── UserError                   the user can fix it; the CLI prints one line, no traceback
    │   ├── ConfigError             a bad option or config value        (exit 2)
    │   ├── InputError              a bad input file: names file, line and field (exit 3)
    │   ├── TeacherSpecError        an unknown or malformed ``--teacher`` spec (exit 2)
    │   ├── MissingAPIKeyError      the key variable is unset           (exit 2)
    │   ├── PluginError             an installed plugin's entry point failed to load; names
    │   │                           the plugin and why                   (exit 2)
    │   ├── TeacherUnreachableError the base URL does not answer        (exit 4)
    │   ├── ModelLoadError          a local model cannot be found/loaded/verified (exit 5)
    │   ├── OutputError             an output file or cache cannot be written: names the
    │   │                           file (disk full, permissions)        (exit 8)
    │   ├── InsufficientMemoryError training would not fit in the memory available; says
    │   │                           what to change (checked before training) (exit 9)
    │   ├── BatchError              a provider's batch API refused a whole batch (names the
    │   │                           batch and each cause), or could not be reached to
    │   │                           submit or poll it; a rerun resumes   (exit 10)
    │   ├── FineTuneError           a provider's fine-tuning job failed or was cancelled
    │   │                           (names the job and the provider's reason), or its API
    │   │                           could not be reached; a rerun attaches to the same job
    │   │                                                                (exit 11)
    │   └── LicenceError            the teacher's terms stop the run before any request
    │       ├── LicenceDeniedError  the terms forbid this use (``deny``)  (exit 6)
    │       └── TermsNotAcceptedError nothing is known about these terms and the user
    │                               has not accepted them (``--accept-terms unknown``) (exit 7)
    └── TeacherError                one request failed (becomes a ``status=error`` row)
        ├── RetryableError          worth another attempt: 429, 408, 409, 5xx, timeouts,
        │   │                       dropped connections, malformed or truncated bodies
        │   └── RateLimitedError    429; carries the server's ``retry_after``
        ├── FatalRequestError       other 4xx: fails fast, never retried
        └── BudgetExceededError     ``--max-cost`` reached; the request was never sent

``TeacherError`` never escapes a run: the runner turns it into a row with
``status="error"`` and the reason, so no request is silently dropped.
"""

from __future__ import annotations

__all__ = [
    "SynthError",
    "UserError",
    "ConfigError",
    "InputError",
    "TeacherSpecError",
    "MissingAPIKeyError",
    "PluginError",
    "TeacherUnreachableError",
    "ModelLoadError",
    "OutputError",
    "InsufficientMemoryError",
    "BatchError",
    "FineTuneError",
    "LicenceError",
    "LicenceDeniedError",
    "TermsNotAcceptedError",
    "TeacherError",
    "RetryableError",
    "RateLimitedError",
    "FatalRequestError",
    "BudgetExceededError",
]


class SynthError(Exception):
    """Base class of every error synth raises on purpose."""

    exit_code = 1


class UserError(SynthError):
    """Something the user can fix. The CLI prints ``str(err)`` on one line and exits."""

    exit_code = 1


class ConfigError(UserError):
    """A bad option or configuration value. The message names the option."""

    exit_code = 2


class InputError(UserError):
    """A bad input file. Carries the file, the 1-based line and the field when known."""

    exit_code = 3

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = path or "<input>"
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")


class TeacherSpecError(ConfigError):
    """An unknown or malformed teacher spec such as ``opneai:gpt-4o``."""


class MissingAPIKeyError(ConfigError):
    """The environment variable that should hold the API key is unset or empty."""


class PluginError(ConfigError):
    """A provider, step or recipe a plugin package declares could not be loaded."""


class TeacherUnreachableError(UserError):
    """The teacher's base URL refused or timed out before any request was sent."""

    exit_code = 4


class ModelLoadError(UserError):
    """A local model could not be found, verified (checksum) or loaded."""

    exit_code = 5


class OutputError(UserError):
    """An output (a row file, a report, the response cache) could not be written. Names the
    file; nothing half-written is left behind."""

    exit_code = 8

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InsufficientMemoryError(UserError):
    """The estimated memory a training run needs exceeds what is available (or
    ``--memory-limit-gb``). Raised before the first step, with what to change."""

    exit_code = 9


class BatchError(UserError):
    """A batch run cannot go on: the provider refused a whole batch (validation), or a
    control call (upload, create, poll, download) failed after its retries. What was
    submitted stays recorded in the run's cache; the same command resumes it."""

    exit_code = 10


class FineTuneError(UserError):
    """``synth train --backend openai`` cannot go on: the job failed (its error names the
    cause: an invalid training file...) or was cancelled, or a call to upload, create or
    poll failed after its retries. ``OUT/finetune.json`` keeps the job; the same command
    attaches to it, never creating a second one."""

    exit_code = 11


class LicenceError(UserError):
    """The licence check refused to start. Carries the :class:`synth.licences.Decision`."""

    exit_code = 6

    def __init__(self, message: str, decision=None):
        super().__init__(message)
        self.decision = decision


class LicenceDeniedError(LicenceError):
    """The teacher's terms forbid using its outputs for the declared intent."""

    exit_code = 6


class TermsNotAcceptedError(LicenceError):
    """The registry knows nothing of these terms: the user must accept them explicitly."""

    exit_code = 7


class TeacherError(SynthError):
    """One request failed. ``reason`` is a short stable tag used to count failures."""

    reason = "error"

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        if reason is not None:
            self.reason = reason


class RetryableError(TeacherError):
    """A failure worth retrying after a backoff."""

    reason = "retryable"

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """HTTP 429. ``retry_after`` holds the server's hint in seconds, if it gave one."""

    reason = "rate_limited"


class FatalRequestError(TeacherError):
    """A request the server rejected for good (400, 401, 403, 404, 422, ...)."""

    reason = "rejected"


class BudgetExceededError(TeacherError):
    """Sending this request could cross ``--max-cost``; it was not sent."""

    reason = "max_cost"
