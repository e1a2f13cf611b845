"""The pipeline's parts on the CPU, without the loop or the judge: budget parsing, Amdahl ranking,
task extraction (each task reproduces its region on the model's real values), and the runtime
rewrite (every region swapped for its task's own reference still computes the model, at other shapes too)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from kernelwright.api import parse_budget
from kernelwright.errors import UsageError
from kernelwright.profile.rank import amdahl, class_of_ops, combined, op_class

MODEL_SRC = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

B, S, D = 3, 5, 12


class Norm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.n1, self.n2 = Norm(d), Norm(d)
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, d))

    def forward(self, x):
        h = F.gelu(self.up(self.n1(x)))
        x = x + self.down(h)
        y = self.n2(x) * self.scale
        return torch.softmax(y, dim=-1), x.sum(-1)


def get_inputs():
    return [torch.randn(B, S, D)]


def get_init_inputs():
    return [D]
'''


def test_parse_budget():
    assert parse_budget("90s") == 90
    assert parse_budget("30m") == 1800
    assert parse_budget("8h") == 8 * 3600
    assert parse_budget("1h30m") == 5400
    assert parse_budget("45") == 45
    for bad in ("", "8x", "h", "-3m", "0s", "1h and more"):
        with pytest.raises(UsageError):
            parse_budget(bad)


def test_amdahl_and_classes():
    assert amdahl(0.5, 2.0) == pytest.approx(1 / (0.5 + 0.25))
    assert amdahl(0.0, 5.0) == 1.0
    assert amdahl(1.0, 3.0) == pytest.approx(3.0)
    # combined over disjoint parts equals the single-part law when there is one part
    assert combined([(0.3, 1.5)]) == pytest.approx(amdahl(0.3, 1.5))
    assert combined([(0.3, 2.0), (0.2, 4.0)]) == pytest.approx(1 / (0.5 + 0.15 + 0.05))
    # a bigger share or a bigger prior never predicts less
    assert amdahl(0.4, 1.5) > amdahl(0.2, 1.5) and amdahl(0.4, 2.0) > amdahl(0.4, 1.5)
    assert op_class("aten::addmm") == "matmul" and op_class("aten.softmax.int") == "softmax"
    assert op_class("aten.gelu.default") == "pointwise"
    assert class_of_ops(["aten.linear.default", "aten.gelu.default"]) == "matmul"


def _plan(tmp_path: Path):
    from kernelwright.extract.emit import emit_tasks, placeholder_args, value_stats
    from kernelwright.extract.graph import capture
    from kernelwright.extract.regions import partition
    from kernelwright.task import load_task

    f = tmp_path / "model.py"
    f.write_text(MODEL_SRC)
    task = load_task(f)
    model = task.build_model(task.init_inputs())
    x = task.inputs()
    cap = capture(model, x)
    regions = partition(cap)
    args = placeholder_args(cap, model, x)
    stats = value_stats(cap, args, {a.name for r in regions for a in r.inputs})
    tasks, emitted = emit_tasks(cap, regions, stats, tmp_path / "tasks", "m")
    return f, task, model, x, cap, regions, args, tasks, emitted


def test_emitted_tasks_reproduce_their_regions(tmp_path):
    """Each task's Model, given the region's real inputs and the model's real weights, returns
    exactly what the region computed inside the model."""
    from torch import fx

    from kernelwright.task import load_task

    f, task, model, x, cap, regions, args, tasks, emitted = _plan(tmp_path)
    assert len(tasks) >= 3
    values: dict[str, object] = {}

    class Rec(fx.Interpreter):
        def run_node(self, n):
            values[n.name] = super().run_node(n)
            return values[n.name]

    with torch.no_grad():
        Rec(cap.gm).run(*args)
    by_name = {t.name: t for t in tasks}
    checked = 0
    for er, region in zip(emitted, regions):
        if not er.task:
            continue
        t = load_task(by_name[er.task].path)
        assert t.init_inputs() == [] and t.size_constants == {}  # shapes are literal: the model's own
        m = t.build_model([])
        acts, weights = [], {}
        for role, node in zip(er.inputs, [a for a in region.inputs if isinstance(values.get(a.name), torch.Tensor)]):
            v = values[node.name]
            if role.weight:
                weights[role.weight] = v
            else:
                acts.append(v)
        assert set(weights) == set(dict(m.named_parameters()) | dict(m.named_buffers()))
        for name, w in weights.items():  # declared at the real shape and dtype
            own = m.get_parameter(name) if name in dict(m.named_parameters()) else m.get_buffer(name)
            assert own.shape == w.shape and own.dtype == w.dtype
        with torch.no_grad():
            out = torch.func.functional_call(m, weights, tuple(acts))
        outs = out if isinstance(out, tuple) else (out,)
        assert len(outs) == len(region.outputs)
        for o, node in zip(outs, region.outputs):
            torch.testing.assert_close(o, values[node.name], rtol=0, atol=0)
        checked += 1
    assert checked == sum(len(t.instances) for t in tasks)
    # identical norms at identical shapes would be merged; every instance is listed
    assert sorted(i for t in tasks for i in t.instances) == [e.region_index for e in emitted if e.task]


def test_runtime_rewrite_with_reference_winners(tmp_path):
    """Swap every region for its own task's reference (an answer that is the task's Model): the
    rewritten model must equal the original, at the capture's shapes and at others."""
    from kernelwright.integrate import runtime
    from kernelwright.integrate.swap import load_optimized, render, forward_signature
    from kernelwright.profile.plan import PLAN_VERSION
    from dataclasses import asdict

    f, task, model, x, cap, regions, args, tasks, emitted = _plan(tmp_path)
    kernels = tmp_path / "kernels"
    kernels.mkdir()

    @dataclass
    class Outcome:
        best_path: Path | None
        best_speedup: float | None = None  # nothing timed (cpu)

    outcomes = {}
    for t in tasks:  # a "winner" that is the region's own torch code, renamed ModelNew
        p = kernels / f"{t.name}.py"
        p.write_text(t.path.read_text() + "\n\nModelNew = Model\n")
        outcomes[t.name] = Outcome(p)
    plan = {"version": PLAN_VERSION, "mode": "model", "name": "m", "target": str(f), "capture": {"dynamic": cap.dynamic},
            "regions": [asdict(e) for e in emitted], "tasks": []}
    live = load_optimized(plan, outcomes, tmp_path, model)
    assert list(live.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        for inp in (x, [torch.randn(2, 7, 12)], [torch.randn(1, 1, 12)]):
            ref, got = model(*inp), live(*inp)
            for a, b in zip(ref, got):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        # each region really went through the rewrite: the cached graph calls one function per region
        gm = next(iter(live._kw_runtime.fast.values()))[0]
        calls = [n for n in gm.graph.nodes if n.op == "call_function" and getattr(n.target, "__name__", "").startswith("kw_")]
        assert len(calls) == sum(1 for e in emitted if e.task)
        # one export serves both sizes >= 2; size 1 is specialized by export, so it gets its own
        exports = sum(len(v) for v in live._kw_runtime.shared.values())
        assert exports == (2 if cap.dynamic else 3)
        # and a reused graph is right at yet another size
        xi = [torch.randn(4, 3, 12)]
        for a, b in zip(model(*xi), live(*xi)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert sum(len(v) for v in live._kw_runtime.shared.values()) == exports
    # the file form: standalone (no kernelwright import), same state_dict keys, same outputs
    params, call = forward_signature(type(model).forward)
    src = render(plan, outcomes, f.read_text(), {t.name: outcomes[t.name].best_path for t in tasks}, params, call)
    assert "import kernelwright" not in src and "from kernelwright" not in src
    p = tmp_path / "model_optimized.py"
    p.write_text(src)
    from kernelwright.task import load_module

    mod = load_module(p)
    new = mod.ModelNew(12)
    new.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for a, b in zip(model(*x), new(*x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_runtime_refuses_a_graph_that_changed(tmp_path):
    """A plan naming an op the traced graph does not have raises instead of running the original."""
    from kernelwright.integrate.runtime import kw_rewrite, _kw_export, _kw_placeholder_roles

    f, task, model, x, cap, regions, args, tasks, emitted = _plan(tmp_path)
    ep = _kw_export(model, x, cap.dynamic)
    spec = {"region_index": 0, "nodes": [["aten.cumsum.default#0", "cumsum"]], "inputs": [], "outputs": ["aten.cumsum.default#0"]}
    with pytest.raises(RuntimeError, match="differs from the one that was optimized"):
        kw_rewrite(ep.graph_module, _kw_placeholder_roles(ep), [(spec, lambda *a: a)])


def test_only_answers_faster_than_eager_are_wired_in_where_timed(tmp_path):
    """An accepted answer measured slower than eager (the loop's first incumbent can be) must not
    replace its region; on a CPU (nothing timed) every accepted answer is wired in."""
    from kernelwright.integrate.swap import is_winner, runtime_plan
    from kernelwright.loop.run import TaskOutcome

    k = tmp_path / "k.py"
    k.write_text("")
    slow = TaskOutcome("slow", k, 0.77, 8, 8, "budget")
    fast = TaskOutcome("fast", k, 1.30, 8, 8, "budget")
    cpu = TaskOutcome("cpu", k, None, 1, 1, "budget")
    none = TaskOutcome("none", None, None, 3, 0, "budget")
    assert [is_winner(o) for o in (slow, fast, cpu, none)] == [False, True, True, False]
    plan = {"regions": [{"region_index": i, "task": n, "nodes": [], "inputs": [], "outputs": []}
                        for i, n in enumerate(["slow", "fast", "cpu", "none"])]}
    rp = runtime_plan(plan, {o.name: o for o in (slow, fast, cpu, none)})
    assert [r["task"] for r in rp["regions"]] == ["fast", "cpu"]
