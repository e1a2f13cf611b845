"""kernelwright.optimize() on a live module (no task file): the result's .model is a drop-in
replacement (same state_dict keys, shared weights, same outputs at other shapes, running the
winning kernels) and .report_path is the HTML report. Run in a subprocess: the kernels need the
Triton interpreter, which must be chosen before triton is imported."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import sys, torch, torch.nn as nn
    import kernelwright

    class TinyNet(nn.Module):  # defined here, in no task file
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(16, 32)
            self.out = nn.Linear(32, 16)

        def forward(self, x):
            return self.out(torch.relu(self.proj(x))) + x

    torch.manual_seed(0)
    net = TinyNet()
    x = torch.randn(3, 5, 16)
    res = kernelwright.optimize(net, [x], budget="20m", device="cpu", out=sys.argv[1], max_experiments=3)
    assert res.report_path.exists() and res.report_path.name == "report.html"
    assert res.model_optimized_path is None  # no task file to write an answer for
    won = [n for n, o in res.outcomes.items() if o.best_path is not None]
    assert won, res.outcomes
    new = res.model
    assert new is not net and isinstance(new, TinyNet)
    assert list(new.state_dict()) == list(net.state_dict())
    assert new.proj.weight is net.proj.weight  # weights shared, not copied
    with torch.no_grad():
        for shape in [(3, 5, 16), (2, 9, 16)]:
            xi = torch.randn(*shape)
            torch.testing.assert_close(new(xi), net(xi), rtol=1e-4, atol=1e-5)
    # the kernels really run: the cached graph calls one kernel per region that has a winner
    gm = next(iter(new._kw_runtime.fast.values()))[0]
    calls = [n for n in gm.graph.nodes if n.op == "call_function" and n.target.__name__.startswith("kw_")]
    assert len(calls) >= 1
    print("api-ok", res.end_to_end["check"])
''')


@pytest.mark.slow
def test_optimize_api_live_module(tmp_path):
    script = tmp_path / "api.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0 and "api-ok" in r.stdout, (r.stdout[-3000:], r.stderr[-5000:])
    assert "in-process comparison" in r.stdout
