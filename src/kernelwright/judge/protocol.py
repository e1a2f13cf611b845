"""Wire format between the judge and its worker: length-prefixed JSON plus raw tensor bytes.

No pickle: the worker runs untrusted code, so whatever it sends back is parsed as data only.
A message is
    8-byte little-endian length of the JSON header | JSON header | tensor payloads, in order
where the header is {"body": <tree>, "tensors": [{"dtype": str, "shape": [...], "nbytes": int}]}
and tensors inside the tree are {"__tensor__": index}. Tuples are {"__tuple__": [...]},
dtypes {"__dtype__": "float32"}.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

import torch

MAX_HEADER = 64 * 1024 * 1024  # a header larger than this is garbage from a hostile worker
MAX_PAYLOAD = 32 * 1024**3


class ChannelClosed(Exception):
    """The other side closed the pipe (the worker died or exited early)."""


class ChannelTimeout(Exception):
    """No complete message before the deadline."""


_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128,
)}
for _name in ("float8_e4m3fn", "float8_e5m2"):
    if hasattr(torch, _name):
        _DTYPES[_name] = getattr(torch, _name)


def dtype_name(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"unsupported dtype {name!r}") from None


def tensor_to_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def tensor_from_bytes(buf: bytes | memoryview, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    if len(buf) == 0:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(buf), dtype=torch.uint8)
    return flat.view(dtype).reshape(shape)


def _header(body: Any) -> tuple[bytes, list[torch.Tensor]]:
    """The length-prefixed JSON header and the tensors (contiguous, on the cpu) it refers to."""
    tensors: list[torch.Tensor] = []

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            tensors.append(x.detach().to("cpu").contiguous())
            return {"__tensor__": len(tensors) - 1}
        if isinstance(x, torch.dtype):
            return {"__dtype__": dtype_name(x)}
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            return {str(k): enc(v) for k, v in x.items()}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot send a {type(x).__name__} to or from the worker")

    tree = enc(body)
    meta = [{"dtype": dtype_name(t.dtype), "shape": list(t.shape), "nbytes": t.numel() * t.element_size()}
            for t in tensors]
    header = json.dumps({"body": tree, "tensors": meta}, allow_nan=True).encode()
    return struct.pack("<Q", len(header)) + header, tensors


def _raw(t: torch.Tensor) -> memoryview:
    """t's bytes, without a copy (t contiguous, on the cpu)."""
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B")


def encode(body: Any) -> bytes:
    head, tensors = _header(body)
    return head + b"".join(bytes(_raw(t)) for t in tensors)


def decode_header(header: bytes) -> tuple[Any, list[dict]]:
    h = json.loads(header)
    if not isinstance(h, dict) or "body" not in h or not isinstance(h.get("tensors"), list):
        raise ValueError("malformed message header")
    return h["body"], h["tensors"]


def rebuild(tree: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [rebuild(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[int(tree["__tensor__"])]
        if set(tree) == {"__tuple__"}:
            return tuple(rebuild(v, tensors) for v in tree["__tuple__"])
        if set(tree) == {"__dtype__"}:
            return dtype_from_name(tree["__dtype__"])
        return {k: rebuild(v, tensors) for k, v in tree.items()}
    return tree


def write_message(fd: int, body: Any) -> None:
    """Header, then each tensor's bytes straight from its storage: no copies in Python, and the
    write syscalls release the GIL (the loop's judge serves eight checks from one process, and
    copies of 128 MB tensors under the GIL made them take turns)."""
    head, tensors = _header(body)
    for data in [memoryview(head)] + [_raw(t) for t in tensors]:
        while data:
            n = os.write(fd, data)
            data = data[n:]


def _wait(fd: int, deadline: float | None) -> None:
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise ChannelTimeout()
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        raise ChannelTimeout()


def _read_into(fd: int, buf: memoryview, deadline: float | None) -> None:
    """Fill buf from fd (readv: into place, the GIL released while the kernel copies)."""
    got, n = 0, len(buf)
    while got < n:
        _wait(fd, deadline)
        k = os.readv(fd, [buf[got:min(n, got + (1 << 24))]])
        if not k:
            raise ChannelClosed()
        got += k


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    out = bytearray(n)
    _read_into(fd, memoryview(out), deadline)
    return bytes(out)


def read_message(fd: int, deadline: float | None = None) -> Any:
    """Read one message; raises ChannelClosed, ChannelTimeout, or ValueError on garbage."""
    (hlen,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if hlen > MAX_HEADER:
        raise ValueError(f"message header of {hlen} bytes is too large")
    tree, meta = decode_header(_read_exact(fd, hlen, deadline))
    total = sum(int(m["nbytes"]) for m in meta)
    if total > MAX_PAYLOAD:
        raise ValueError(f"message payload of {total} bytes is too large")
    tensors = []
    for m in meta:
        dtype = dtype_from_name(m["dtype"])
        shape = [int(s) for s in m["shape"]]
        nbytes = int(m["nbytes"])
        expect = dtype.itemsize * int(torch.Size(shape).numel())
        if nbytes != expect:
            raise ValueError(f"tensor of shape {shape} {m['dtype']} declared {nbytes} bytes, expected {expect}")
        flat = torch.empty(nbytes, dtype=torch.uint8)
        if nbytes:
            _read_into(fd, memoryview(flat.numpy()).cast("B"), deadline)
        tensors.append(flat.view(dtype).reshape(shape))
    return rebuild(tree, tensors)
