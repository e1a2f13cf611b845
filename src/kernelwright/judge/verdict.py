"""Typed verdicts. The judge returns these; the loop, CLI and report read them (never candidate output)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The order of the correctness stages; a check stops at the first failure.
STAGES = ("load", "smoke", "sweep", "numerics", "determinism", "integrity")


@dataclass
class StageResult:
    name: str
    passed: bool
    seconds: float = 0.0
    configs: int = 0  # configurations / trials run in this stage
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    detail: str = ""


@dataclass
class Verdict:
    """Outcome of `check`. `stage` is the last stage reached: the failing one when rejected."""

    accepted: bool
    stage: str
    reason: str
    stages: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    kernels: list[str] = field(default_factory=list)  # the answer's own kernels seen running
    kernel_share: float | None = None  # share of GPU time in the answer's kernels (cuda only)
    sandbox: str = ""  # isolation level the worker ran under
    log_tail: str = ""  # last lines the worker printed (for the debugger; untrusted text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_abs_err"] = {s.name: s.max_abs_err for s in self.stages}
        d["max_rel_err"] = {s.name: s.max_rel_err for s in self.stages}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["stages"] = [StageResult(**s) for s in d.get("stages", [])]
        return cls(**d)


class Rejection(Exception):
    """Raised inside the judge when a stage fails; carries the stage and a reason for the user."""

    def __init__(self, stage: str, reason: str, abs_err: float | None = None, rel_err: float | None = None):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.abs_err = abs_err
        self.rel_err = rel_err
