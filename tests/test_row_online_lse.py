"""Row engine, looped mode: the online (one-sweep) max and sum-exp of softmax, log_softmax and
cross-entropy (rowengine.online_sums), against torch in float64 on awkward rows.

Rows of 300 with BLOCK_R=64 and ONE_PASS_MAX=0: five tiles, the last one partial, two rows per
program. The answers run under the Triton interpreter in a subprocess (TRITON_INTERPRET=1 must be
set before triton is imported). logsumexp's lowering (a guarded shift) is not the fused pattern and
must stay two-pass, and correct.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernelwright.config import SearchConfig
from kernelwright.propose.search import rowengine
from kernelwright.propose.search.proposer import build_plan, render_point

ROOT = Path(__file__).resolve().parent.parent
LOOP = {"ONE_PASS_MAX": 0, "BLOCK_O": 2, "BLOCK_R": 64, "TILE": 8192, "num_warps": 4}
STAT_SWEEP = "for r0 in range(0, R, BLOCK_R):"  # the looped kernel's sweeps (split's run over r_lo..r_hi)


def _task(body: str, inputs: str, args: str = "x") -> str:
    return textwrap.dedent(f'''
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Model(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, {args}):
                return {body}

        def get_inputs():
            return {inputs}

        def get_init_inputs():
            return []
    ''')


TASKS = {
    "softmax": _task("torch.softmax(x, dim=1)", "[torch.randn(12, 300)]"),
    "log_softmax": _task("torch.log_softmax(x, dim=-1)", "[torch.randn(12, 300)]"),
    "ce_mean": _task("F.cross_entropy(x, t)", "[torch.randn(12, 300), torch.randint(0, 300, (12,))]", "x, t"),
    "ce_sum": _task("F.cross_entropy(x, t, reduction='sum')",
                    "[torch.randn(12, 300), torch.randint(0, 300, (12,))]", "x, t"),
    "logsumexp": _task("torch.logsumexp(x, dim=1)", "[torch.randn(12, 300)]"),
}

# Runs one answer on rows of 300 (tiles of 64) against torch in float64; prints a JSON list of
# {"case", "ok", "why"}.
_RUN = r'''
import json, sys, torch
import torch.nn.functional as F
sys.path.insert(0, "src")
from kernelwright.task import load_module
kind, path = sys.argv[1], sys.argv[2]
ans = load_module(path, name="kw_online_lse_answer")
inf, nan = float("inf"), float("nan")
g = torch.Generator().manual_seed(0)
R = 300

def rows():
    x = torch.randn(12, R, generator=g)
    x[1] = 3 * x[1] + 1e4            # a naive sum of exp overflows
    x[2] = 3 * x[2] - 1e4            # ... or underflows to 0
    x[3] = 1e4 * x[3]                # spread over +-3e4
    x[4, 150] = inf                  # +inf in the middle tile
    x[5, 200] = nan
    x[6, :130] = -inf                # the first two tiles and part of the third all -inf
    x[7] = -inf                      # all -inf
    x[8] = -inf
    x[8, 299] = 5.0                  # the only finite value in the partial last tile
    x[9] = torch.linspace(-50, 50, R)  # the running max grows every tile
    x[10, 3] = inf                   # +inf in the first tile
    x[11] = torch.linspace(50, -50, R)
    return x

def close(got, want, scale=None):
    """NaN and inf where torch has them; elsewhere within 1e-5 of |want|, or of `scale` (the
    magnitude of the inputs, for a value that is a difference of two large ones)."""
    got, want = got.double(), want.double()
    scale = want.abs() if scale is None else torch.maximum(want.abs(), scale.double())
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
    gn, wn = torch.isnan(got), torch.isnan(want)
    if not torch.equal(gn, wn):
        return f"NaN at {gn.nonzero().tolist()[:8]}, torch at {wn.nonzero().tolist()[:8]}"
    gi, wi = torch.isinf(got), torch.isinf(want)
    if not torch.equal(gi, wi) or not torch.equal(got[gi], want[wi]):
        return f"inf at {gi.nonzero().tolist()[:8]}, torch at {wi.nonzero().tolist()[:8]}"
    f = ~(wn | wi)
    err = (got[f] - want[f]).abs()
    bad = err > 1e-5 + 1e-5 * scale[f]
    if bad.any():
        return f"{int(bad.sum())} values off, max abs err {float(err.max()):.3g}"
    return None

out = []
def check(case, got, want, scale=None):
    why = close(got, want, scale)
    out.append({"case": case, "ok": why is None, "why": why})

x = rows()
if kind in ("softmax", "log_softmax", "logsumexp"):
    fn = {"softmax": lambda t: torch.softmax(t, 1), "log_softmax": lambda t: torch.log_softmax(t, 1),
          "logsumexp": lambda t: torch.logsumexp(t, 1)}[kind]
    new = ans.ModelNew()
    with torch.no_grad():
        got = new(x)
    check("rows", got, fn(x.double()))
    for i in range(x.shape[0]):  # and row by row (one program, its second row masked off)
        with torch.no_grad():
            check(f"row {i}", new(x[i:i + 1].contiguous()), fn(x[i:i + 1].double()))
else:
    t = torch.randint(0, R, (12,), generator=g)
    t[2] = -100
    t[7] = -100                      # an all -inf row whose target is ignored: 0, not NaN
    t[6] = 10                        # the target's logit is -inf: the loss is +inf
    t[8] = 299
    rows_fn = next(getattr(ans, n) for n in dir(ans) if n.endswith("_ce_rows"))
    loss, valid = rows_fn(x, t)
    # log(S) + M - x[target] in fp32: M - x[target] of rows around 1e4 is off by an ulp of 1e4,
    # in the two-pass kernel as well
    mag = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).abs().amax(1)
    check("per-row losses", loss, F.cross_entropy(x.double(), t, reduction="none"), mag)
    check("valid flags", valid, (t != -100).double())
    red = "mean" if kind == "ce_mean" else "sum"
    new = ans.ModelNew()
    finite = [0, 1, 2, 3, 7, 8, 9, 11]  # no NaN, no inf loss; 2 and 7 ignored
    for case, idx in [("finite rows", finite), ("with +inf", finite + [4]), ("with nan", finite + [5]),
                      ("with +inf in the first tile", finite + [10]), ("target logit -inf", finite + [6]),
                      ("all ignored", [2, 7])]:
        xs, ts = x[idx].contiguous(), t[idx].contiguous()
        with torch.no_grad():
            got = new(xs, ts)
        check(case, got, F.cross_entropy(xs.double(), ts, reduction=red))
print(json.dumps(out))
'''


def _render(tmp_path: Path, kind: str, config: dict | None = LOOP):
    task = tmp_path / f"task_{kind}.py"
    task.write_text(TASKS[kind])
    plan = build_plan(str(task), "cpu", SearchConfig())
    assert len(plan.regions) == 1, [rp.region.describe() for rp in plan.regions]
    if config is not None:
        plan.regions[0].configs[0] = dict(config)
    src, _ = render_point(plan, (0,))
    ans = tmp_path / f"answer_{kind}.py"
    ans.write_text(src)
    return plan, src, ans


def _run(kind: str, ans: Path) -> list[dict]:
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _RUN, kind, str(ans)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# the looped kernel's sweeps over R: statistics sweeps, then the store sweep of full-level outputs
SWEEPS = {"softmax": 2, "log_softmax": 2, "ce_mean": 1, "ce_sum": 1, "logsumexp": 2}


def _parts(src: str) -> tuple[list[str], list[str], list[str]]:
    """The answer's lines before the row kernel's looped branch, the branch, and after it (the
    split kernel, the launchers)."""
    lines = src.splitlines()
    j = lines.index("    else:", lines.index("    if ONE_PASS:"))
    k = lines.index("", j)  # the kernel has no blank line
    return lines[:j], lines[j:k], lines[k:]


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_looped_kernel_sweeps(kind, tmp_path, monkeypatch):
    plan, src, _ = _render(tmp_path, kind)
    spec = plan.regions[0].match.spec["row"]
    fused = kind != "logsumexp"
    assert len(rowengine.online_sums(spec)) == (1 if fused else 0)
    assert src.count(STAT_SWEEP) == SWEEPS[kind], src
    assert ("_alpha" in src) == fused
    # only the looped branch changes: the one-pass branch and the split kernel are as before
    monkeypatch.setattr(rowengine, "online_sums", lambda spec: {})
    _, before, _ = _render(tmp_path, kind)
    (h0, loop0, t0), (h1, loop1, t1) = _parts(before), _parts(src)
    assert h0 == h1 and t0 == t1
    assert (loop0 != loop1) == fused
    assert before.count(STAT_SWEEP) == SWEEPS[kind] + fused


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_looped_matches_torch_float64(kind, tmp_path):
    _, _, ans = _render(tmp_path, kind)
    results = _run(kind, ans)
    assert results and all(r["ok"] for r in results), [r for r in results if not r["ok"]]


def test_one_pass_config_still_matches_on_the_same_rows(tmp_path):
    """The awkward rows through the one-pass branch (R=300 fits BLOCK_R=512), as a baseline the
    looped branch must agree with."""
    _, src, ans = _render(tmp_path, "log_softmax", {"ONE_PASS_MAX": 1024, "BLOCK_O": 2, "BLOCK_R": 64, "TILE": 8192,
                                                     "num_warps": 4})
    results = _run("log_softmax", ans)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]


BIG = {
    "ce": _task("F.cross_entropy(x, t)", "[torch.randn(64, 32768), torch.randint(0, 32768, (64,))]", "x, t"),
    "softmax": _task("torch.softmax(x, dim=1)", "[torch.randn(64, 32768)]"),
    "logsumexp": _task("torch.logsumexp(x, dim=1)", "[torch.randn(64, 32768)]"),
}


@pytest.mark.parametrize("kind,fused_passes,two_pass", [("ce", 1, 2), ("softmax", 2, 3), ("logsumexp", 2, 2)])
def test_estimate_counts_the_fused_sum_as_no_sweep(kind, fused_passes, two_pass, tmp_path, monkeypatch):
    """The roofline model (cuda device spec, nothing runs): a looped config of cross-entropy reads
    the logits once, softmax twice (statistics, then the store); split configs are unchanged."""
    from kernelwright.propose.search.family import families
    from kernelwright.propose.search.tune import region_traffic

    task = tmp_path / f"task_big_{kind}.py"
    task.write_text(BIG[kind])
    plan = build_plan(str(task), "cuda", SearchConfig())
    (rp,) = plan.regions
    fam = next(f for f in families() if f.name == rp.match.family)
    numel, nbytes = region_traffic(rp.region, plan.captured)
    looped = {"ONE_PASS_MAX": 4096, "BLOCK_O": 1, "BLOCK_R": 4096, "TILE": 16384, "num_warps": 8}
    split = dict(looped, SPLIT_BELOW_M=264, SPLIT_PROGRAMS=528)

    def est(cfg):
        return fam.estimate(rp.match, cfg, plan.device, numel, nbytes) - 4e-6

    t_loop, t_split = est(looped), est(split)
    monkeypatch.setattr(rowengine, "online_sums", lambda spec: {})  # the model without the fusion
    assert est(looped) / t_loop == pytest.approx(two_pass / fused_passes)
    assert est(split) == pytest.approx(t_split)
    spec = rp.match.spec["row"]
    store = 1 if any(o.level == "full" for o in spec.outputs) else 0
    monkeypatch.undo()
    assert rowengine.looped_sweeps(spec) + store == fused_passes
