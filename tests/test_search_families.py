"""Search proposer, family by family, on tiny awkward-shape tasks (tests/tasks_search/*.py).

Fast: every task's first three candidates (one-pass, looped and split-row configs where the family has them)
are rendered and run under the Triton interpreter in one subprocess against the task's Model.
Slow: the first candidate of each task through the real correctness judge.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.config import JudgeConfig, SearchConfig
from kernelwright.propose.base import Attempt, ProposalContext, ProposerError
from kernelwright.propose.search.proposer import SearchProposer

ROOT = Path(__file__).resolve().parent.parent
TASKS = sorted((ROOT / "tests" / "tasks_search").glob("*.py"))
NEEDS_MATMUL = {"linear_gelu"}


def _ctx(task: Path, **kw) -> ProposalContext:
    return ProposalContext(task.stem, task.read_text(), str(task), "cpu", **kw)


def _write_candidates(tmp_path: Path, n: int = 3) -> list[tuple[str, str, str]]:
    prop = SearchProposer(SearchConfig())
    pairs = []
    for task in TASKS:
        for i, cand in enumerate(prop.propose(_ctx(task), n)):
            out = tmp_path / f"{task.stem}_{i}.py"
            out.write_text(cand.source)
            pairs.append((str(task), str(out), cand.label))
    return pairs


def test_every_task_first_candidates_match_reference(tmp_path):
    pairs = _write_candidates(tmp_path)
    assert len(pairs) >= 2 * len(TASKS)
    env = dict(os.environ, TRITON_INTERPRET="1")
    args = [x for t, a, _ in pairs for x in (t, a)]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "test_search_runner.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(pairs), proc.stderr[-3000:]
    bad = [(r["task"], lbl, r.get("error"), r.get("trace", "")[-600:]) for r, (_, _, lbl) in zip(results, pairs)
           if not r["ok"]]
    assert not bad, bad


def test_candidates_are_distinct_points_and_resume(tmp_path):
    task = ROOT / "tests" / "tasks_search" / "softmax_dim1.py"
    prop = SearchProposer(SearchConfig())
    ctx = _ctx(task, run_dir=str(tmp_path))
    first = prop.propose(ctx, 1)
    second = prop.propose(ctx, 1)
    assert first and second and first[0].meta["point"] != second[0].meta["point"]
    # a fresh proposer over the same run dir does not repeat what was proposed before
    again = SearchProposer(SearchConfig()).propose(ctx, 8)
    seen = {tuple(first[0].meta["point"]), tuple(second[0].meta["point"])}
    assert all(tuple(c.meta["point"]) not in seen for c in again)


def test_rejected_config_is_not_proposed_again(tmp_path):
    task = ROOT / "tests" / "tasks_search" / "layernorm.py"
    prop = SearchProposer(SearchConfig())
    first = prop.propose(_ctx(task), 1)[0]
    rejected = Attempt(first.source, first.label, False, "smoke", "wrong result", meta=dict(first.meta))
    fresh = SearchProposer(SearchConfig())
    nxt = fresh.propose(_ctx(task, rejected=[rejected]), 4)
    assert nxt and all(c.meta["point"] != first.meta["point"] for c in nxt)


def test_uncovered_region_names_its_ops(tmp_path):
    task = tmp_path / "pool.py"
    task.write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n"
        "    def forward(self, x):\n        return torch.relu(torch.nn.functional.max_pool1d(x, 2))\n\n\n"
        "def get_inputs():\n    return [torch.randn(2, 3, 8)]\n\n\ndef get_init_inputs():\n    return []\n"
    )
    with pytest.raises(ProposerError, match="max_pool"):
        SearchProposer(SearchConfig()).propose(_ctx(task), 1)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=[t.stem for t in TASKS])
def test_first_candidate_passes_the_judge(task, tmp_path):
    from kernelwright.judge import check

    cand = SearchProposer(SearchConfig()).propose(_ctx(task), 1)[0]
    ans = tmp_path / "answer.py"
    ans.write_text(cand.source)
    v = check(str(task), str(ans), JudgeConfig(device="cpu", timeout_s=300))
    assert v.accepted, (v.stage, v.reason, v.log_tail[-1500:])


_TUNE_SCRIPT = """
import sys, time
sys.path.insert(0, "src")
from kernelwright.config import SearchConfig
from kernelwright.propose.search import tune
from kernelwright.propose.search.proposer import _capture_task, build_plan, render_point
task = sys.argv[1]
plan = build_plan(task, "cpu", SearchConfig())
t, model, inputs, _ = _capture_task(task)
def time_fn(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0
point, log = tune.tune_in_process(plan, t.init_inputs(seed=0), inputs, time_fn, per_region=3, rounds=2,
                                  render=render_point)
errors = [x["error"] for x in log if "error" in x]
timed = [x for x in log if "ms" in x]
assert not errors, errors
assert len(timed) >= 3 and len(point) == len(plan.regions), (point, log)
print("ok", point)
"""


def test_tune_in_process_builds_times_and_halves():
    """The bench tuner loads each rendered point as a real module file (Triton's @jit needs one),
    times every config once, then the faster half again."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    task = ROOT / "tests" / "tasks_search" / "layernorm.py"
    proc = subprocess.run([sys.executable, "-c", _TUNE_SCRIPT, str(task)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
