"""Run answer files against their tasks under the Triton interpreter (a subprocess helper for
tests/test_search_*.py; TRITON_INTERPRET=1 must be set before triton is imported).

    python tests/test_search_runner.py TASK ANSWER [TASK ANSWER ...]
prints one JSON line per pair: {"task", "ok", "max_err", "error"}.
"""
import json
import sys
import traceback

import torch

sys.path.insert(0, "src")
from kernelwright.task import load_module, load_task  # noqa: E402


def run_pair(task_path: str, answer_path: str) -> dict:
    task = load_task(task_path)
    ans = load_module(answer_path, name="kw_answer_" + str(abs(hash(answer_path))))
    worst = 0.0
    for seed in (0, 1):
        init = task.init_inputs(seed=seed)
        ref = task.build_model(init, seed=seed)
        torch.manual_seed(seed)
        new = ans.ModelNew(*init)
        new.load_state_dict(ref.state_dict())
        inputs = task.inputs(seed=seed)
        with torch.no_grad():
            want = ref(*inputs)
            got = new(*inputs)
        want = want if isinstance(want, (list, tuple)) else [want]
        got = got if isinstance(got, (list, tuple)) else [got]
        if len(want) != len(got):
            return {"ok": False, "error": f"{len(got)} outputs, expected {len(want)}"}
        for w, g in zip(want, got):
            if g.shape != w.shape or g.dtype != w.dtype:
                return {"ok": False, "error": f"shape/dtype {tuple(g.shape)} {g.dtype} vs {tuple(w.shape)} {w.dtype}"}
            if not w.is_floating_point():
                if not torch.equal(w, g):
                    return {"ok": False, "error": "integer output differs"}
                continue
            err = (g.double() - w.double()).abs()
            bad = err > 1e-4 + 1e-4 * w.double().abs()
            bad &= ~(torch.isnan(w) & torch.isnan(g))
            worst = max(worst, float(torch.nan_to_num(err, nan=0.0).max()) if err.numel() else 0.0)
            if bad.any():
                return {"ok": False, "max_err": worst, "error": f"{int(bad.sum())} elements outside 1e-4"}
        for k, v in ref.state_dict().items():  # buffers the forward updates (BatchNorm running stats)
            if v.is_floating_point() and not torch.allclose(v, new.state_dict()[k], atol=1e-5, rtol=1e-5):
                return {"ok": False, "error": f"buffer {k} differs after forward"}
    return {"ok": True, "max_err": worst}


if __name__ == "__main__":
    args = sys.argv[1:]
    for t, a in zip(args[::2], args[1::2]):
        try:
            res = run_pair(t, a)
        except Exception as exc:
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
        res["task"] = t
        print(json.dumps(res), flush=True)
