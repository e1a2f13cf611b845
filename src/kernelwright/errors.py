"""The few exceptions kernelwright raises; each carries what went wrong and what to do next."""
from __future__ import annotations


class KernelwrightError(Exception):
    """Base class. `hint` says what the user should do next; the CLI prints both."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class TaskError(KernelwrightError):
    """The task (or model) file cannot be used: unreadable, malformed, or its reference fails."""


class UsageError(KernelwrightError):
    """Bad command-line usage or an environment that cannot run the request (no GPU, no key)."""
