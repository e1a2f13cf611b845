"""The judge's static load check survives CPython 3.11's spurious AST SystemError.

A CPU optimize run (GroupNorm task, two checks in flight beside the proposer) lost its first
candidate as "judge failed: SystemError: AST constructor recursion depth mismatch (before=33,
after=27)": ast.parse in the check thread raced another thread's parse (python/cpython#106905).
"""
from __future__ import annotations

import ast

import pytest

from kernelwright.judge import stages
from kernelwright.judge.verdict import Rejection

SRC = "class ModelNew:\n    pass\n"


def _flaky(n_fail: int, message: str):
    real = ast.parse
    calls = {"n": 0}

    def parse(src, *a, **kw):
        calls["n"] += 1
        if calls["n"] <= n_fail:
            raise SystemError(message)
        return real(src, *a, **kw)

    return parse, calls


def test_recursion_depth_mismatch_is_retried(monkeypatch):
    parse, calls = _flaky(2, "AST constructor recursion depth mismatch (before=33, after=27)")
    monkeypatch.setattr(stages.ast, "parse", parse)
    stages._static_load_check(SRC)  # no exception: parsed on the third try
    assert calls["n"] == 3


def test_other_system_errors_still_raise(monkeypatch):
    parse, _ = _flaky(1, "something else")
    monkeypatch.setattr(stages.ast, "parse", parse)
    with pytest.raises(SystemError):
        stages._static_load_check(SRC)


def test_persistent_mismatch_raises_and_missing_model_new_rejects(monkeypatch):
    with pytest.raises(Rejection):
        stages._static_load_check("x = 1\n")
    parse, _ = _flaky(100, "AST constructor recursion depth mismatch (before=1, after=2)")
    monkeypatch.setattr(stages.ast, "parse", parse)
    with pytest.raises(SystemError):
        stages._static_load_check(SRC)
