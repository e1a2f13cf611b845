"""Tuning: which configs to try, in which order.

1. prune(): a roofline + occupancy model (the family's `estimate`) ranks each region's configs by
   modelled seconds at the task's shapes and keeps the best `max_configs_per_family`.
2. next_points(): the proposer's walk: the modelled best point first; then, from the best measured
   node (the loop's parent), one region's config changed at a time, the most expensive region and
   the most promising config first; points already proposed and configs that were rejected are
   skipped.
3. successive_halving(): for a caller that can time configs directly (bench scripts): measure all
   survivors briefly, keep the faster half, measure those longer, and so on.
4. precompile(): first calls in parallel threads, so that Triton's compiler (which caches on
   disk, keyed by source and constexprs) runs for several configs at once.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ...extract.graph import meta_val, size_hint
from ..base import Attempt, ProposalContext

if TYPE_CHECKING:
    from .proposer import Plan


_hint = size_hint


def region_traffic(region, captured) -> tuple[int, int]:
    """(largest numel, bytes read + written) of a region at the captured shapes."""
    numel, nbytes = 1, 0
    for x in list(region.inputs) + list(region.outputs):
        v = meta_val(x)
        if isinstance(v, torch.Tensor):
            n = 1
            for s in v.shape:
                n *= _hint(s)
            numel = max(numel, n)
            nbytes += n * v.element_size()
    return numel, nbytes


def prune(family, match, configs: list[dict], device, captured, keep: int) -> tuple[list[dict], list[float]]:
    """Configs ordered by modelled time (table order on cpu, where time is not the point)."""
    est = getattr(family, "estimate", None)
    if device.kind == "cpu" or est is None:
        return configs[:keep], [0.0] * min(len(configs), keep)
    numel, nbytes = region_traffic(match.region, captured)
    scored = sorted(((est(match, c, device, numel, nbytes), i) for i, c in enumerate(configs)))
    eff = getattr(family, "effective", None)
    if eff is not None:
        # The model cannot rank what it does not see (occupancy, L2 reuse between passes): among
        # the kept configs, each distinct kernel comes before a second config rendering the same
        # one, so the measured tuning that follows compares different kernels (one-pass vs looped
        # vs split), not one kernel under several unused knobs.
        seen: set = set()
        first, again = [], []
        for t, i in scored:
            k = eff(match, configs[i], numel)
            (again if k in seen else first).append((t, i))
            seen.add(k)
        scored = first + again
    scored = scored[:keep]
    return [configs[i] for _, i in scored], [t for t, _ in scored]


def _point_of(a: Attempt | None, nregions: int) -> tuple[int, ...] | None:
    if a is None:
        return None
    p = a.meta.get("point") if isinstance(a.meta, dict) else None
    if isinstance(p, (list, tuple)) and len(p) == nregions:
        return tuple(int(x) for x in p)
    return None


def next_points(plan: "Plan", ctx: ProposalContext, tried: set, n: int, cfg) -> list[tuple[int, ...]]:
    R = len(plan.regions)
    sizes = [len(rp.configs) for rp in plan.regions]
    zero = tuple(0 for _ in range(R))
    base = _point_of(ctx.parent, R) if ctx.parent is not None and ctx.parent.accepted else None
    if base is None:
        accepted = [s for s in ctx.siblings if s.accepted and _point_of(s, R)]
        accepted.sort(key=lambda s: -(s.speedup or 0.0))
        base = _point_of(accepted[0], R) if accepted else zero
    # a rejected point marks the configs where it differs from the base as bad
    bad: set[tuple[int, int]] = set()
    for a in ctx.rejected:
        p = _point_of(a, R)
        if p is None:
            continue
        diff = [k for k in range(R) if p[k] != base[k]]
        for k in diff or range(R):
            bad.add((k, p[k]))
    # measured losers among siblings: skip their region-config as a base change
    losing: set[tuple[int, int]] = set()
    ref = ctx.parent.speedup if ctx.parent is not None and ctx.parent.speedup else None
    for s in ctx.siblings:
        p = _point_of(s, R)
        if p is None or ref is None or s.speedup is None or s.speedup >= ref:
            continue
        losing |= {(k, p[k]) for k in range(R) if p[k] != base[k]}

    out: list[tuple[int, ...]] = []

    def take(p: tuple[int, ...]) -> None:
        if p not in tried and p not in out and not any((k, p[k]) in bad for k in range(R)):
            out.append(p)

    take(base)
    # neighbours: one region changed; most expensive region first, modelled order within it
    cost = [plan.regions[k].modelled_s[base[k]] if plan.regions[k].modelled_s else 0.0 for k in range(R)]
    order = sorted(range(R), key=lambda k: -cost[k])
    width = max(sizes)
    for rank in range(width):
        for k in order:
            if rank < sizes[k] and rank != base[k] and (k, rank) not in losing:
                p = list(base)
                p[k] = rank
                take(tuple(p))
    # then whole points by config rank (the modelled best of everything second best ...)
    for rank in range(width):
        take(tuple(min(rank, s - 1) for s in sizes))
    return out[:n]


def successive_halving(
    candidates: Sequence[Any],
    measure: Callable[[Any, int], float],
    rounds: int = 3,
    first_reps: int = 5,
) -> list[tuple[Any, float]]:
    """Measure every candidate with `first_reps` repetitions, keep the faster half, double the
    repetitions, repeat `rounds` times. `measure(c, reps)` returns seconds (inf when it fails).
    Returns (candidate, last measured seconds), fastest first."""
    alive = list(candidates)
    reps = first_reps
    scores: dict[int, float] = {}
    for r in range(rounds):
        for i, c in enumerate(alive):
            try:
                scores[id(c)] = measure(c, reps)
            except Exception:  # a config that fails to compile or run is out
                scores[id(c)] = float("inf")
        alive.sort(key=lambda c: scores[id(c)])
        if r < rounds - 1:
            alive = alive[: max(1, (len(alive) + 1) // 2)]
        reps *= 2
    return [(c, scores[id(c)]) for c in alive if scores[id(c)] != float("inf")]


def precompile(calls: Sequence[Callable[[], Any]], workers: int = 8) -> list[BaseException | None]:
    """Run first calls concurrently (Triton compiles on first call and caches on disk)."""

    def run(fn):
        try:
            fn()
            return None
        except BaseException as exc:  # reported to the caller, which drops the config
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, calls))


def tune_in_process(plan: "Plan", init_inputs: list, inputs: list, time_fn: Callable[[Callable], float],
                    per_region: int = 8, rounds: int = 2, *,
                    render: Callable[["Plan", tuple[int, ...]], tuple[str, str]]) -> tuple[tuple[int, ...], list[dict]]:
    """Benchmark-script tuner (GPU, trusted own templates): for each region in turn, the first
    `per_region` modelled configs are rendered into whole answers (`render`: proposer.render_point,
    passed in because the proposer imports this module) with the other regions at their current
    best, compiled in parallel, and successively halved by `time_fn(callable) -> seconds`.
    Returns the best point and a log of every measurement."""
    import importlib.util
    import tempfile
    from pathlib import Path

    render_point = render
    point = [0] * len(plan.regions)
    log: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="kw-tune-"))

    def build(p: tuple[int, ...]):
        src, label = render_point(plan, p)
        # Triton's @jit reads its function's source from the file: load through a real module file
        path = tmp / f"point_{'_'.join(map(str, p))}.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        torch.manual_seed(0)
        model = mod.ModelNew(*init_inputs).to(inputs[0].device if isinstance(inputs[0], torch.Tensor) else "cuda")
        return lambda: model(*inputs), label

    for k, rp in enumerate(plan.regions):
        cands = []
        for ci in range(min(per_region, len(rp.configs))):
            p = list(point)
            p[k] = ci
            try:
                cands.append((tuple(p), *build(tuple(p))))
            except Exception as exc:  # a config that does not render/build is dropped
                log.append({"region": k, "config": rp.configs[ci], "error": str(exc)[:200]})
        errs = precompile([c[1] for c in cands])
        # a failure under concurrent compilation gets one sequential retry before the config is out
        errs = [e if e is None else precompile([c[1]], workers=1)[0] for c, e in zip(cands, errs)]
        cands = [c for c, e in zip(cands, errs) if e is None]

        def measure(c, reps):
            t = time_fn(c[1])
            log.append({"region": k, "point": list(c[0]), "label": c[2], "ms": t * 1e3, "reps": reps})
            return t

        ranked = successive_halving(cands, measure, rounds=rounds)
        if ranked:
            point = list(ranked[0][0][0])
    return tuple(point), log
