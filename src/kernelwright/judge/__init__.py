"""The judge: decides whether an answer is correct (`check`) and how fast it is (`timer`).

It never imports candidate code into its own process: candidates run in a sandboxed worker
(judge/sandbox.py, judge/worker.py) and send back tensors as bytes (judge/protocol.py).
The judge imports nothing from propose/ or loop/.
"""
from __future__ import annotations

from .verdict import STAGES, Rejection, StageResult, Verdict

__all__ = ["check", "STAGES", "Rejection", "StageResult", "Verdict"]


def check(task_path, answer_path, config=None, *, gate=None) -> Verdict:
    """Full correctness judgement of one answer file against one task file. gate (judge.gate.GpuGate):
    shares the GPU with a timer in the same process (the loop's); None: the GPU is not shared."""
    from .gate import NO_GATE
    from .stages import check as _check

    return _check(task_path, answer_path, config, gate=gate or NO_GATE)
