"""The four agents as small functions over one Conversation each: planner, writer, debugger,
analyst. Prompts are the jinja2 templates in prompts/ (StrictUndefined: a missing field fails
loudly). Reply parsing lives here too: a writer's or debugger's reply must hold exactly one
fenced ```python block with a syntactically valid answer file; anything else is a ReplyProblem
that earns the model another turn with the problem spelled out.
"""
from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2

from ...pyparse import parse
from .client import ChatModel, Reply, redact

PROMPTS = Path(__file__).parent / "prompts"
PLAYBOOK = Path(__file__).parent / "playbook.md"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, **variables: Any) -> str:
    return _ENV.get_template(template).render(**variables)


def clip(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text (errors name the cause first and the place last)."""
    text = text or ""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters clipped] ...\n{text[-half:]}"


# --------------------------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------------------------
@dataclass
class Conversation:
    """One agent's exchange with the model. Everything stored here is redacted."""

    role: str
    system: str
    messages: list[dict[str, str]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0
    error: str = ""
    started: float = field(default_factory=time.time)

    def ask(self, model: ChatModel, text: str) -> Reply:
        self.messages.append({"role": "user", "content": redact(text)})
        t0 = time.perf_counter()
        try:
            reply = model.chat(self.system, self.messages)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1
        reply.text = redact(reply.text or "")
        self.messages.append({"role": "assistant", "content": reply.text})
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        return reply

    def to_dict(self, model: ChatModel) -> dict[str, Any]:
        return {
            "role": self.role,
            "provider": model.provider,
            "model": model.model,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "calls": self.calls,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "error": redact(self.error),
            "system": self.system,
            "messages": self.messages,
        }


def new_conversation(role: str) -> Conversation:
    return Conversation(role=role, system=render("system.j2", role=role))


# --------------------------------------------------------------------------------------------
# Parsing a reply into an answer file
# --------------------------------------------------------------------------------------------
class ReplyProblem(Exception):
    """A reply that holds no usable answer file; the message is what to tell the model."""


# An opening fence at the start of a line with its info string, up to a closing fence line.
_OPEN = re.compile(r"^[ ]{0,3}```[ \t]*([^\n`]*)$", re.M)
_CLOSE = re.compile(r"^[ ]{0,3}```[ \t]*$", re.M)
_PY_TAGS = {"python", "py", "python3"}


def fenced_blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """[(info string, body)] of the fenced blocks in text, and whether a fence was left open."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    while (m := _OPEN.search(text, pos)) is not None:
        close = _CLOSE.search(text, m.end())
        if close is None:
            return blocks, True
        blocks.append((m.group(1).strip().lower(), text[m.end() + 1 : close.start()]))
        pos = close.end()
    return blocks, False


def extract_answer(text: str, finish: str = "stop") -> str:
    """The answer file in a reply. Raises ReplyProblem saying what is wrong with it."""
    blocks, unclosed = fenced_blocks(text or "")
    py = [body for info, body in blocks if info.split()[:1] and info.split()[0] in _PY_TAGS]
    if not py:
        if unclosed or finish == "length":
            raise ReplyProblem("the ```python block was not closed (the reply was cut off); write a shorter file")
        if blocks:
            raise ReplyProblem("it has no block tagged ```python (tag the answer file's block as python)")
        raise ReplyProblem("it has no fenced ```python block")
    if len(py) > 1:
        raise ReplyProblem(f"it has {len(py)} ```python blocks; put the whole answer file in one")
    source = py[0].strip("\n") + "\n"
    try:
        tree = parse(source)
    except SyntaxError as exc:
        raise ReplyProblem(f"the code does not parse: SyntaxError line {exc.lineno}: {exc.msg}") from None
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    if "ModelNew" not in classes:
        raise ReplyProblem("the file defines no top-level `class ModelNew`")
    if not any(_is_jit(d) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for d in n.decorator_list):
        raise ReplyProblem("the file defines no @triton.jit kernel")
    for n in ast.walk(tree):
        names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""] if isinstance(n, ast.ImportFrom) else []
        if any(x.split(".")[0] == "kernelwright" for x in names):
            raise ReplyProblem("answer files must not import kernelwright")
    return source


def _is_jit(dec: ast.expr) -> bool:
    """@triton.jit, @jit, @triton.jit(...)."""
    target = dec.func if isinstance(dec, ast.Call) else dec
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "jit"


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------
_TIER = re.compile(r"\bT\d+\.\d+\b")


@dataclass
class Plan:
    text: str  # the planner's whole reply
    direction: str  # its DIRECTION line (or the first line)
    tiers: list[str]  # playbook ids it cites that exist in the playbook


def playbook_ids(playbook: str) -> set[str]:
    return set(_TIER.findall(playbook))


def plan(model: ChatModel, conv: Conversation, view: dict[str, Any], playbook: str) -> Plan:
    reply = conv.ask(model, render("planner.j2", playbook=playbook, **view))
    text = reply.text.strip()
    m = re.search(r"^\s*DIRECTION:\s*(.+)$", text, re.M | re.I)
    direction = (m.group(1) if m else next((ln for ln in text.splitlines() if ln.strip()), "")).strip()
    known = playbook_ids(playbook)
    tiers = list(dict.fromkeys(t for t in _TIER.findall(text) if t in known))
    return Plan(text=text, direction=direction[:200], tiers=tiers)


def analyse(model: ChatModel, conv: Conversation, view: dict[str, Any]) -> str:
    return conv.ask(model, render("analyst.j2", **view)).text.strip()


def ask_for_answer(
    model: ChatModel,
    conv: Conversation,
    prompt: str,
    retries: int,
    check: Callable[[str], None] | None = None,
) -> str:
    """Ask until a reply holds a usable answer file: 1 + retries turns at most. `check` may
    raise ReplyProblem for a usable-but-unwanted file (one already tried)."""
    problem = ""
    for turn in range(retries + 1):
        reply = conv.ask(model, prompt if turn == 0 else render("fix_reply.j2", problem=problem))
        try:
            source = extract_answer(reply.text, reply.finish)
            if check:
                check(source)
            return source
        except ReplyProblem as exc:
            problem = str(exc)
    raise ReplyProblem(f"no usable answer after {retries + 1} replies; last: {problem}")


def write(model: ChatModel, conv: Conversation, view: dict[str, Any], the_plan: Plan | None, retries: int,
          check: Callable[[str], None] | None = None) -> str:
    prompt = render("writer.j2", plan=the_plan.text if the_plan else "", **view)
    return ask_for_answer(model, conv, prompt, retries, check)


def debug(model: ChatModel, conv: Conversation, view: dict[str, Any], retries: int,
          check: Callable[[str], None] | None = None) -> str:
    """view: the task fields plus source, stage, message, log_tail of the rejected answer."""
    return ask_for_answer(model, conv, render("debugger.j2", **view), retries, check)
