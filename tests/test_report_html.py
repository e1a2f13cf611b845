"""report.html from a run directory: built only from the files a run writes, self-contained, every
experiment listed, plots inlined; a CPU run says nothing was timed, a GPU run shows its figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kernelwright.loop.ledger import Ledger, dumps
from kernelwright.report.html import build_context, write_report

PLAN = {
    "version": 1, "mode": "model", "name": "toy", "target": "toy.py", "device": "cuda", "time_source": "gpu",
    "profile": {"total_ms": 2.0, "rows": [
        {"op": "aten::mm", "shapes": "[[64, 64], [64, 64]]", "ms": 1.2, "calls": 2, "share": 0.6,
         "op_class": "matmul", "kernels": ["sm90_xmma_gemm"]},
        {"op": "aten::_softmax", "shapes": "[[64, 64], [], []]", "ms": 0.8, "calls": 1, "share": 0.4,
         "op_class": "softmax", "kernels": ["softmax_warp_forward"]}]},
    "tasks": [
        {"name": "toy_00_matmul", "path": "tasks/toy_00_matmul.py", "kind": "matmul", "ops": ["aten.mm.default"],
         "instances": [0, 2], "share": 0.6, "prior": 1.1, "predicted_gain": 1.058},
        {"name": "toy_01_softmax", "path": "tasks/toy_01_softmax.py", "kind": "softmax", "ops": ["aten._softmax.default"],
         "instances": [1], "share": 0.4, "prior": 1.7, "predicted_gain": 1.198}],
    "dropped": [{"name": "toy_02_pointwise", "path": "tasks/toy_02_pointwise.py", "kind": "pointwise",
                 "ops": ["aten.add.Tensor"], "instances": [3], "share": 0.004, "prior": 1.6, "predicted_gain": 1.0015,
                 "skipped": "share 0.4% below min_share 1%"}],
    "regions": [], "notes": [], "predicted_speedup": 1.27,
}


def _row(task, verdict, decision, speedup=None, **kw):
    timing = {"ceiling_gbps": 3000.0, "ceiling_tflops": 700.0}
    return {"task": task, "proposer": "search", "label": f"{task} cfg", "source_hash": "0" * 16, "verdict": verdict,
            "decision": decision, "stage": "integrity" if verdict == "accepted" else "sweep", "device": "cuda",
            "speedup_eager": speedup, "speedup_compile": speedup and speedup / 1.3, "timing_json": dumps(timing),
            "error": "" if verdict == "accepted" else "max abs err 3.1e-2 > tol " + "x" * 200, **kw}


def _gpu_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "pipeline.json").write_text(json.dumps(PLAN))
    led = Ledger.open(run)
    led.record(_row("toy_00_matmul", "accepted", "kept", 1.05, gbps=900.0, tflops=300.0, pct_ceiling=0.43, bound="compute"))
    led.record(_row("toy_00_matmul", "rejected", ""))
    led.record(_row("toy_00_matmul", "accepted", "kept", 1.12, gbps=950.0, tflops=330.0, pct_ceiling=0.47, bound="compute"))
    led.record(_row("toy_01_softmax", "accepted", "kept", 1.6, gbps=2600.0, tflops=0.0, pct_ceiling=0.87, bound="memory"))
    led.record(_row("toy_01_softmax", "accepted", "reverted", 1.4, gbps=2300.0, tflops=0.0, pct_ceiling=0.77, bound="memory"))
    led.close()
    (run / "kernels").mkdir()
    (run / "kernels" / "toy_01_softmax.py").write_text("# winner\n")
    (run / "end_to_end.json").write_text(json.dumps({
        "device": "cuda", "mode": "model", "kernels": 2, "tasks": 2, "check": "accepted", "check_seconds": 12.0,
        "predicted_speedup": 1.27, "predicted_from_measured": 1.21, "timing": "measured", "timing_mode": "events",
        "gpu": "NVIDIA H100 80GB HBM3", "answer_ms": 1.7, "baseline_ms": {"eager": 2.0, "compile": 1.8},
        "speedup_vs_eager": 2.0 / 1.7, "speedup_vs_compile": 1.8 / 1.7,
        "answer_wall_ms": 1.6, "baseline_wall_ms": {"eager": 2.08, "compile": 1.8},
        "speedup_back_to_back": {"eager": 1.3, "compile": 1.125}, "host_ms": {"answer": 0.4}}))
    return run


def test_gpu_run_report(tmp_path):
    run = _gpu_run(tmp_path)
    ctx = build_context(run)
    assert ctx["timed"] and len(ctx["rows"]) == 5
    assert ctx["plot_progress"] and ctx["plot_roofline"] and ctx["plot_e2e"]
    by = {t["name"]: t for t in ctx["tasks"]}
    assert by["toy_00_matmul"]["best_speedup"] == 1.12 and by["toy_00_matmul"]["accepted"] == 2
    assert by["toy_01_softmax"]["winner"] and not by["toy_00_matmul"]["winner"]
    html = write_report(run).read_text()
    assert html.count('<tr class="') == 5  # every experiment
    assert "Nothing was timed" not in html
    assert "1.18x" in html and "1.21x" in html and "1.27x" in html  # measured beside both Amdahl figures
    assert "1.30x" in html and "back to back vs eager" in html  # the same run's back-to-back figure
    assert "below min_share" in html  # the dropped target is listed with why
    assert "<details>" in html  # long errors fold
    assert "http://" not in html and "https://" not in html and html.count("data:image/png;base64,") == 3


def test_cpu_run_report_says_nothing_timed(tmp_path):
    run = tmp_path / "cpu"
    run.mkdir()
    plan = dict(PLAN, device="cpu", time_source="cpu")
    (run / "pipeline.json").write_text(json.dumps(plan))
    led = Ledger.open(run)
    led.record({"task": "toy_00_matmul", "proposer": "search", "label": "a", "verdict": "accepted",
                "decision": "kept", "stage": "integrity", "device": "cpu"})
    led.record({"task": "toy_01_softmax", "proposer": "search", "label": "b", "verdict": "error",
                "decision": "", "stage": "propose", "device": "cpu", "error": "no template"})
    led.close()
    html = write_report(run).read_text()
    assert "Nothing was timed" in html and "nothing is timed on a CPU run" in html
    assert html.count('<tr class="') == 2


def test_report_command(tmp_path):
    run = _gpu_run(tmp_path)
    r = subprocess.run([sys.executable, "-m", "kernelwright.cli", "report", str(run)], capture_output=True, text=True,
                       env=os.environ, timeout=300)
    assert r.returncode == 0 and (run / "report.html").exists(), r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "kernelwright.cli", "report", str(tmp_path / "nothing")],
                       capture_output=True, text=True, env=os.environ, timeout=300)
    assert r.returncode == 2
