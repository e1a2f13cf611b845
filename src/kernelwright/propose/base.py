"""The one interface every proposer implements: (task, history, diagnosis) -> candidate answer files.

Proposers see verdicts and timings as plain data; they import nothing from the judge's internals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Attempt:
    """One earlier experiment as a proposer sees it."""

    source: str  # the answer file's text
    label: str  # proposer's own short name for it ("softmax/looped BLOCK=1024 w=8")
    accepted: bool
    stage: str  # last correctness stage reached (the failing one when rejected)
    message: str  # rejection reason, or "" when accepted
    speedup: float | None = None  # vs eager; None when not timed (cpu) or rejected
    median_ms: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProposalContext:
    """What a proposer is told before it proposes."""

    task_name: str
    task_source: str  # the task file's text (KernelBench format)
    task_path: str
    device: str  # "cpu" (interpreter: correctness only) or "cuda"
    parent: Attempt | None = None  # the node being expanded; None for the root
    siblings: list[Attempt] = field(default_factory=list)  # parent's other children, best first
    rejected: list[Attempt] = field(default_factory=list)  # recent rejections with stage and message
    diagnosis: str = ""  # analyst / roofline text ("memory-bound at 61% of copy bandwidth ...")
    history_size: int = 0  # experiments already run on this task
    run_dir: str = ""  # the run directory; a proposer may save its own files under run_dir/<proposer name>/


@dataclass
class Candidate:
    """A proposed answer: the full text of an answer file defining ModelNew."""

    source: str
    label: str
    proposer: str
    meta: dict[str, Any] = field(default_factory=dict)  # family, config, tokens, cost ...


class ProposerError(Exception):
    """A proposer could not produce candidates; costs one ledger row, the run goes on."""


@runtime_checkable
class Proposer(Protocol):
    name: str

    def preflight(self) -> None:
        """Fail fast (UsageError with a hint) before the run starts: missing key, endpoint down, ..."""
        ...

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        """Return up to n new candidates (may return fewer; [] means this proposer is exhausted)."""
        ...
