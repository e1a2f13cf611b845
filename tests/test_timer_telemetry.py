"""The judge's reading of the worker's telemetry (synthetic replies): the off-stream flag (threat B1)
needs both the pattern (nearly every call) and a size (a real share of the on-stream time)."""
from kernelwright.judge.timer import OFF_STREAM_SHARE, _RowResult, _telemetry


def _judge(off: dict, off_ms: dict, per_call_ms: float = 1.0, n_cycles: int = 50) -> _RowResult:
    res = _RowResult(slots=[[per_call_ms] * n_cycles, [per_call_ms] * n_cycles])
    reply = {"n_cycles": n_cycles, "calls": 2 * n_cycles, "off_stream": off, "off_stream_ms": off_ms}
    _telemetry(reply, res, run_wall_ms=1e9, slots=["incumbent", "candidate"])
    return res


def test_honest_long_kernel_late_wakeups_are_not_flagged():
    # Every call 20 us past a 1 ms kernel (host wake-up after the sync): 2%, under the share.
    res = _judge({"candidate": 50}, {"candidate": 50 * 0.020})
    assert res.flags == [] and not res.rejected


def test_work_hidden_on_another_stream_is_flagged_on_its_own_model_only():
    # The candidate's stream ends at once; its real work (0.9 ms of each 1 ms call) runs past it.
    res = _judge({"candidate": 50, "incumbent": 3}, {"candidate": 50 * 0.9, "incumbent": 3 * 0.9})
    assert len(res.flags) == 1 and "of candidate" in res.flags[0] and "threat B1" in res.flags[0]


def test_size_without_pattern_is_jitter():
    # A quarter of the calls late by a lot: jitter, not a pattern.
    res = _judge({"candidate": 12}, {"candidate": 12 * 0.5})
    assert res.flags == []


def test_threshold_is_the_share():
    just_over = _judge({"candidate": 50}, {"candidate": 50 * 1.0 * (OFF_STREAM_SHARE * 1.2)})
    just_under = _judge({"candidate": 50}, {"candidate": 50 * 1.0 * (OFF_STREAM_SHARE * 0.8)})
    assert just_over.flags and not just_under.flags
