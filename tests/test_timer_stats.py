"""Statistics from raw times and the keep/revert rule, on synthetic timings (no GPU, no timing)."""
import math
import random

import pytest

from kernelwright.judge.stats import (InvalidTimes, TimingStats, aa_spread, keep_rule, percentile, speedup,
                                      summarize, validate_times)


def _np_percentile(vals, q):
    # numpy's default (linear) percentile, written out: the reference for ours.
    s = sorted(vals)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def test_summarize_matches_linear_percentiles():
    rng = random.Random(7)
    times = [rng.lognormvariate(0, 0.3) for _ in range(101)]
    st = summarize(times, "events")
    assert st.n == 101 and st.mode == "events"
    assert st.median_ms == pytest.approx(_np_percentile(times, 50))
    assert st.p20_ms == pytest.approx(_np_percentile(times, 20))
    assert st.p80_ms == pytest.approx(_np_percentile(times, 80))
    assert st.min_ms == min(times) and st.max_ms == max(times)
    assert st.p20_ms <= st.median_ms <= st.p80_ms


def test_percentile_even_count_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 20) == pytest.approx(1.6)
    assert summarize([5.0], "graph").median_ms == 5.0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], [0.0, 1.0], [-1e-3], ["x"]])
def test_invalid_times_rejected(bad):
    with pytest.raises(InvalidTimes):
        summarize(bad, "events")


def test_validate_min_count():
    with pytest.raises(InvalidTimes):
        validate_times([1.0, 2.0], min_count=3)
    assert validate_times([1, 2, 3], min_count=3) == [1.0, 2.0, 3.0]


def test_spread_and_speedup():
    st = TimingStats("events", 5, 2.0, 1.0, 3.0, 0.5, 4.0)
    assert st.spread == pytest.approx(1.0)
    fast = TimingStats("events", 5, 0.5, 0.4, 0.6, 0.3, 0.7)
    assert speedup(st, fast) == pytest.approx(4.0)
    assert speedup(None, fast) is None


def test_aa_spread_is_relative_median_difference():
    assert aa_spread([1.0, 1.0, 1.0], [1.1, 1.1, 1.1]) == pytest.approx(0.1)
    assert aa_spread([2.0], [2.0]) == 0.0


def test_keep_rule_needs_gain_above_min_gain():
    inc = [1.0] * 20
    assert not keep_rule(inc, [0.99] * 20, incumbent_aa=0.0, keep_min_gain=0.02).faster  # 1 %: noise
    d = keep_rule(inc, [0.95] * 20, incumbent_aa=0.0, keep_min_gain=0.02)
    assert d.faster and d.gain == pytest.approx(1 / 0.95 - 1) and d.noise == 0.02


def test_keep_rule_needs_gain_above_aa_spread():
    # A noisy incumbent: 8 % between its own two timings, so a 5 % gain is not believed.
    d = keep_rule([1.0] * 20, [0.95] * 20, incumbent_aa=0.08, keep_min_gain=0.02)
    assert not d.faster and d.noise == 0.08
    assert keep_rule([1.0] * 20, [0.9] * 20, incumbent_aa=0.08, keep_min_gain=0.02).faster


def test_keep_rule_slower_candidate_never_kept():
    d = keep_rule([1.0] * 10, [1.5] * 10, incumbent_aa=0.0, keep_min_gain=0.0)
    assert not d.faster and d.gain < 0


def test_keep_rule_uses_medians_not_means():
    # One huge outlier in the candidate does not hide a real 10 % gain.
    cand = [0.9] * 19 + [50.0]
    assert keep_rule([1.0] * 20, cand, incumbent_aa=0.01, keep_min_gain=0.02).faster
