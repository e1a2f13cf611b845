"""LLMProposer: the agent loop behind `--proposer llm`.

One propose() call writes one candidate (LLMConfig.candidates_per_call) by one of two paths:
  repair:  the newest of our answers the judge rejected, with repairs left -> debugger
  advance: analyst (only when there are measurements) -> planner -> writer
A reply without a usable answer file earns the model another turn (LLMConfig.reply_retries);
when it still fails, or the endpoint fails after retries, propose() raises ProposerError and the
loop records a ledger row. Every conversation is saved, redacted, as DIR/llm/NNNN-<role>.json
(in a `finally`, so failed ones too). What our candidates achieved (seen later in the context)
is appended to the run's copy of the playbook, DIR/llm/playbook.md, which the planner reads.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import LLMConfig
from ..base import Attempt, Candidate, ProposalContext, ProposerError
from . import roles
from .client import ChatModel, LLMError, make_model, redact

PRICES = Path(__file__).parent / "prices.json"
# Attempt.meta keys that are measurements the analyst should see (others are bookkeeping).
_NOT_MEASURES = {"tokens", "tokens_in", "tokens_out", "cost", "conversations", "plan", "playbook", "role", "model", "repair_of", "log_tail"}


def source_hash(source: str) -> str:
    """Hash of an answer's text, blind to trailing whitespace (the same file written twice)."""
    norm = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(norm.encode()).hexdigest()[:16]


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """USD per million (input, output) tokens: the override, else the longest prefix in prices.json."""
    if override:
        return override
    table = {k: v for k, v in json.loads(PRICES.read_text()).items() if not k.startswith("_")}
    name = model.split("/")[-1].lower()
    best = max((k for k in table if name.startswith(k)), key=len, default=None)
    return tuple(table[best]) if best else None  # type: ignore[return-value]


@dataclass
class _Issued:
    """One candidate we handed out, to recognise it when the loop shows it back to us."""

    seq: int
    task: str
    label: str
    direction: str
    tiers: list[str]
    depth: int  # repairs in its lineage (0: written from a plan)
    repaired: bool = False  # the debugger already had its turn on it
    learned: bool = False  # its outcome is in the findings


@dataclass
class _Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    files: list[str] = field(default_factory=list)


