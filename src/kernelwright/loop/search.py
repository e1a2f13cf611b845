"""The search tree over one task's candidates, read straight from the ledger.

Every ledger row is a node; `parent` links a candidate to the node that was expanded to get it
(empty: the root, i.e. the task itself). Each round expands a few parents: the fastest measured
nodes, plus the best node of a family not chosen yet (diversity), plus the root while the tree
has fewer good nodes than the beam. What a proposer is told about a parent (its source, its
children's results, the rejected children's stage and message, a roofline diagnosis) is built
here from rows, so a resumed run sees exactly what the original saw.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from ..config import LoopConfig
from ..propose.base import Attempt, ProposalContext

ROOT = 0  # node key of the root (ledger ids start at 1)
Row = dict[str, Any]


def meta_of(row: Row) -> dict[str, Any]:
    try:
        meta = json.loads(row.get("meta_json") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def family(row: Row) -> str:
    """What counts as "the same idea" for diversity: the candidate's family (meta "family", or the
    search proposer's per-region "families"), else the head of its label ("softmax/looped ...")."""
    meta = meta_of(row)
    fam = meta.get("family") or "+".join(map(str, meta.get("families") or []))
    if fam:
        return f"{row['proposer']}:{fam}"
    return f"{row['proposer']}:{(row.get('label') or '').split('/')[0].split(' ')[0]}"


def expandable(rows: list[Row], device: str) -> list[Row]:
    """Nodes worth expanding: correct answers, and on cuda only those timed cleanly."""
    if device == "cpu":
        return [r for r in rows if r["verdict"] == "accepted"]
    return [r for r in rows if r["verdict"] == "accepted" and r["decision"] in ("kept", "reverted")]


def speed_key(row: Row) -> tuple[int, float, int]:
    """Fastest first. The speedup vs eager is a ratio taken inside one timing run, so it survives
    drift between runs better than an absolute median; untimed nodes (cpu) keep their order."""
    if row.get("speedup_eager") is not None:
        return (0, -row["speedup_eager"], int(row["id"]))
    if row.get("median_ms") is not None:
        return (1, row["median_ms"], int(row["id"]))
    return (2, 0.0, int(row["id"]))


def choose_parents(rows: list[Row], device: str, cfg: LoopConfig, exhausted: set[int]) -> list[int]:
    """Up to beam_width node keys to expand this round (ROOT for the root), best first."""
    nodes = sorted((r for r in expandable(rows, device) if r["id"] not in exhausted), key=speed_key)
    by_speed = max(0, cfg.beam_width - cfg.diversity_slots)
    chosen = nodes[:by_speed]
    families = {family(r) for r in chosen}
    for r in nodes:  # diversity: the best node of each family not yet in the beam
        if len(chosen) >= cfg.beam_width:
            break
        if r not in chosen and family(r) not in families:
            chosen.append(r)
            families.add(family(r))
    for r in nodes:  # no new family left: fill the beam by speed
        if len(chosen) >= cfg.beam_width:
            break
        if r not in chosen:
            chosen.append(r)
    keys = [int(r["id"]) for r in chosen]
    if len(keys) < cfg.beam_width and ROOT not in exhausted:
        keys.append(ROOT)
    return keys


def attempt(row: Row, read_source: Callable[[str | None], str]) -> Attempt:
    meta = meta_of(row)
    for k in ("decision", "pct_ceiling", "gbps", "tflops", "bound", "speedup_compile", "speedup_max_autotune"):
        if row.get(k) not in (None, ""):
            meta[k] = row[k]
    return Attempt(
        source=read_source(row.get("source_hash")),
        label=row.get("label") or "",
        accepted=row["verdict"] == "accepted",
        stage=row.get("stage") or "",
        message=row.get("error") or "",
        speedup=row.get("speedup_eager"),
        median_ms=row.get("median_ms"),
        meta=meta,
    )


def diagnosis(row: Row | None, device: str) -> str:
    """A one-line roofline reading of the parent, from its timing; the proposer's starting point."""
    if device == "cpu":
        return "cpu: correctness only (Triton interpreter); nothing is timed, so no speed diagnosis"
    if row is None or row.get("median_ms") is None:
        return ""
    parts = [f"median {row['median_ms']:.4g} ms"]
    if row.get("pct_ceiling") is not None:
        parts.append(f"{row.get('bound') or 'unknown'}-bound at {100 * row['pct_ceiling']:.0f}% of the measured ceiling")
    if row.get("gbps") is not None:
        parts.append(f"{row['gbps']:.0f} GB/s")
    if row.get("tflops") is not None:
        parts.append(f"{row['tflops']:.1f} TFLOP/s")
    for name, col in (("eager", "speedup_eager"), ("torch.compile", "speedup_compile"),
                      ("max-autotune", "speedup_max_autotune")):
        if row.get(col) is not None:
            parts.append(f"{row[col]:.2f}x vs {name}")
    return "; ".join(parts)


def context(
    *,
    task_name: str,
    task_source: str,
    task_path: str,
    device: str,
    parent: int,
    rows: list[Row],
    read_source: Callable[[str | None], str],
    cfg: LoopConfig,
    run_dir: str,
) -> ProposalContext:
    """What a proposer is told when `parent` is expanded."""
    by_id = {int(r["id"]): r for r in rows}
    prow = by_id.get(parent) if parent != ROOT else None
    children = [r for r in rows if int(r["parent"] or ROOT) == parent]
    good = sorted((r for r in children if r["verdict"] == "accepted"), key=speed_key)
    bad = [r for r in reversed(children) if r["verdict"] != "accepted"]  # most recent first
    return ProposalContext(
        task_name=task_name,
        task_source=task_source,
        task_path=task_path,
        device=device,
        parent=attempt(prow, read_source) if prow else None,
        siblings=[attempt(r, read_source) for r in good + bad],
        rejected=[attempt(r, read_source) for r in bad[: cfg.rejected_shown]],
        diagnosis=diagnosis(prow, device),
        history_size=len(rows),
        run_dir=run_dir,
    )
