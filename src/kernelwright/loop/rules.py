"""Move-on rules as data: when the loop stops working on a task and moves to the next.

Each rule is a name, a predicate over the task's state (derived from the ledger, so a resumed run
decides exactly as the original would have) and the reason it prints. LoopConfig.move_on names
the rules in force; the defaults are AutoKernel's four (budget, plateau, roofline, target) plus
an experiment cap and, on a CPU where nothing can be timed, stopping at the first correct answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import LoopConfig
from ..errors import UsageError


@dataclass(frozen=True)
class TaskState:
    """What the rules look at: one task's progress so far (every field comes from the ledger)."""

    device: str  # "cpu" (nothing timed) or "cuda"
    experiments: int  # ledger rows of this task
    kept: int  # rows whose candidate became the incumbent
    since_improvement: int  # rows since the last kept one (all rows when none was kept)
    spent_s: float  # wall time spent on this task, over all sessions of the run
    budget_s: float  # this task's share of the run's wall-time budget
    max_experiments: int | None  # this task's share of the run's experiment cap
    best_speedup: float | None  # incumbent's speedup vs eager; None on cpu or before a kept answer
    best_ceiling: float | None  # incumbent's fraction of the measured ceiling (0..1)


@dataclass(frozen=True)
class MoveOnRule:
    name: str
    fires: Callable[[TaskState, LoopConfig], bool]
    reason: Callable[[TaskState, LoopConfig], str]


RULES: tuple[MoveOnRule, ...] = (
    MoveOnRule(
        "budget",
        lambda s, c: s.spent_s >= s.budget_s,
        lambda s, c: f"budget: spent {s.spent_s:.0f} s of its {s.budget_s:.0f} s share",
    ),
    MoveOnRule(
        "max-experiments",
        lambda s, c: s.max_experiments is not None and s.experiments >= s.max_experiments,
        lambda s, c: f"max-experiments: ran {s.experiments} of its {s.max_experiments}",
    ),
    MoveOnRule(
        "plateau",
        lambda s, c: s.since_improvement >= c.max_consecutive_failures,
        lambda s, c: f"plateau: {s.since_improvement} experiments in a row without an improvement",
    ),
    MoveOnRule(
        "roofline",
        lambda s, c: s.best_ceiling is not None and s.best_ceiling >= c.roofline_stop,
        lambda s, c: f"roofline: best answer at {100 * (s.best_ceiling or 0):.0f}% of the measured ceiling",
    ),
    MoveOnRule(
        "target",
        lambda s, c: c.target_speedup is not None and s.best_speedup is not None and s.best_speedup >= c.target_speedup,
        lambda s, c: f"target: {s.best_speedup:.2f}x reached (target {c.target_speedup:.2f}x)",
    ),
    MoveOnRule(
        "cpu-correct",
        lambda s, c: s.device == "cpu" and s.kept > 0,
        lambda s, c: "cpu-correct: a correct answer found; nothing can be timed on a CPU",
    ),
)

BY_NAME = {r.name: r for r in RULES}

# Stop reasons that no rule derives from the ledger; kept in run.json so a resume honours them.
EXHAUSTED = "exhausted: the proposers have nothing new to offer"


def active_rules(cfg: LoopConfig) -> list[MoveOnRule]:
    unknown = [n for n in cfg.move_on if n not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown move-on rule(s) {unknown}", f"Known rules: {', '.join(BY_NAME)}.")
    return [BY_NAME[n] for n in cfg.move_on]


def move_on_reason(state: TaskState, cfg: LoopConfig) -> str | None:
    """The first rule in force that fires, as a reason to print; None to keep going."""
    for rule in active_rules(cfg):
        if rule.fires(state, cfg):
            return rule.reason(state, cfg)
    return None


def share(total: float, used_before: float, weight: float, weights_left: float) -> float:
    """This task's share of what earlier tasks left of a budget, split by weight.

    Tasks run in order; task i gets (total - used by tasks before i) * w_i / sum(w_j, j >= i), so
    a task that moves on early hands its unused share to the tasks after it, still by weight.
    """
    if weights_left <= 0:
        return max(0.0, total - used_before)
    return max(0.0, total - used_before) * weight / weights_left
