"""Chat models behind one small protocol: the official OpenAI and Anthropic SDKs, and a scripted
in-process model for tests.

Endpoint and key come from the SDKs' own variables (OPENAI_BASE_URL / OPENAI_API_KEY,
ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY), so local OpenAI-compatible servers work unchanged.
Once a client holds its key, the key is removed from os.environ: nothing this process spawns
afterwards (judge workers, candidate code) can inherit it. Every text that leaves this module
for a prompt, a file or a message passes through `redact`.

Retries: the SDKs retry timeouts, connection errors, 408/409/429 and 5xx themselves, with
exponential backoff that honours Retry-After (`max_retries`). A stream that ends without its
final event is not an error to either SDK; we detect it and retry the whole call here.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union

from ...config import LLMConfig
from ...errors import UsageError

# Variables whose values must never reach a prompt, a saved file, a log or a candidate.
KEY_VARS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
}
BASE_URL_VARS = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)
_SECRETS: set[str] = set()  # values seen in key variables, kept only to redact them
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Replace every known secret value (held keys, and any *KEY*/*TOKEN*/*SECRET* variable now
    in the environment) by [redacted]."""
    if not text:
        return text
    values = set(_SECRETS)
    values.update(v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8)
    for v in sorted(values, key=len, reverse=True):  # longest first: a key may contain another
        text = text.replace(v, REDACTED)
    return text


def take_key(provider: str) -> tuple[str, str] | None:
    """(variable, value) of the provider's key from its SDK variables, first set one wins; every
    one of them is removed from os.environ (and remembered for redaction)."""
    found = None
    for var in KEY_VARS[provider]:
        value = os.environ.pop(var, None)
        if value:
            _SECRETS.add(value)
            found = found or (var, value)
    return found


@dataclass
class Reply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish: str = "stop"  # "stop", or "length" when cut off at max_tokens


class LLMError(Exception):
    """A request failed after all retries; the message is redacted and says what happened."""


class ChatModel(Protocol):
    """What the roles need from a model: one chat turn, and a reachability check."""

    provider: str
    model: str

    def chat(self, system: str, messages: list[dict[str, str]]) -> Reply: ...

    def ping(self) -> None:
        """Raise UsageError (with a hint) when the endpoint is unreachable or refuses the key."""
        ...


# --------------------------------------------------------------------------------------------
# Scripted model (tests: roles, parsing, the loop)
# --------------------------------------------------------------------------------------------
ScriptStep = Union[str, Callable[[str, list], str], Exception]


