"""Shared pieces of the command modules: the console, device resolution, error printing."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from ..errors import KernelwrightError, UsageError

# Human output goes to stderr so that `--json` leaves stdout holding one JSON object only.
console = Console(stderr=True)

CPU_TIMING_NOTE = (
    "No GPU: running on the CPU under the Triton interpreter. Correctness only: "
    "no timing measured here is meaningful."
)


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu". "cuda" without one is a UsageError."""
    import torch

    device = device.lower()
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}", "Use --device cpu, --device cuda or --device auto.")
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise UsageError(
            f"--device cuda asked for, but {why}",
            "Run on a machine with an NVIDIA GPU and a CUDA build of torch, or use --device cpu.",
        )
    return device


def print_error(exc: KernelwrightError, json_out: bool, **extra: Any) -> int:
    if json_out:
        print(json.dumps({"error": exc.message, "hint": exc.hint, **extra}))
    console.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        console.print(f"  [yellow]->[/] {exc.hint}")
    return exc.exit_code


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()
