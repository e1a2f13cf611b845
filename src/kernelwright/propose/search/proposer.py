"""The offline proposer: task -> ATen graph -> regions -> template families -> answer files.

Each candidate is one *point*: a config index per region. The first point is the modelled best
config of every region; later proposals walk the space from the best measured node (the parent),
changing one region's config at a time, most expensive region first, skipping points already
tried and configs that were rejected (see tune.py for the ordering rules).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...config import SearchConfig
from ...errors import TaskError, UsageError
from ...extract.graph import Captured, bind_int_attributes, capture
from ...extract.regions import Region, partition
from ...task import load_task
from ..base import Candidate, ProposalContext, ProposerError
from . import initargs, tune
from .family import DeviceSpec, Match, device_spec, families, match_region
from .render import assemble


@dataclass
class RegionPlan:
    region: Region
    match: Match
    configs: list[dict]  # pruned, best modelled first
    modelled_s: list[float]  # modelled seconds per config, same order


@dataclass
class Plan:
    task_name: str
    task_source: str
    model_cls: type
    captured: Captured
    regions: list[RegionPlan]
    device: DeviceSpec
    notes: list[str] = field(default_factory=list)
    # numbers of the forward read from ModelNew's init args at run time (initargs.py)
    init_scalars: list[initargs.InitScalar] = field(default_factory=list)


def _capture_task(task_path: str) -> tuple:
    task = load_task(task_path)
    init = task.init_inputs(seed=0)
    model = task.build_model(init, seed=0)
    inputs = task.inputs(seed=0)
    return task, model, inputs, capture(model, inputs)


def _match_all(captured: Captured, fuse: bool) -> tuple[list[tuple[Region, Match]], list[str]]:
    matched, missing = [], []
    for r in partition(captured, fuse=fuse):
        m, why = match_region(r, captured)
        if m is None:
            reason = "; ".join(why) if why else "no family handles this kind"
            missing.append(f"{r.describe()}: {reason}")
        else:
            matched.append((r, m))
    return matched, missing


def _match_or_raise(task, captured: Captured, notes: list[str]) -> list[tuple[Region, Match]]:
    matched, missing = _match_all(captured, fuse=True)
    if missing:
        # a fused region no family covers may still be covered op by op
        matched2, missing2 = _match_all(captured, fuse=False)
        if missing2:
            raise ProposerError(
                f"no template covers {len(missing2)} region(s) of {task.name}: " + " | ".join(missing2)
                + " (use --proposer search,llm to let the LLM write these)"
            )
        notes.append("unfused: " + " | ".join(missing))
        matched = matched2
    return matched


def build_plan(task_path: str, device: str, cfg: SearchConfig) -> Plan:
    """Capture, partition, match, and list each region's configs (pruned, ordered by the model)."""
    task, model, inputs, captured = _capture_task(task_path)
    bind_int_attributes(model, inputs, captured)
    notes: list[str] = []
    # numbers that come from the init args become runtime scalars (ModelNew is built with others)
    scalars = initargs.find_init_scalars(task, task.init_inputs(seed=0), inputs, captured, notes)
    initargs.rewrite(captured, scalars)
    try:
        matched = _match_or_raise(task, captured, notes)
    except ProposerError as exc:
        if not scalars:
            raise
        # a template that declines a runtime scalar: the literals of the capture, as before
        task, model, inputs, captured = _capture_task(task_path)
        bind_int_attributes(model, inputs, captured)
        notes.append(f"init-arg scalars kept as captured literals ({exc})")
        scalars = []
        matched = _match_or_raise(task, captured, notes)
    if not any(captured.graph.nodes):
        raise ProposerError(f"{task.name}: the captured forward is empty")
    dev = device_spec(device)
    plans = []
    for r, m in matched:
        fam = next(f for f in families() if f.name == m.family)
        configs = fam.configs(m, dev)
        if not configs:
            raise ProposerError(f"{m.family} offers no config for {r.describe()} on {dev.name}")
        configs, modelled = tune.prune(fam, m, configs, dev, captured, cfg.max_configs_per_family)
        plans.append(RegionPlan(r, m, configs, modelled))
    if not plans:
        raise ProposerError(f"{task.name}: nothing to compute in the forward (no region found)")
    return Plan(task.name, task.source, task.module.Model, captured, plans, dev, notes, scalars)