class LLMProposer:
    """`--proposer llm`: planner, writer, debugger and analyst over one ChatModel."""

    name = "llm"

    def __init__(self, cfg: LLMConfig, model: ChatModel | None = None) -> None:
        self.cfg = cfg
        # Building the SDK client takes the key out of os.environ at once (see client.py), before
        # any judge worker or candidate process is spawned. A missing key is a UsageError here.
        self.model: ChatModel = model if model is not None else make_model(cfg)
        self.price = price_for(self.model.model, cfg.price_per_mtok)
        self._issued: dict[str, _Issued] = {}  # source hash -> what we know of it
        self._analysed: dict[str, str] = {}  # parent hash -> analyst diagnosis
        self._seq = 0

    # -- Proposer protocol -------------------------------------------------------------------
    def preflight(self) -> None:
        """UsageError with a hint when the endpoint is unreachable or refuses the key."""
        self.model.ping()

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        self._learn(ctx)
        out: list[Candidate] = []
        for _ in range(max(1, min(n, self.cfg.candidates_per_call))):
            try:
                out.append(self._one(ctx))
            except ProposerError:
                if not out:
                    raise
                break
        return out

    # -- one candidate -----------------------------------------------------------------------
    def _one(self, ctx: ProposalContext) -> Candidate:
        usage = _Usage()
        target = self._to_repair(ctx)
        try:
            if target is not None:
                attempt, info = target
                info.repaired = True
                source = self._debug(ctx, attempt, usage)
                role, direction, tiers, depth = "debugger", f"fix #{info.seq} ({attempt.stage})", info.tiers, info.depth + 1
            else:
                diagnosis = self._analyse(ctx, usage)
                the_plan = self._plan(ctx, diagnosis, usage)
                source = self._write(ctx, the_plan, usage)
                role, direction, tiers, depth = "writer", the_plan.direction, the_plan.tiers, 0
        except LLMError as exc:
            raise ProposerError(str(exc)) from None
        except roles.ReplyProblem as exc:
            raise ProposerError(redact(f"{self.model.provider}:{self.model.model} {exc}")) from None

        self._seq += 1
        label = redact(f"llm/{role} #{self._seq}: {direction}")[:120]
        self._issued[source_hash(source)] = _Issued(self._seq, ctx.task_name, label, direction, tiers, depth)
        cost = None
        if self.price:
            cost = round((usage.input_tokens * self.price[0] + usage.output_tokens * self.price[1]) / 1e6, 6)
        meta = {
            "role": role,
            "model": f"{self.model.provider}:{self.model.model}",
            "plan": redact(direction),
            "playbook": tiers,
            # The ledger's tokens/cost columns read these two keys: an int and a float (or None).
            "tokens": usage.input_tokens + usage.output_tokens,
            "cost": cost,
            "tokens_in": usage.input_tokens,
            "tokens_out": usage.output_tokens,
            "conversations": usage.files,
        }
        if target is not None:
            meta["repair_of"] = target[1].label
        return Candidate(source=redact(source), label=label, proposer=self.name, meta=meta)

    def _converse(self, ctx: ProposalContext, role: str, usage: _Usage, body: Any) -> Any:
        """Run body(conversation) and save the conversation whatever happens."""
        conv = roles.new_conversation(role)
        try:
            return body(conv)
        except Exception as exc:
            conv.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            usage.input_tokens += conv.input_tokens
            usage.output_tokens += conv.output_tokens
            path = self._save(ctx, conv)
            if path:
                usage.files.append(path)

    def _analyse(self, ctx: ProposalContext, usage: _Usage) -> str:
        """The analyst's diagnosis of the parent's measurements; ctx.diagnosis when there are none."""
        view = self._measures(ctx)
        if view is None:
            return ctx.diagnosis
        key = source_hash(ctx.parent.source) if ctx.parent else ""
        if key not in self._analysed:
            self._analysed[key] = self._converse(ctx, "analyst", usage, lambda c: roles.analyse(self.model, c, view))
        return self._analysed[key]

    def _plan(self, ctx: ProposalContext, diagnosis: str, usage: _Usage) -> roles.Plan:
        view = {**self._task_view(ctx), **self._history_view(ctx), "diagnosis": clip(redact(diagnosis), self.cfg)}
        playbook = self._playbook(ctx)
        return self._converse(ctx, "planner", usage, lambda c: roles.plan(self.model, c, view, playbook))

    def _write(self, ctx: ProposalContext, the_plan: roles.Plan, usage: _Usage) -> str:
        hist = self._history_view(ctx)
        view = {**self._task_view(ctx), "parent": hist["parent"], "rejected": hist["rejected"]}
        check = self._novelty_check(ctx)
        return self._converse(
            ctx, "writer", usage, lambda c: roles.write(self.model, c, view, the_plan, self.cfg.reply_retries, check)
        )

    def _debug(self, ctx: ProposalContext, attempt: Attempt, usage: _Usage) -> str:
        lim = self.cfg.max_prompt_chars
        view = {
            **self._task_view(ctx),
            "source": redact(attempt.source),
            "stage": attempt.stage,
            "message": redact(roles.clip(attempt.message, lim)),
            "log_tail": redact(str(attempt.meta.get("log_tail", "") or "")[-lim:]),
        }
        check = self._novelty_check(ctx)
        return self._converse(
            ctx, "debugger", usage, lambda c: roles.debug(self.model, c, view, self.cfg.reply_retries, check)
        )

    # -- what the model is shown -------------------------------------------------------------
    def _task_view(self, ctx: ProposalContext) -> dict[str, Any]:
        return {"task_name": ctx.task_name, "task_source": redact(ctx.task_source).strip("\n"), "device": ctx.device}

    def _attempt_view(self, a: Attempt, with_source: bool) -> dict[str, Any]:
        info = self._issued.get(source_hash(a.source))
        return {
            "label": redact(a.label),
            "proposer": str(a.meta.get("proposer", "")) if a.meta else "",
            "accepted": a.accepted,
            "stage": a.stage,
            "message": redact(roles.clip(" ".join(a.message.split()), 600)),
            "speedup": a.speedup,
            "median_ms": a.median_ms,
            "playbook": info.tiers if info else list(a.meta.get("playbook", []) if a.meta else []),
            "source": redact(a.source) if with_source else "",
        }

    def _history_view(self, ctx: ProposalContext) -> dict[str, Any]:
        return {
            "parent": self._attempt_view(ctx.parent, True) if ctx.parent else None,
            "tried": [self._attempt_view(a, False) for a in ctx.siblings[:8]],
            "rejected": [self._attempt_view(a, False) for a in ctx.rejected[:8]],
            "history_size": ctx.history_size,
        }

    def _measures(self, ctx: ProposalContext) -> dict[str, Any] | None:
        """Analyst input from the parent's timing and roofline figures; None when nothing was
        measured (on cpu nothing is timed, so the analyst is not asked)."""
        p = ctx.parent
        if p is None or ctx.device == "cpu":
            return None
        lines = []
        if p.median_ms is not None:
            lines.append(f"median time: {p.median_ms:.4f} ms")
        if p.speedup is not None:
            lines.append(f"speedup vs eager: {p.speedup:.3f}x")
        for k, v in (p.meta or {}).items():
            if k not in _NOT_MEASURES and isinstance(v, (int, float)) and not isinstance(v, bool):
                lines.append(f"{k}: {v}")
        profile = str((p.meta or {}).get("profile", "") or "")
        if not lines and not profile and not ctx.diagnosis:
            return None
        lim = self.cfg.max_prompt_chars
        return {
            "task_name": ctx.task_name,
            "device": ctx.device,
            "measurements": lines,
            "roofline": redact(roles.clip(ctx.diagnosis, lim)),
            "profile": redact(roles.clip(profile, lim)),
        }

    def _novelty_check(self, ctx: ProposalContext):
        """A ReplyProblem for an answer identical to one already tried on this task."""
        seen = {source_hash(a.source): a.label for a in [ctx.parent, *ctx.siblings, *ctx.rejected] if a is not None}
        seen.update({h: i.label for h, i in self._issued.items() if i.task == ctx.task_name})

        def check(source: str) -> None:
            h = source_hash(source)
            if h in seen:
                raise roles.ReplyProblem(f"it is identical to an answer already tried ({seen[h]}); write a different one")

        return check

    def _to_repair(self, ctx: ProposalContext) -> tuple[Attempt, _Issued] | None:
        """The newest of our rejected answers on this task with repairs left."""
        best: tuple[Attempt, _Issued] | None = None
        for a in ctx.rejected:
            info = self._issued.get(source_hash(a.source))
            if info is None or info.task != ctx.task_name or info.repaired or info.depth >= self.cfg.debug_attempts:
                continue
            if best is None or info.seq > best[1].seq:
                best = (a, info)
        return best

    # -- run directory -----------------------------------------------------------------------
    def _dir(self, ctx: ProposalContext) -> Path | None:
        if not ctx.run_dir:
            return None
        d = Path(ctx.run_dir) / "llm"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _save(self, ctx: ProposalContext, conv: roles.Conversation) -> str:
        d = self._dir(ctx)
        if d is None:
            return ""
        taken = [int(m.group(1)) for f in d.glob("*.json") if (m := re.match(r"(\d+)-", f.name))]
        path = d / f"{max(taken, default=0) + 1:04d}-{conv.role}.json"
        data = conv.to_dict(self.model)
        data["task"] = ctx.task_name
        path.write_text(redact(json.dumps(data, indent=1)))
        return str(path.relative_to(Path(ctx.run_dir)))

    def _playbook(self, ctx: ProposalContext) -> str:
        """The run's copy of the playbook (created from the shipped file plus shared findings)."""
        d = self._dir(ctx)
        if d is None:
            return roles.PLAYBOOK.read_text()
        path = d / "playbook.md"
        if not path.exists():
            text = roles.PLAYBOOK.read_text().rstrip() + "\n"
            shared = Path(self.cfg.findings_path) if self.cfg.findings_path else None
            if shared and shared.exists():
                text += "\n## Findings from earlier runs\n" + shared.read_text().rstrip() + "\n"
            path.write_text(text + "\n## Findings from this run\n")
        return path.read_text()

    def _learn(self, ctx: ProposalContext) -> None:
        """Append the outcome of each of our candidates that the loop now shows us, once."""
        lines = []
        for a in [ctx.parent, *ctx.siblings, *ctx.rejected]:
            info = self._issued.get(source_hash(a.source)) if a is not None else None
            if info is None or info.learned:
                continue
            info.learned = True
            if a.accepted:
                outcome = f"accepted, {a.speedup:.2f}x vs eager" if a.speedup is not None else "accepted (correct; not timed)"
            else:
                outcome = f"rejected at {a.stage}: {roles.clip(' '.join(a.message.split()), 160)}"
            tiers = ", ".join(info.tiers) or "-"
            lines.append(redact(f"- [{tiers}] {info.task}: {info.direction[:120]} -> {outcome}"))
        if not lines:
            return
        targets = []
        if self._dir(ctx) is not None:
            self._playbook(ctx)  # make sure the run copy exists before appending to it
            targets.append(self._dir(ctx) / "playbook.md")
        if self.cfg.findings_path:
            targets.append(Path(self.cfg.findings_path))
            targets[-1].parent.mkdir(parents=True, exist_ok=True)
        for path in targets:
            with open(path, "a") as f:
                f.write("\n".join(lines) + "\n")

def clip(text: str, cfg: LLMConfig) -> str:
    return roles.clip(text, cfg.max_prompt_chars)