@dataclass
class ScriptedModel:
    """Answers each chat() from a script, in order; repeats the last step once spent.
    A step is reply text, a callable(system, messages) -> text, or an exception to raise.
    `calls` records (system, messages) of every call."""

    script: list[ScriptStep]
    provider: str = "scripted"
    model: str = "scripted"
    input_tokens: int = 100
    output_tokens: int = 50
    calls: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)

    def chat(self, system: str, messages: list[dict[str, str]]) -> Reply:
        step = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append((system, [dict(m) for m in messages]))
        if isinstance(step, Exception):
            raise step
        text = step(system, messages) if callable(step) else step
        return Reply(text, self.input_tokens, self.output_tokens)

    def ping(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# The official SDKs
# --------------------------------------------------------------------------------------------
class _StreamCut(Exception):
    """A stream ended without its final event (connection dropped mid-reply)."""


def _failed_to_connect(exc: BaseException) -> bool:
    """Did the connection itself fail (httpx ConnectError / ConnectTimeout / ProxyError anywhere
    in the cause chain), as opposed to a connected server that did not answer?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in ("ConnectError", "ConnectTimeout", "ProxyError"):
            return True
        e = e.__cause__ or e.__context__
    return False


def _import_sdk(provider: str) -> Any:
    try:
        if provider == "openai":
            import openai as sdk
        else:
            import anthropic as sdk
    except ImportError:
        raise UsageError(
            f"--llm {provider}:... needs the {provider} package",
            "Install the LLM extras: pip install 'kernelwright[llm]'.",
        ) from None
    return sdk


class SDKChatModel:
    """One chat turn through `openai.OpenAI().chat.completions` or `anthropic.Anthropic().messages`."""

    def __init__(self, cfg: LLMConfig) -> None:
        self.cfg = cfg
        self.provider = cfg.provider
        self.model = cfg.model
        self.sdk = _import_sdk(cfg.provider)
        key = take_key(cfg.provider)
        if not key:
            var = KEY_VARS[cfg.provider][0]
            raise UsageError(
                f"--llm {cfg.provider}:{cfg.model} needs an API key, and {var} is not set",
                f"export {var}=... (any non-empty value for a local server that checks none); "
                f"point {BASE_URL_VARS[cfg.provider]} at the endpoint when it is not the provider's own.",
            )
        # ANTHROPIC_AUTH_TOKEN is a bearer token (proxies, gateways), not an x-api-key.
        cred = "auth_token" if key[0] == "ANTHROPIC_AUTH_TOKEN" else "api_key"
        common = {cred: key[1], "timeout": cfg.request_timeout_s, "max_retries": cfg.max_retries}
        # Base URL: the SDK reads its own variable when we pass none.
        self.client = self.sdk.OpenAI(**common) if self.provider == "openai" else self.sdk.Anthropic(**common)
        self.base_url = str(self.client.base_url)
        # OpenAI reasoning models refuse max_tokens and a temperature; older servers refuse
        # max_completion_tokens. We start from the config and adapt once per refusal (see _adapt).
        self._token_param = cfg.openai_max_tokens_param
        self._temperature: float | None = cfg.temperature

    # -- reachability ------------------------------------------------------------------------
    def ping(self) -> None:
        """GET the models list with a short timeout and no retries. Unreachable means the TCP
        connection itself failed (refused, no route, DNS); any HTTP answer but 401/403, or a
        server that accepts the connection but has no such route (closes it, never answers),
        counts as reachable: minimal OpenAI-compatible servers often lack /models."""
        sdk = self.sdk
        quick = self.client.with_options(timeout=min(5.0, self.cfg.request_timeout_s), max_retries=0)
        where = f"{self.provider} endpoint {self.base_url}"
        try:
            quick.models.list()
        except (sdk.AuthenticationError, sdk.PermissionDeniedError) as exc:
            raise UsageError(
                f"{where} refused the API key ({exc.status_code})",
                f"Check {KEY_VARS[self.provider][0]} (and {BASE_URL_VARS[self.provider]}).",
            ) from None
        except sdk.APIStatusError:
            return  # it answered: reachable
        except sdk.APIConnectionError as exc:  # includes APITimeoutError
            if not _failed_to_connect(exc):
                return  # connected, then no (or no HTTP) answer on this route
            raise UsageError(
                f"{where} is unreachable: {redact(str(exc.__cause__ or exc))}",
                f"Start the server or fix {BASE_URL_VARS[self.provider]}; for the default endpoint check the network.",
            ) from None

    # -- one turn ----------------------------------------------------------------------------
    def chat(self, system: str, messages: list[dict[str, str]]) -> Reply:
        sdk = self.sdk
        last: Exception | None = None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(self.cfg.retry_backoff_s * 2 ** (attempt - 1))
            try:
                return self._once(system, messages)
            except _StreamCut as exc:
                last = exc  # the SDK does not retry a stream cut mid-body; we do
            except sdk.APIConnectionError as exc:
                if not self.cfg.stream:
                    raise LLMError(self._describe(exc)) from None  # the SDK already retried it
                last = exc  # raised while reading a stream: retry the whole call
            except sdk.BadRequestError as exc:
                if not self._adapt(exc):
                    raise LLMError(self._describe(exc)) from None
                last = exc
            except sdk.APIError as exc:  # 429/5xx left after the SDK's retries, 401, 404, ...
                raise LLMError(self._describe(exc)) from None
        raise LLMError(self._describe(last))

    def _describe(self, exc: Exception | None) -> str:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status else type(exc).__name__
        return redact(f"{self.provider}:{self.model} request failed ({what}): {exc}")

    def _adapt(self, exc: Exception) -> bool:
        """On a 400 naming a parameter we can do without, change it and say to retry. The first
        parameter of ours that the message names is the refused one ("Unsupported parameter:
        'max_tokens' ... use 'max_completion_tokens' instead")."""
        msg = str(exc).lower()
        sent = [self._token_param] if self.provider == "openai" else []
        if self._temperature is not None:
            sent.append("temperature")
        found = [(m.start(), p) for p in sent if (m := re.search(rf"\b{p}\b", msg))]
        if not found:
            return False
        refused = min(found)[1]
        if refused == "temperature":
            self._temperature = None
        else:
            self._token_param = "max_tokens" if refused == "max_completion_tokens" else "max_completion_tokens"
        return True

    def _once(self, system: str, messages: list[dict[str, str]]) -> Reply:
        if self.provider == "openai":
            return self._openai(system, messages)
        return self._anthropic(system, messages)

    def _openai(self, system: str, messages: list[dict[str, str]]) -> Reply:
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, *messages],
            self._token_param: self.cfg.max_tokens,
        }
        if self._temperature is not None:
            kw["temperature"] = self._temperature
        if not self.cfg.stream:
            r = self.client.chat.completions.create(**kw)
            choice = r.choices[0]
            u = r.usage
            return Reply(
                choice.message.content or "",
                getattr(u, "prompt_tokens", 0) or 0,
                getattr(u, "completion_tokens", 0) or 0,
                choice.finish_reason or "stop",
            )
        parts: list[str] = []
        finish = None
        inp = out = 0
        for chunk in self.client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
            if chunk.usage:
                inp, out = chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
            for ch in chunk.choices:
                if ch.delta and ch.delta.content:
                    parts.append(ch.delta.content)
                finish = ch.finish_reason or finish
        if finish is None:
            raise _StreamCut("stream ended before finish_reason")
        return Reply("".join(parts), inp, out, finish)

    def _anthropic(self, system: str, messages: list[dict[str, str]]) -> Reply:
        kw: dict[str, Any] = {
            "model": self.model,
            "system": system,
            "messages": messages,
            "max_tokens": self.cfg.max_tokens,
        }
        if self._temperature is not None:
            # Through extra_body: newer anthropic SDKs dropped the keyword, older ones have it,
            # and the API takes it from the body either way (a 400 naming it drops it, _adapt).
            kw["extra_body"] = {"temperature": self._temperature}
        if not self.cfg.stream:
            r = self.client.messages.create(**kw)
            text = "".join(getattr(b, "text", "") for b in r.content if getattr(b, "type", "") == "text")
            finish = "length" if r.stop_reason == "max_tokens" else "stop"
            return Reply(text, r.usage.input_tokens or 0, r.usage.output_tokens or 0, finish)
        parts: list[str] = []
        finish = None
        inp = out = 0
        stopped = False
        for ev in self.client.messages.create(**kw, stream=True):
            if ev.type == "message_start":
                inp = ev.message.usage.input_tokens or 0
            elif ev.type == "content_block_delta" and getattr(ev.delta, "type", "") == "text_delta":
                parts.append(ev.delta.text)
            elif ev.type == "message_delta":
                out = ev.usage.output_tokens or out
                finish = "length" if ev.delta.stop_reason == "max_tokens" else "stop"
            elif ev.type == "message_stop":
                stopped = True
        if not stopped:
            raise _StreamCut("stream ended before message_stop")
        return Reply("".join(parts), inp, out, finish or "stop")


def make_model(cfg: LLMConfig) -> ChatModel:
    if cfg.provider not in KEY_VARS:
        raise UsageError(f"unknown LLM provider {cfg.provider!r}", "Use --llm openai:MODEL or --llm anthropic:MODEL.")
    if not cfg.model:
        raise UsageError("--llm needs a model name", "e.g. --llm openai:gpt-4o or --llm anthropic:claude-sonnet-4-5")
    return SDKChatModel(cfg)
