"""The LLM proposer through the real openai and anthropic SDKs against the scripted loopback
server (tests/llm_server.py): both providers, streaming and not, retries on 429/5xx and cut
streams, preflight errors, key handling."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")

from kernelwright.config import LLMConfig  # noqa: E402
from kernelwright.errors import UsageError  # noqa: E402
from kernelwright.propose.base import ProposalContext, ProposerError  # noqa: E402
from kernelwright.propose.llm.client import SDKChatModel  # noqa: E402
from kernelwright.propose.llm.proposer import LLMProposer  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "tasks_llm"))
from answers import GOOD, fenced  # noqa: E402
from llm_server import ScriptedLLMServer  # noqa: E402

KEY = "sk-loopback-test-5f1e9c2a7b"
TASK = Path(__file__).parent / "tasks_llm" / "scale_relu.py"
PLAN = "DIRECTION: one fused kernel\nPLAYBOOK: T6.4\nWHY: it is elementwise."
SDK_AGENT = {"openai": "OpenAI/Python", "anthropic": "Anthropic/Python"}
CASES = [("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True)]


def point_at(monkeypatch, srv: ScriptedLLMServer, provider: str, key: str | None = KEY) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    if provider == "openai":
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        if key:
            monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.anthropic_base_url)
        if key:
            monkeypatch.setenv("ANTHROPIC_API_KEY", key)


def cfg(provider: str, stream: bool, **kw) -> LLMConfig:
    base = dict(provider=provider, model="gpt-4o" if provider == "openai" else "claude-haiku-4-5",
                stream=stream, max_retries=3, retry_backoff_s=0.01, request_timeout_s=20.0)
    return LLMConfig(**{**base, **kw})


@pytest.mark.parametrize("provider, stream", CASES)
def test_planner_and_writer_through_the_sdk(provider, stream, monkeypatch, tmp_path):
    with ScriptedLLMServer([PLAN, fenced(GOOD)], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        p = LLMProposer(cfg(provider, stream))
        assert KEY not in os.environ.values()  # the proposer holds the key; children cannot inherit it
        p.preflight()
        ctx = ProposalContext("scale_relu", TASK.read_text(), str(TASK), "cpu", run_dir=str(tmp_path))
        [cand] = p.propose(ctx, 1)
    assert cand.source == GOOD
    assert cand.meta["tokens_in"] == 2 * srv.input_tokens and cand.meta["tokens_out"] == 2 * srv.output_tokens
    assert cand.meta["cost"] is not None and cand.meta["cost"] > 0  # both models are in the price table
    posts = srv.model_requests()
    assert len(posts) == 2
    for r in srv.received:  # every request, GET /models included, came from the official SDK
        assert r.headers["user-agent"].startswith(SDK_AGENT[provider])
        assert r.headers.get("x-stainless-lang") == "python"
    assert all(bool(r.body.get("stream")) == stream for r in posts)
    if provider == "openai":
        assert posts[0].path == "/v1/chat/completions"
        assert posts[0].body["messages"][0]["role"] == "system"
        assert posts[0].body["max_completion_tokens"] == 8192
    else:
        assert posts[0].path == "/v1/messages" and "You are the planner" in posts[0].body["system"]
        assert "anthropic-version" in posts[0].headers
    assert "PLAYBOOK: T6.4" in posts[1].prompt_text()  # the plan reached the writer's request
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text()


@pytest.mark.parametrize("provider, stream", CASES)
def test_429_and_5xx_are_retried(provider, stream, monkeypatch):
    script = [{"status": 429}, {"status": 500}, {"status": 503}, "hello"]
    with ScriptedLLMServer(script, api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        reply = SDKChatModel(cfg(provider, stream)).chat("sys", [{"role": "user", "content": "hi"}])
    assert reply.text == "hello"
    retries = [r.headers.get("x-stainless-retry-count") for r in srv.model_requests()]
    assert retries == ["0", "1", "2", "3"]  # the SDK's own retries, with backoff (retry-after-ms)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_timeout_is_retried(provider, monkeypatch):
    with ScriptedLLMServer([{"delay": 1.5, "text": "late"}, "in time"], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        reply = SDKChatModel(cfg(provider, False, request_timeout_s=0.5)).chat("s", [{"role": "user", "content": "hi"}])
    assert reply.text == "in time" and len(srv.model_requests()) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_retries_run_out_into_a_proposer_error(provider, monkeypatch, tmp_path):
    with ScriptedLLMServer([{"status": 500}], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        p = LLMProposer(cfg(provider, False, max_retries=1))
        ctx = ProposalContext("scale_relu", TASK.read_text(), str(TASK), "cpu", run_dir=str(tmp_path))
        with pytest.raises(ProposerError, match="HTTP 500"):
            p.propose(ctx, 1)
    assert len(srv.model_requests()) == 2
    saved = json.loads((tmp_path / "llm" / "0001-planner.json").read_text())
    assert "HTTP 500" in saved["error"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_cut_mid_reply_is_retried(provider, monkeypatch):
    with ScriptedLLMServer([{"drop": True}, "whole reply"], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        reply = SDKChatModel(cfg(provider, True)).chat("sys", [{"role": "user", "content": "hi"}])
    assert reply.text == "whole reply" and len(srv.model_requests()) == 2


def test_a_refused_parameter_is_adapted(monkeypatch):
    """OpenAI reasoning models refuse max_tokens/temperature; a 400 naming one changes it once."""
    refuse = {"status": 400, "message": "Unsupported value: 'temperature' does not support 0.7"}
    with ScriptedLLMServer([refuse, "ok"], api_key=KEY) as srv:
        point_at(monkeypatch, srv, "openai")
        reply = SDKChatModel(cfg("openai", False)).chat("sys", [{"role": "user", "content": "hi"}])
    first, second = srv.model_requests()
    assert reply.text == "ok" and "temperature" in first.body and "temperature" not in second.body


@pytest.mark.parametrize("provider, stream", CASES)
def test_garbage_replies_through_the_sdk_never_crash_the_run(provider, stream, monkeypatch, tmp_path):
    garbage = ["", "```python\nimport torch\n", "```python\ndef f(:\n```", "{\"choices\": []}"]
    with ScriptedLLMServer([PLAN, *garbage], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider)
        p = LLMProposer(cfg(provider, stream, reply_retries=3))
        ctx = ProposalContext("scale_relu", TASK.read_text(), str(TASK), "cpu", run_dir=str(tmp_path))
        with pytest.raises(ProposerError, match="no usable answer after 4 replies"):
            p.propose(ctx, 1)
    prompts = [r.prompt_text() for r in srv.model_requests()]
    assert "no fenced ```python block" in prompts[2] and "not closed" in prompts[3] and "SyntaxError" in prompts[4]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_missing_key_is_a_usage_error(provider, monkeypatch):
    with ScriptedLLMServer(["x"], api_key=KEY) as srv:
        point_at(monkeypatch, srv, provider, key=None)
        with pytest.raises(UsageError) as err:
            LLMProposer(cfg(provider, False))
    var = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    assert var in err.value.message and "export" in err.value.hint
    assert srv.received == []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_unreachable_endpoint_is_a_usage_error(provider, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    monkeypatch.setenv("OPENAI_BASE_URL" if provider == "openai" else "ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY", KEY)
    p = LLMProposer(cfg(provider, False))
    with pytest.raises(UsageError, match="unreachable") as err:
        p.preflight()
    assert "BASE_URL" in err.value.hint and KEY not in str(err.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_refused_key_is_a_usage_error(provider, monkeypatch):
    with ScriptedLLMServer(["x"], api_key="the-right-key-123") as srv:
        point_at(monkeypatch, srv, provider, key="a-wrong-key-456789")
        with pytest.raises(UsageError, match="refused the API key") as err:
            LLMProposer(cfg(provider, False)).preflight()
    assert "a-wrong-key-456789" not in str(err.value)


def test_anthropic_auth_token_is_sent_as_a_bearer_token(monkeypatch):
    with ScriptedLLMServer(["hi back"], api_key=KEY) as srv:
        point_at(monkeypatch, srv, "anthropic", key=None)
        monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", KEY)
        model = SDKChatModel(cfg("anthropic", False))
        assert "ANTHROPIC_AUTH_TOKEN" not in os.environ
        assert model.chat("s", [{"role": "user", "content": "hi"}]).text == "hi back"
    assert srv.model_requests()[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("behaviour", ["close", "hang"])
def test_a_server_without_a_models_route_is_reachable(provider, behaviour, monkeypatch):
    """Minimal servers may drop or ignore GET /models: that is not 'unreachable'."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    held = []

    def accept_one():
        conn, _ = srv.accept()
        conn.recv(4096)
        if behaviour == "close":
            conn.close()
        else:
            held.append(conn)  # keep it open, never answer

    threading.Thread(target=accept_one, daemon=True).start()
    url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    monkeypatch.setenv("OPENAI_BASE_URL" if provider == "openai" else "ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY", KEY)
    try:
        LLMProposer(cfg(provider, False, request_timeout_s=0.5)).preflight()
    finally:
        for c in held:
            c.close()
        srv.close()
