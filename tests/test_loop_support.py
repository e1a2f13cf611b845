"""Shared pieces of the loop tests: a tiny ReLU task, answers for it, scripted proposers, fake judges.

No tests here; imported by the other tests/test_loop*.py and run as a script by the
resume test (`python tests/test_loop_support.py RUN_DIR TASK`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

TASK = '''\
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


N = 1000


def get_inputs():
    return [torch.randn(N)]


def get_init_inputs():
    return []
'''

# An honest answer: one program per BLOCK elements, the tail masked (N = 1000 is not a multiple of 256).
GOOD = '''\
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, tl.maximum(x, FLOOR), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        _relu_kernel[(triton.cdiv(n, BLOCK_SIZE),)](x, y, n, BLOCK=BLOCK_SIZE)
        return y
'''


def good(block: int = 256) -> str:
    return GOOD.replace("FLOOR", "0.0").replace("BLOCK_SIZE", str(block))


def wrong(floor: float = 0.1) -> str:
    """Looks like the honest answer but clamps at `floor` instead of 0: wrong for every negative x."""
    return GOOD.replace("FLOOR", repr(floor)).replace("BLOCK_SIZE", "256")


def write_task(d: Path, name: str = "relu") -> Path:
    Path(d).mkdir(parents=True, exist_ok=True)
    p = Path(d) / f"{name}.py"
    p.write_text(TASK)
    return p


class Scripted:
    """Proposes a fixed script. Item i of the script is chosen by the number of experiments already
    in the ledger (ctx.history_size), so a restarted process picks up where the killed one was.
    An item is a Candidate, a list of Candidates, an Exception to raise, or any other object to return."""

    def __init__(self, script: list, name: str = "scripted", by_history: bool = True) -> None:
        self.name = name
        self.script = list(script)
        self.by_history = by_history
        self.calls = 0
        self.contexts: list = []
        self.preflights = 0

    def preflight(self) -> None:
        self.preflights += 1

    def propose(self, ctx, n):
        self.contexts.append(ctx)
        i = ctx.history_size if self.by_history else self.calls
        self.calls += 1
        if i >= len(self.script):
            return []
        item = self.script[i]
        if isinstance(item, BaseException):
            raise item
        return item if isinstance(item, list) else [item] if hasattr(item, "source") else item


def cand(source: str, label: str, proposer: str = "scripted", **meta):
    from kernelwright.propose.base import Candidate

    return Candidate(source=source, label=label, proposer=proposer, meta=dict(meta))


@dataclass
class FakeJudges:
    """Judges for loop-logic tests: an answer is correct unless its text holds "WRONG"; its timing
    comes from `speed` by label (speedup vs eager); compare() says faster when the gain beats `noise`."""

    speed: dict[str, float] = field(default_factory=dict)
    ceiling: dict[str, float] = field(default_factory=dict)  # label -> percent of ceiling
    flagged: set[str] = field(default_factory=set)  # timed, but "review before trusting it"
    invalid: set[str] = field(default_factory=set)  # the timing itself rejected (cheat, bad outputs)
    noise: float = 0.05
    checked: list[str] = field(default_factory=list)
    compared: list[tuple[str, str]] = field(default_factory=list)
    timed: list[tuple[str, tuple]] = field(default_factory=list)  # (label, baselines asked for)

    @staticmethod
    def _label(path: Path) -> str:
        for line in Path(path).read_text().splitlines():
            if line.startswith("# label:"):
                return line.split(":", 1)[1].strip()
        return ""

    def check(self, task_path, answer_path, cfg, gate=None):
        from kernelwright.judge.verdict import Verdict

        self.checked.append(self._label(answer_path))
        if "WRONG" in Path(answer_path).read_text():
            return Verdict(accepted=False, stage="smoke", reason="wrong result [fake]")
        return Verdict(accepted=True, stage="integrity", reason="accepted [fake]")

    def time(self, task_path, answer_path, cfg):
        label = self._label(answer_path)
        self.timed.append((label, tuple(cfg.baselines)))
        s = self.speed.get(label, 1.0)
        stats = SimpleNamespace(mode="events", n=10, median_ms=1.0 / s, p20_ms=0.99 / s, p80_ms=1.01 / s,
                                min_ms=0.98 / s, max_ms=1.02 / s)
        return SimpleNamespace(
            answer=stats, baselines={"eager": None}, speedup={"eager": s, "compile": s / 2},
            gbps=100.0 * s, tflops=None, pct_of_ceiling=self.ceiling.get(label, 10.0), bound="memory",
            ceiling_source="fake", flagged=["too fast [fake]"] if label in self.flagged else [],
            accepted=label not in self.invalid, reason="invalid [fake]" if label in self.invalid else "timed [fake]",
            device_name="fake",
        )

    def compare(self, task_path, incumbent_path, candidate_path, cfg):
        a, b = self._label(incumbent_path), self._label(candidate_path)
        self.compared.append((a, b))
        gain = self.speed.get(b, 1.0) / self.speed.get(a, 1.0) - 1
        return SimpleNamespace(faster=gain > self.noise, gain=gain, noise=self.noise, incumbent=None, candidate=None,
                               accepted=True, flagged=[], reason="")

    def timer(self, task_path, cfg, gate):
        """A fake judge.timer.TaskTimer: the candidate's own timing (beside eager), and the
        comparison with the incumbent when one is given and the candidate's timing is clean."""
        from kernelwright.judge.timer import CandidateTiming

        fake = self

        class _Timer:
            def candidate(self, path, incumbent=None):
                rep = fake.time(task_path, path, SimpleNamespace(baselines=("eager",)))
                cmp = None
                if incumbent is not None and rep.accepted and not rep.flagged:
                    cmp = fake.compare(task_path, incumbent, path, cfg)
                return CandidateTiming(rep, cmp, str(incumbent) if incumbent is not None else None)

        return _Timer()

    def judges(self, device: str = "cuda"):
        from kernelwright.loop.run import Judges

        return Judges(check=self.check, time=self.time if device == "cuda" else None,
                      timer=self.timer if device == "cuda" else None)


def fake_source(label: str, wrong_answer: bool = False) -> str:
    """A distinct answer text per label for the fake judges (never run)."""
    return f"# label: {label}\n{'# WRONG' if wrong_answer else ''}\nclass ModelNew:\n    pass\n"


def resume_script() -> list:
    """The script the resume test runs: two wrong answers, then the honest one."""
    return [cand(wrong(0.1 * (i + 1)), f"wrong{i + 1}") for i in range(2)] + [cand(good(), "good")]


def main(run_dir: str, task_path: str) -> None:
    """Run the real loop (real judge, cpu) on the ReLU task; the resume test kills and restarts this."""
    from kernelwright.config import JudgeConfig, LoopConfig
    from kernelwright.loop.run import LoopInterrupted, TaskTarget, optimize_tasks

    try:
        out = optimize_tasks(
            [TaskTarget("relu", Path(task_path))], Path(run_dir), [Scripted(resume_script())],
            device="cpu", judge_cfg=JudgeConfig(device="cpu", timeout_s=120), timer_cfg=None,
            loop_cfg=LoopConfig(compile_workers=1, candidates_per_round=1, beam_width=1),
        )
    except LoopInterrupted:
        sys.exit(130)
    print("OUTCOME", out["relu"].stop_reason, out["relu"].experiments)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
