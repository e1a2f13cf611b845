"""ast.parse for code that runs in threads beside other parses (the loop judges, proposes and
builds references in threads).

CPython 3.11's AST constructor keeps its recursion depth in per-interpreter state, so two parses at
once can raise a spurious "AST constructor recursion depth mismatch" SystemError
(python/cpython#106905); a CPU optimize run lost a candidate to it as "judge failed". The depth is
reset on each call, so a retry parses.
"""
from __future__ import annotations

import ast
import time


def parse(src: str) -> ast.Module:
    """ast.parse, retried on that SystemError (any other error, and a fifth mismatch, raise)."""
    for attempt in range(5):
        try:
            return ast.parse(src)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
