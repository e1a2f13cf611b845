"""LLM proposer with a scripted in-process model: reply parsing, prompts, the four roles, the
repair path, conversations on disk, tokens and cost, playbook findings, redaction. No network."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import jinja2
import pytest

from kernelwright.config import LLMConfig
from kernelwright.propose.base import Attempt, ProposalContext, ProposerError
from kernelwright.propose.llm import roles
from kernelwright.propose.llm.client import LLMError, ScriptedModel, redact
from kernelwright.propose.llm.proposer import LLMProposer, price_for

sys.path.insert(0, str(Path(__file__).parent / "tasks_llm"))
from answers import CRASH, GOOD, fenced  # noqa: E402

TASK = Path(__file__).parent / "tasks_llm" / "scale_relu.py"
PLAN = "DIRECTION: one fused elementwise kernel\nPLAYBOOK: T6.4, T2.2, T9.9\nWHY: one read, one write."


def ctx(tmp_path: Path, device: str = "cpu", **kw) -> ProposalContext:
    return ProposalContext("scale_relu", TASK.read_text(), str(TASK), device, run_dir=str(tmp_path), **kw)


def proposer(script, **cfg) -> tuple[LLMProposer, ScriptedModel]:
    model = ScriptedModel(script)
    return LLMProposer(LLMConfig(provider="openai", model="scripted", **cfg), model=model), model


def user_prompts(model: ScriptedModel) -> list[str]:
    """The newest user message of each call, in call order."""
    return [msgs[-1]["content"] for _, msgs in model.calls]


# ---- parsing ----------------------------------------------------------------------------------
def test_extract_answer_takes_the_one_python_block():
    text = "Plan first.\n```bash\necho hi\n```\n" + fenced(GOOD) + "Done."
    assert roles.extract_answer(text) == GOOD


@pytest.mark.parametrize(
    "reply, says",
    [
        ("I would fuse the ops, but here is no code.", "no fenced"),
        ("```\n" + GOOD + "```\n", "no block tagged"),
        (fenced(GOOD) + fenced(GOOD), "2 ```python blocks"),
        ("```python\n" + GOOD, "not closed"),
        (fenced("def f(:\n    pass\n"), "SyntaxError line 1"),
        (fenced("import torch\nclass Model(torch.nn.Module):\n    pass\n"), "no top-level `class ModelNew`"),
        (fenced("import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x\n"),
         "no @triton.jit"),
        (fenced("import kernelwright\n" + GOOD), "must not import kernelwright"),
        ("", "no fenced"),
    ],
)
def test_extract_answer_names_what_is_wrong(reply, says):
    with pytest.raises(roles.ReplyProblem, match=None) as err:
        roles.extract_answer(reply)
    assert says in str(err.value)


def test_reply_cut_at_max_tokens_says_so():
    with pytest.raises(roles.ReplyProblem, match="cut off"):
        roles.extract_answer("```python\nimport torch\n", finish="length")


def test_templates_are_strict():
    with pytest.raises(jinja2.UndefinedError):
        roles.render("debugger.j2", task_name="t", task_source="", device="cpu", source="x", stage="smoke")


def test_clip_keeps_head_and_tail():
    text = "HEAD" + "x" * 1000 + "TAIL"
    out = roles.clip(text, 100)
    assert out.startswith("HEAD") and out.endswith("TAIL") and len(out) < 200


# ---- roles ------------------------------------------------------------------------------------
def test_planner_then_writer_produce_a_candidate(tmp_path):
    p, model = proposer([PLAN, fenced(GOOD)])
    [cand] = p.propose(ctx(tmp_path), 4)
    assert cand.source == GOOD and cand.proposer == "llm"
    assert cand.meta["role"] == "writer"
    assert cand.meta["plan"] == "one fused elementwise kernel"
    assert cand.meta["playbook"] == ["T6.4", "T2.2"]  # T9.9 is not in the playbook
    # two calls, 100 in + 50 out tokens each (ScriptedModel's usage)
    assert (cand.meta["tokens_in"], cand.meta["tokens_out"], cand.meta["tokens"]) == (200, 100, 300)
    assert cand.meta["cost"] is None  # no price known for "scripted"
    planner_prompt, writer_prompt = user_prompts(model)
    assert "T6.4" in planner_prompt and "## T1 Block sizes" in planner_prompt  # the playbook is shown
    assert "PLAYBOOK: T6.4" in writer_prompt  # the plan reaches the writer
    systems = [s for s, _ in model.calls]
    assert "You are the planner" in systems[0] and "exactly one fenced ```python block" in systems[1]


def test_garbage_replies_get_more_turns_then_a_proposer_error(tmp_path):
    p, model = proposer([PLAN, "no code", fenced(GOOD) + fenced(GOOD), fenced("def f(:\n")], reply_retries=2)
    with pytest.raises(ProposerError, match="no usable answer after 3 replies.*SyntaxError"):
        p.propose(ctx(tmp_path), 1)
    fixes = user_prompts(model)[2:]
    assert "no fenced ```python block" in fixes[0] and "2 ```python blocks" in fixes[1]
    # the failed conversation is saved too, with its error
    writer = json.loads((tmp_path / "llm" / "0002-writer.json").read_text())
    assert "ReplyProblem" in writer["error"] and writer["calls"] == 3


def test_a_usable_reply_after_garbage_is_kept(tmp_path):
    p, _ = proposer([PLAN, "Sorry, no code this time.", fenced(GOOD)])
    [cand] = p.propose(ctx(tmp_path), 1)
    assert cand.source == GOOD and cand.meta["tokens"] == 450


def test_endpoint_failure_is_a_proposer_error(tmp_path):
    p, _ = proposer([LLMError("openai:x request failed (HTTP 500): boom")])
    with pytest.raises(ProposerError, match="HTTP 500"):
        p.propose(ctx(tmp_path), 1)


def test_rejected_answer_goes_to_the_debugger_with_the_verdict(tmp_path):
    p, model = proposer([PLAN, fenced(CRASH), fenced(GOOD)])
    [first] = p.propose(ctx(tmp_path), 1)
    bad = Attempt(first.source, first.label, False, "smoke", "RuntimeError: CRASH-MARKER-7731 scale overflow",
                  meta={**first.meta, "log_tail": "Traceback ... line 22 in forward"})
    [fixed] = p.propose(ctx(tmp_path, siblings=[bad], rejected=[bad], history_size=1), 1)
    assert fixed.source == GOOD and fixed.meta["role"] == "debugger"
    assert fixed.meta["repair_of"] == first.label
    prompt = user_prompts(model)[-1]
    assert "CRASH-MARKER-7731" in prompt and "`smoke`" in prompt and "line 22 in forward" in prompt
    assert CRASH.strip() in prompt  # the rejected source itself


def test_debugger_repairs_are_bounded(tmp_path):
    """debug_attempts=1: a rejected repair goes back to the planner, not to another repair."""
    p, model = proposer([PLAN, fenced(CRASH), fenced(CRASH.replace("7731", "7732")), PLAN, fenced(GOOD)],
                        debug_attempts=1)
    [a] = p.propose(ctx(tmp_path), 1)
    ra = Attempt(a.source, a.label, False, "smoke", "boom 7731")
    [b] = p.propose(ctx(tmp_path, rejected=[ra]), 1)
    assert b.meta["role"] == "debugger"
    rb = Attempt(b.source, b.label, False, "smoke", "boom 7732")
    [c] = p.propose(ctx(tmp_path, rejected=[rb, ra]), 1)
    assert c.meta["role"] == "writer"
    assert "boom 7732" in user_prompts(model)[-2]  # the planner sees both failures
    assert "boom 7731" in user_prompts(model)[-2]


def test_answer_already_tried_is_refused(tmp_path):
    other = GOOD.replace("256", "512")
    p, model = proposer([PLAN, fenced(GOOD), fenced(other)])
    parent = Attempt(GOOD, "search/elementwise BLOCK=256", True, "integrity", "")
    [cand] = p.propose(ctx(tmp_path, parent=parent), 1)
    assert cand.source == other
    assert "identical to an answer already tried (search/elementwise BLOCK=256)" in user_prompts(model)[-1]


def test_search_then_llm_starts_from_the_parent(tmp_path):
    """--proposer search,llm: the best template answer is the parent, shown to planner and writer."""
    parent = Attempt(GOOD, "search/elementwise BLOCK=256 w=4", True, "integrity", "", speedup=1.31, median_ms=0.012)
    p, model = proposer([PLAN, fenced(GOOD.replace("256", "1024"))])
    p.propose(ctx(tmp_path, parent=parent, history_size=5), 1)
    planner, writer = user_prompts(model)
    for prompt in (planner, writer):
        assert "search/elementwise BLOCK=256 w=4" in prompt and "_scale_relu_kernel" in prompt
    assert "1.31x vs eager" in planner


def test_analyst_reads_measurements_on_cuda_only(tmp_path):
    parent = Attempt(GOOD, "llm/writer #1", True, "integrity", "", speedup=0.8, median_ms=0.05,
                     meta={"gbps": 812.0, "pct_ceiling": 0.25, "tokens": 300})
    diag = "memory-bound: 812 GB/s is 25% of copy bandwidth; too few programs"
    p, model = proposer([diag, PLAN, fenced(GOOD.replace("256", "1024"))])
    [c] = p.propose(ctx(tmp_path, device="cuda", parent=parent, diagnosis="median 0.05 ms; memory-bound at 25%"), 1)
    analyst, planner, _ = user_prompts(model)
    assert "gbps: 812.0" in analyst and "speedup vs eager: 0.800x" in analyst and "tokens" not in analyst
    assert diag in planner
    assert json.loads((tmp_path / "llm" / "0001-analyst.json").read_text())["role"] == "analyst"
    # on cpu nothing is timed: no analyst call
    p2, model2 = proposer([PLAN, fenced(GOOD.replace("256", "1024"))])
    p2.propose(ctx(tmp_path, parent=parent), 1)
    assert len(model2.calls) == 2 and "You are the planner" in model2.calls[0][0]


def test_conversations_saved_and_findings_appended(tmp_path):
    findings = tmp_path / "shared" / "findings.md"
    p, _ = proposer([PLAN, fenced(GOOD)], findings_path=str(findings))
    [c] = p.propose(ctx(tmp_path), 1)
    files = sorted(f.name for f in (tmp_path / "llm").glob("*.json"))
    assert files == ["0001-planner.json", "0002-writer.json"]
    conv = json.loads((tmp_path / "llm" / "0002-writer.json").read_text())
    assert conv["messages"][-1]["content"] == fenced(GOOD)
    assert conv["tokens"] == {"input": 100, "output": 50}
    assert c.meta["conversations"] == ["llm/0001-planner.json", "llm/0002-writer.json"]
    accepted = Attempt(c.source, c.label, True, "integrity", "", speedup=1.5)
    p.model.script.extend([PLAN, fenced(GOOD.replace("256", "128"))])
    p.propose(ctx(tmp_path, parent=accepted), 1)
    run_copy = (tmp_path / "llm" / "playbook.md").read_text()
    line = "- [T6.4, T2.2] scale_relu: one fused elementwise kernel -> accepted, 1.50x vs eager"
    assert line in run_copy and line in findings.read_text()
    shipped = roles.PLAYBOOK.read_text()
    assert "accepted, 1.50x" not in shipped  # the shipped playbook stays data
    # a later run starts from the shared findings
    p3, model3 = proposer([PLAN, fenced(GOOD)], findings_path=str(findings))
    p3.propose(ctx(tmp_path / "run2"), 1)
    assert "## Findings from earlier runs" in user_prompts(model3)[0] and line in user_prompts(model3)[0]


def test_secrets_never_reach_prompts_candidates_or_files(tmp_path, monkeypatch):
    key = "sk-test-secret-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    leaky = GOOD.replace("class ModelNew", f"KEY = '{key}'\n\n\nclass ModelNew")
    p, model = proposer([f"DIRECTION: use {key}", fenced(leaky)])
    bad = Attempt(CRASH, "llm/writer #0", False, "smoke", f"RuntimeError: key={key}")
    task_with_key = ctx(tmp_path, rejected=[bad])
    [c] = p.propose(task_with_key, 1)
    assert key not in c.source and "[redacted]" in c.source
    assert key not in json.dumps(c.meta) and key not in c.label
    assert all(key not in t for t in user_prompts(model))
    for f in (tmp_path / "llm").iterdir():
        assert key not in f.read_text()
    assert redact(f"a {key} b") == "a [redacted] b"


def test_price_table():
    assert price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # longest prefix wins over gpt-4o
    assert price_for("claude-sonnet-4-5") == (3.0, 15.0)
    assert price_for("my-local-model") is None
    assert price_for("x", (1.0, 2.0)) == (1.0, 2.0)
    model = ScriptedModel([PLAN, fenced(GOOD)], model="gpt-4o")
    p = LLMProposer(LLMConfig(provider="openai", model="gpt-4o"), model=model)
    [c] = p.propose(ProposalContext("t", TASK.read_text(), str(TASK), "cpu"), 1)
    # 200 input tokens at $2.50/M + 100 output tokens at $10/M
    assert c.meta["cost"] == pytest.approx(200 * 2.5e-6 + 100 * 10e-6)