def render_point(plan: Plan, point: tuple[int, ...]) -> tuple[str, str]:
    """(answer source, label) for one config index per region."""
    parts = []
    labels = []
    fams = {f.name: f for f in families()}
    for k, (rp, ci) in enumerate(zip(plan.regions, point)):
        cfg = rp.configs[ci]
        rendered = fams[rp.match.family].render(rp.match, cfg, f"k{k}")
        knobs = " ".join(f"{a}={b}" for a, b in cfg.items() if b != "")
        parts.append((rp.region, rendered, f"k{k}: {rp.match.label}; config {knobs}"))
        labels.append(f"k{k} {rp.match.family} {knobs}")
    title = (
        f"Answer for task {plan.task_name}, generated by kernelwright's search proposer (templates, no LLM).\n\n"
        + "\n".join(f"k{k}: {rp.region.describe()}" for k, rp in enumerate(plan.regions))
        + "\n"
    )
    src = assemble(plan.task_source, plan.model_cls, plan.captured, parts, title, plan.init_scalars)
    return src, " | ".join(labels)


class SearchProposer:
    name = "search"

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg
        self._plans: dict[tuple[str, str], Plan] = {}
        self._proposed: dict[tuple[str, str], set[tuple[int, ...]]] = {}

    def preflight(self) -> None:
        try:
            import jinja2  # noqa: F401  (templates are data; make sure the renderer's deps exist)
            import triton  # noqa: F401
        except ImportError as exc:
            raise UsageError(f"the search proposer needs {exc.name}", "pip install triton jinja2")
        if not families():
            raise UsageError("no template family could be loaded", "Reinstall kernelwright.")

    def plan(self, ctx: ProposalContext) -> Plan:
        key = (ctx.task_path, ctx.device)
        if key not in self._plans:
            try:
                self._plans[key] = build_plan(ctx.task_path, ctx.device, self.cfg)
            except TaskError as exc:
                raise ProposerError(str(exc)) from exc
        return self._plans[key]

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        plan = self.plan(ctx)
        key = (ctx.task_path, ctx.device)
        state = self._load_state(ctx)
        tried = self._proposed.setdefault(key, set()) | state
        points = tune.next_points(plan, ctx, tried, n, self.cfg)
        out = []
        for p in points:
            src, label = render_point(plan, p)
            self._proposed[key].add(p)
            out.append(
                Candidate(
                    source=src,
                    label=label,
                    proposer=self.name,
                    meta={
                        "point": list(p),
                        "families": [rp.match.family for rp in plan.regions],
                        "configs": [rp.configs[i] for rp, i in zip(plan.regions, p)],
                    },
                )
            )
        self._save_state(ctx, self._proposed[key])
        return out

    # Points proposed in earlier runs of this process or a resumed run (run_dir/search/<task>.json).
    def _state_path(self, ctx: ProposalContext) -> Path | None:
        if not ctx.run_dir:
            return None
        return Path(ctx.run_dir) / self.name / f"{ctx.task_name}.json"

    def _load_state(self, ctx: ProposalContext) -> set[tuple[int, ...]]:
        p = self._state_path(ctx)
        if p is None or not p.is_file():
            return set()
        try:
            return {tuple(x) for x in json.loads(p.read_text()).get("proposed", [])}
        except (OSError, ValueError):
            return set()

    def _save_state(self, ctx: ProposalContext, points: set[tuple[int, ...]]) -> None:
        p = self._state_path(ctx)
        if p is None:
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"proposed": sorted(list(x) for x in points)}))
