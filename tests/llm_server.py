"""A scripted LLM server on loopback for tests: OpenAI chat completions and Anthropic messages,
streaming (SSE) and not, driven by the real official SDKs.

It answers requests from a script, one step per model request, in order; after the script is
spent it repeats its last step (so a run that asks more often than scripted still gets a reply).
A step is one of:
    "text"                       a reply with that text
    callable(body) -> str        a reply computed from the request's JSON body
    {"status": 429 | 500 | 400, "message": ...}
                                 an error response (429/5xx with retry-after-ms, so the SDK
                                 retries fast; others marked not to be retried)
    {"drop": True}               a streamed reply cut off after the first chunk (no final event)
    {"delay": s, "text": "..."}  a reply sent only after s seconds (to trip client timeouts)
Every request is recorded (method, path, headers, JSON body) for the test to assert on.

Bounded: it binds 127.0.0.1 only, refuses after `max_requests`, and shuts itself down after
`max_seconds`. Use as a context manager:

    with ScriptedLLMServer(["no code", crash_answer, good_answer], api_key="sk-test") as srv:
        os.environ["OPENAI_BASE_URL"] = srv.openai_base_url
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

Step = Union[str, Callable[[dict], str], dict]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None

    def prompt_text(self) -> str:
        """Everything the client sent as conversation text (system + messages), for assertions."""
        if not self.body:
            return ""
        parts: list[str] = []
        system = self.body.get("system")
        if isinstance(system, str):
            parts.append(system)
        elif isinstance(system, list):
            parts.extend(b.get("text", "") for b in system if isinstance(b, dict))
        for m in self.body.get("messages", []):
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(b.get("text", "") for b in content if isinstance(b, dict))
        return "\n".join(parts)


@dataclass
class ScriptedLLMServer:
    script: list[Step]
    api_key: str = "sk-test-key"
    max_requests: int = 200
    max_seconds: float = 600.0
    input_tokens: int = 120  # usage reported per reply
    output_tokens: int = 80
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0  # index of the next script step
        self._httpd: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "ScriptedLLMServer":
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.max_seconds, self.close)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def model_requests(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    # -- script ------------------------------------------------------------------------------
    def next_step(self) -> Step:
        with self._lock:
            step = self.script[min(self._next, len(self.script) - 1)]
            self._next += 1
            return step


def _make_handler(srv: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        # -- plumbing ------------------------------------------------------------------------
        def _record(self) -> Received:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = {"_unparsed": raw.decode(errors="replace")}
            rec = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with srv._lock:
                srv.received.append(rec)
                too_many = len(srv.received) > srv.max_requests
            if too_many:
                self._json(503, {"error": {"message": "scripted server: request limit reached"}}, retry=False)
                raise _Done
            return rec

        def _json(self, status: int, obj: dict, retry: bool = True) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if status >= 400:
                # Fast retries in tests; "false" stops the SDK retrying a refusal.
                self.send_header("retry-after-ms", "20")
                self.send_header("x-should-retry", "true" if retry else "false")
            self.end_headers()
            self.wfile.write(data)

        def _sse_start(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True

        def _sse(self, data: dict | str, event: str | None = None) -> None:
            payload = data if isinstance(data, str) else json.dumps(data)
            chunk = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()

        def _authorized(self, rec: Received, anthropic: bool) -> bool:
            # Anthropic SDKs send x-api-key (older) or a bearer token (newer); OpenAI a bearer token.
            bearer = rec.headers.get("authorization") == f"Bearer {srv.api_key}"
            if anthropic:
                return bearer or rec.headers.get("x-api-key") == srv.api_key
            return bearer

        # -- routes --------------------------------------------------------------------------
        def do_GET(self) -> None:
            try:
                rec = self._record()
            except _Done:
                return
            anthropic = "anthropic-version" in rec.headers
            if not self.path.rstrip("/").endswith("/models"):
                return self._json(404, {"error": {"message": f"no route {self.path}"}}, retry=False)
            if not self._authorized(rec, anthropic):
                return self._json(401, _error_body(anthropic, "authentication_error", "invalid api key"), retry=False)
            if anthropic:
                m = {"type": "model", "id": "scripted", "display_name": "scripted", "created_at": "2025-01-01T00:00:00Z"}
                return self._json(200, {"data": [m], "has_more": False, "first_id": "scripted", "last_id": "scripted"})
            m = {"id": "scripted", "object": "model", "created": 0, "owned_by": "tests"}
            self._json(200, {"object": "list", "data": [m]})

        def do_POST(self) -> None:
            try:
                rec = self._record()
            except _Done:
                return
            path = self.path.split("?")[0].rstrip("/")
            anthropic = path.endswith("/v1/messages")
            if not (anthropic or path.endswith("/chat/completions")):
                return self._json(404, {"error": {"message": f"no route {self.path}"}}, retry=False)
            if not self._authorized(rec, anthropic):
                return self._json(401, _error_body(anthropic, "authentication_error", "invalid api key"), retry=False)
            step = srv.next_step()
            body = rec.body or {}
            if isinstance(step, dict) and "status" in step:
                status = step["status"]
                message = step.get("message", f"scripted {status}")
                retry = status in (408, 409, 429) or status >= 500
                return self._json(status, _error_body(anthropic, "api_error", message), retry=retry)
            if isinstance(step, dict) and "delay" in step:
                time.sleep(step["delay"])  # past the client's timeout: it gives up and retries
                step = step.get("text", "")
            drop = isinstance(step, dict) and step.get("drop")
            text = "" if drop else (step(body) if callable(step) else str(step))
            model = body.get("model", "scripted")
            stream = bool(body.get("stream"))
            if anthropic:
                return self._anthropic(text, model, stream, drop)
            self._openai(text, model, stream, drop, bool((body.get("stream_options") or {}).get("include_usage")))

        def _openai(self, text: str, model: str, stream: bool, drop: bool, usage_in_stream: bool) -> None:
            usage = {
                "prompt_tokens": srv.input_tokens,
                "completion_tokens": srv.output_tokens,
                "total_tokens": srv.input_tokens + srv.output_tokens,
            }
            base = {"id": "chatcmpl-scripted", "created": int(time.time()), "model": model}
            if not stream:
                msg = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": msg, "finish_reason": "stop", "logprobs": None}
                return self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            self._sse_start()
            kind = {**base, "object": "chat.completion.chunk"}
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            self._sse({**kind, "choices": [first]})
            if drop:
                self._sse({**kind, "choices": [{"index": 0, "delta": {"content": "```python\nimport to"}, "finish_reason": None}]})
                return  # connection closes with no finish: the SDK sees a truncated stream
            for piece in _pieces(text):
                self._sse({**kind, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self._sse({**kind, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if usage_in_stream:
                self._sse({**kind, "choices": [], "usage": usage})
            self._sse("[DONE]")

        def _anthropic(self, text: str, model: str, stream: bool, drop: bool) -> None:
            message = {
                "id": "msg_scripted",
                "type": "message",
                "role": "assistant",
                "model": model,
                "stop_sequence": None,
            }
            if not stream:
                body = {
                    **message,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": srv.input_tokens, "output_tokens": srv.output_tokens},
                }
                return self._json(200, body)
            self._sse_start()
            start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": srv.input_tokens, "output_tokens": 1}}
            self._sse({"type": "message_start", "message": start}, "message_start")
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            self._sse(block, "content_block_start")
            if drop:
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "```py"}}
                self._sse(delta, "content_block_delta")
                return
            for piece in _pieces(text):
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
                self._sse(delta, "content_block_delta")
            self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            end = {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": srv.output_tokens},
            }
            self._sse(end, "message_delta")
            self._sse({"type": "message_stop"}, "message_stop")

    return Handler


class _Done(Exception):
    pass


def _error_body(anthropic: bool, kind: str, message: str) -> dict:
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}


def _pieces(text: str, size: int = 64) -> list[str]:
    """Split a reply into stream deltas (several, so the client really has to join them)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
