"""Helpers for the matmul and attention family tests (no tests here).

`answer_for(task)` captures a tiny task, matches every region through the family registry,
renders each with one config and assembles an answer file exactly as the search proposer does.
`run_cases(cases)` executes answers under the Triton CPU interpreter in ONE subprocess
(TRITON_INTERPRET must be set before triton is imported) and returns, per case, the max error
against a float64 reference of the task's Model and a few invariants.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks_matmul"
# KernelBench-style tolerances (atol = rtol) against a float64 reference.
TOL = {"float32": 1e-4, "float16": 1e-2}


def answer_for(task_path: str | Path, config: int | dict = 0, merge: bool = False) -> tuple[str, list]:
    """(answer source, matches). config: an index into each family's cpu configs, or one dict
    used for every region. merge=True hands the whole graph over as ONE region anchored at its
    first matmul (how a row-softmax epilogue reaches the matmul family)."""
    from kernelwright.extract.regions import Region, partition
    from kernelwright.propose.search.family import device_spec, families, match_region
    from kernelwright.propose.search.render import assemble
    task, cap = _captured(str(task_path))
    regions = partition(cap)
    if merge:
        nodes = [n for r in regions for n in r.nodes]
        inside = set(nodes)
        inputs = []
        for n in nodes:
            for a in n.all_input_nodes:
                if a not in inside and a not in inputs:
                    inputs.append(a)
        returned = set(next(n for n in cap.graph.nodes if n.op == "output").all_input_nodes)
        outputs = [n for n in nodes if n in returned or any(u not in inside for u in n.users)]
        regions = [Region("matmul", nodes, inputs, outputs, [str(n.target) for n in nodes], anchor=regions[0].anchor)]
    fams = {f.name: f for f in families()}
    parts, matches = [], []
    for k, r in enumerate(regions):
        m, why = match_region(r, cap)
        if m is None:
            raise AssertionError(f"no family matched {r.describe()}: {why}")
        fam = fams[m.family]
        cfgs = fam.configs(m, device_spec("cpu"))
        cfg = config if isinstance(config, dict) else cfgs[config % len(cfgs)]
        parts.append((r, fam.render(m, cfg, f"k{k}"), f"k{k}: {m.label}"))
        matches.append(m)
    return assemble(task.source, task.module.Model, cap, parts, f"test answer for {task.name}"), matches


@lru_cache(maxsize=None)
def _captured(task_path: str):
    """The task and its captured graph at its own (tiny) sizes; answers run at any size."""
    from kernelwright.extract.graph import capture
    from kernelwright.task import load_task

    task = load_task(task_path)
    model = task.build_model(task.init_inputs(seed=0), seed=0)
    return task, capture(model, task.inputs(seed=0))


def run_cases(cases: list[dict], timeout: float = 600) -> list[dict]:
    """cases: {"task", "config" (index or dict), "dtype", "overrides" (size constants), "merge"}."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, __file__, json.dumps(cases)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if proc.returncode != 0:
        raise AssertionError(f"worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_case(case: dict) -> dict:
    import types

    import torch

    from kernelwright.task import load_task

    dtype = getattr(torch, case.get("dtype", "float32"))
    task = load_task(case["task"])
    src, matches = answer_for(case["task"], case.get("config", 0), case.get("merge", False))
    mod = types.ModuleType("answer_under_test")
    exec(compile(src, "answer.py", "exec"), mod.__dict__)
    overrides = case.get("overrides") or None
    init = task.init_inputs(overrides, seed=0)
    ref = task.build_model(init, seed=1)
    new = mod.ModelNew(*init)
    new.load_state_dict(ref.state_dict())
    new = new.to(dtype)
    xs = [x.to(dtype) if torch.is_tensor(x) and x.is_floating_point() else x for x in task.inputs(overrides, seed=2)]
    with torch.no_grad():
        # float64 reference on the same (rounded) parameters and inputs the answer sees
        ref = ref.to(dtype).double()
        expect = ref(*[x.double() if torch.is_tensor(x) and x.is_floating_point() else x for x in xs])
        got = new(*xs)
        again = new(*xs)
    err = (got.double() - expect).abs()
    bound = TOL[case.get("dtype", "float32")] * (1 + expect.abs())
    return {
        "task": Path(case["task"]).name,
        "families": [m.family for m in matches],
        "labels": [m.label for m in matches],
        "shape": list(got.shape),
        "expect_shape": list(expect.shape),
        "dtype": str(got.dtype),
        "max_abs_err": err.max().item() if err.numel() else 0.0,
        "within_tol": bool((err <= bound).all()),
        "finite": bool(torch.isfinite(got).all()),
        "deterministic": bool(torch.equal(got, again)),
        "row_sums": got.double().sum(-1).flatten().tolist()[:64],
        "min": got.min().item() if got.numel() else 0.0,
        "source": src,
    }


if __name__ == "__main__":
    print(json.dumps([_run_case(c) for c in json.loads(sys.argv[1])]))
