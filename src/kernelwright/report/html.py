"""DIR/report.html: one self-contained page (jinja2 template, plots inlined as base64 PNG) built only
from what the run wrote: pipeline.json (plan and ranking), ledger.sqlite (every experiment),
run.json (where each task stopped), end_to_end.json (the optimized model's verdict and timing)."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import plots

TEMPLATES = Path(__file__).with_name("templates")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def ledger_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every experiment, in id order; read-only, so a report can be drawn while a run goes on."""
    db = run_dir / "ledger.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM experiments ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _ceilings(rows: list[dict]) -> dict:
    for r in rows:
        try:
            t = json.loads(r.get("timing_json") or "{}")
        except json.JSONDecodeError:
            continue
        if t.get("ceiling_gbps") and t.get("ceiling_tflops"):
            return {"gbps": t["ceiling_gbps"], "tflops": t["ceiling_tflops"]}
    return {}


def _task_summaries(plan: dict, rows: list[dict], run: dict, run_dir: Path) -> list[dict]:
    stops = {name: t.get("stop_reason", "") for name, t in (run.get("tasks") or {}).items()} if isinstance(
        run.get("tasks"), dict) else {}
    out = []
    for t in plan.get("tasks", []):
        rs = [r for r in rows if r["task"] == t["name"]]
        acc = [r for r in rs if r.get("verdict") == "accepted"]
        timed = [r["speedup_eager"] for r in acc if r.get("speedup_eager")]
        out.append({
            **t,
            "experiments": len(rs),
            "accepted": len(acc),
            "best_speedup": max(timed) if timed else None,
            "winner": (run_dir / "kernels" / f"{t['name']}.py").exists(),
            "stop_reason": stops.get(t["name"], ""),
        })
    return out


def build_context(run_dir: Path) -> dict[str, Any]:
    plan = _json(run_dir / "pipeline.json")
    e2e = _json(run_dir / "end_to_end.json")
    run = _json(run_dir / "run.json")
    rows = ledger_rows(run_dir)
    device = plan.get("device") or e2e.get("device") or (rows[0]["device"] if rows else "unknown")
    timed = device == "cuda" and any(r.get("speedup_eager") for r in rows)
    return {
        "run_dir": str(run_dir),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "plan": plan,
        "name": plan.get("name", run_dir.name),
        "device": device,
        "timed": timed,
        "e2e": e2e,
        "tasks": _task_summaries(plan, rows, run, run_dir),
        "dropped": plan.get("dropped", []),
        "profile_rows": (plan.get("profile") or {}).get("rows", [])[:20],
        "rows": rows,
        "n_accepted": sum(r.get("verdict") == "accepted" for r in rows),
        "has_optimized": (run_dir / "model_optimized.py").exists(),
        "plot_progress": plots.progress(rows, timed),
        "plot_roofline": plots.roofline(rows, _ceilings(rows)) if timed else None,
        "plot_e2e": plots.end_to_end(e2e),
    }


def _fmt(x, spec: str = ".3f", none: str = "–") -> str:
    if x is None or x == "":
        return none
    try:
        return format(float(x), spec)
    except (TypeError, ValueError):
        return str(x)


def render(run_dir: Path) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a missing field fails loudly instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _fmt
    env.filters["pct"] = lambda x: _fmt(None if x is None else 100 * float(x), ".1f") + ("%" if x is not None else "")
    return env.get_template("report.html.j2").render(**build_context(Path(run_dir)))


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(run_dir))
    tmp.replace(path)
    return path
