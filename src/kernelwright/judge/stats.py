"""Statistics of raw per-iteration times and the keep/revert rule. Pure Python, no torch.

The worker only returns raw times (untrusted data, threat B7); every statistic is computed here,
in the judge's process, after the times are validated (count, finite, positive: threat B9).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


class InvalidTimes(ValueError):
    """Raw times that no real run produces: empty, non-finite, zero or negative."""


@dataclass
class TimingStats:
    """Summary of one row's per-iteration times, in milliseconds.

    mode: "events" (CUDA events around each call, all streams counted) or "graph" (the judge's own
    CUDA graph of one call, replayed between events); n: timed iterations.
    """

    mode: str
    n: int
    median_ms: float
    p20_ms: float
    p80_ms: float
    min_ms: float
    max_ms: float

    @property
    def spread(self) -> float:
        """(p80 - p20) / median: the relative width of the middle 60 % of iterations."""
        return (self.p80_ms - self.p20_ms) / self.median_ms if self.median_ms > 0 else math.inf


def validate_times(times: Sequence[float], min_count: int = 1) -> list[float]:
    """The raw times as floats, or InvalidTimes saying what is wrong with them."""
    try:
        vals = [float(t) for t in times]
    except (TypeError, ValueError):
        raise InvalidTimes("the worker returned times that are not numbers") from None
    if len(vals) < min_count:
        raise InvalidTimes(f"{len(vals)} timed iteration(s) returned, at least {min_count} expected")
    bad = [v for v in vals if not math.isfinite(v) or v <= 0.0]
    if bad:
        raise InvalidTimes(f"{len(bad)} of {len(vals)} iteration times are not finite and positive (e.g. {bad[0]!r})")
    return vals


def percentile(sorted_vals: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values, q in [0, 100]."""
    if not sorted_vals:
        raise InvalidTimes("no values")
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def summarize(times: Sequence[float], mode: str) -> TimingStats:
    vals = sorted(validate_times(times))
    return TimingStats(
        mode=mode,
        n=len(vals),
        median_ms=percentile(vals, 50),
        p20_ms=percentile(vals, 20),
        p80_ms=percentile(vals, 80),
        min_ms=vals[0],
        max_ms=vals[-1],
    )


def median(times: Sequence[float]) -> float:
    return percentile(sorted(validate_times(times)), 50)


def aa_spread(first: Sequence[float], second: Sequence[float]) -> float:
    """Relative difference of the medians of two timings of the same code (an A/A test).

    A difference between two versions smaller than this is indistinguishable from noise.
    """
    a, b = median(first), median(second)
    return abs(a - b) / min(a, b)


def speedup(baseline: TimingStats | None, answer: TimingStats | None) -> float | None:
    """baseline median / answer median: > 1 means the answer is faster."""
    if baseline is None or answer is None:
        return None
    return baseline.median_ms / answer.median_ms


@dataclass
class KeepDecision:
    faster: bool
    gain: float  # incumbent median / candidate median - 1 (0.05 = candidate 5 % faster)
    noise: float  # the bar the gain had to clear: max(keep_min_gain, A/A spread of the incumbent)


def keep_rule(incumbent: Sequence[float], candidate: Sequence[float], incumbent_aa: float,
              keep_min_gain: float) -> KeepDecision:
    """"Faster" only when the candidate's median gain exceeds max(keep_min_gain, incumbent A/A spread).

    incumbent / candidate: raw per-iteration times of the two, timed interleaved in one worker;
    incumbent_aa: aa_spread of two interleaved timings of the incumbent alone.
    """
    gain = median(incumbent) / median(candidate) - 1.0
    noise = max(keep_min_gain, incumbent_aa)
    return KeepDecision(faster=gain > noise, gain=gain, noise=noise)
