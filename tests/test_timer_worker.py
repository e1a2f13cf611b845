"""The timed loop's control flow on the CPU (host clock): rotation of input sets, outputs kept per
set for the judge's re-check, deferred work and lazy outputs caught. Timing values are never asserted."""
import threading
import time

import pytest
import torch
import torch.nn as nn

from kernelwright.judge import timer_worker as tw

RUN = {"op": "run", "mode": "auto", "warmup_ms": 1, "rep_ms": 1, "min_reps": 6, "max_reps": 12, "flush_bytes": 4096}


class _State:
    def __init__(self, **models):
        self.device = "cpu"
        self.models = dict(models)


class Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, -1)


class CacheByPointer(nn.Module):  # threat B4
    def __init__(self):
        super().__init__()
        self.cache = {}

    def forward(self, x):
        if x.data_ptr() not in self.cache:
            self.cache[x.data_ptr()] = torch.softmax(x, -1)
        return self.cache[x.data_ptr()]


class LateThread(nn.Module):  # threats B2/B5: returns a buffer a thread fills later
    def forward(self, x):
        out = torch.zeros_like(x)

        def late():
            time.sleep(0.005)
            out.copy_(torch.softmax(x, -1))

        threading.Thread(target=late).start()
        return out


class Lazy(torch.Tensor):  # threat B3
    pass


class Subclassed(nn.Module):
    def forward(self, x):
        return torch.softmax(x, -1).as_subclass(Lazy)


@pytest.fixture
def sets():
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(4, 9, generator=g) + 0.5] for _ in range(3)]


def _run(state, sets, slots):
    assert tw.handle(state, {"op": "load", "sets": sets})["ok"]
    return tw.handle(state, dict(RUN, slots=slots))


def test_outputs_per_input_set_are_the_right_ones(sets):
    r = _run(_State(a=Softmax()), sets, ["a", "a"])
    assert r["mode"] == "host" and r["sets"] == 3
    assert len(r["times"]) == 2 and len(r["times"][0]) == len(r["times"][1]) == r["n_cycles"] >= 6
    for k, outs in enumerate(r["outputs"]["a"]):
        torch.testing.assert_close(outs[0], torch.softmax(sets[k][0], -1))
    assert r["deferred"] == [] and r["threads_added"] <= 0


def test_interleaved_slots_time_each_model(sets):
    r = _run(_State(inc=Softmax(), cand=Softmax()), sets, ["inc", "cand", "inc"])
    assert len(r["times"]) == 3 and len({len(t) for t in r["times"]}) == 1
    assert set(r["outputs"]) == {"inc", "cand"}


def test_cache_by_pointer_returns_stale_outputs(sets):
    # The live buffer keeps its address while its contents change: the cache replays set 0's
    # answer for the other sets, which the judge's re-check (timer._recheck) then rejects.
    r = _run(_State(c=CacheByPointer()), sets, ["c", "c"])
    outs = r["outputs"]["c"]
    wrong = [k for k in range(3) if not torch.allclose(outs[k][0], torch.softmax(sets[k][0], -1))]
    assert wrong, "a pointer-keyed cache must not be able to return right answers for new contents"


def test_deferred_work_is_caught(sets):
    r = _run(_State(d=LateThread()), sets, ["d", "d"])
    assert len(r["deferred"]) == 3


def test_subclassed_output_rejected(sets):
    r = _run(_State(s=Subclassed()), sets, ["s", "s"])
    assert "rejected" in r and "Lazy" in r["rejected"]


def test_wall_op_and_unknown_op(sets):
    st = _State(a=Softmax())
    tw.handle(st, {"op": "load", "sets": sets})
    assert tw.handle(st, {"op": "wall", "name": "a", "reps": 3}) == {"ok": True}
    assert "error" in tw.handle(st, {"op": "nope"})


def test_output_aliasing_the_input_is_not_called_deferred(sets):
    class InPlace(nn.Module):
        def forward(self, x):
            return x.mul_(2.0)  # the live buffer is refilled before every call: not deferred work

    r = _run(_State(i=InPlace()), sets, ["i", "i"])
    assert r["deferred"] == []
    for k, outs in enumerate(r["outputs"]["i"]):
        torch.testing.assert_close(outs[0], sets[k][0] * 2.0)


def test_liger_family_mapping():
    from kernelwright.judge.timer import liger_family

    assert liger_family("return torch.nn.functional.cross_entropy(x.float(), t)") == "cross_entropy"
    assert liger_family("x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) # RMSNorm") == "rmsnorm"
    assert liger_family("self.ln = nn.LayerNorm(d)") == "layernorm"
    assert liger_family("return torch.softmax(x, dim=-1)") == "softmax"
    assert liger_family("return torch.log_softmax(x, dim=-1)") is None
    assert liger_family("return torch.relu(x)") is None


TASK = """
import torch
import torch.nn as nn
class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
B = 6
D = 33
def get_inputs():
    return [torch.randn(B, D)]
def get_init_inputs():
    return []
"""
GOOD = "import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x):\n" \
       "        return torch.softmax(x, dim=-1)\n"
CACHE = """
import torch
import torch.nn as nn
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.cache = {}
    def forward(self, x):
        if x.data_ptr() not in self.cache:
            self.cache[x.data_ptr()] = torch.softmax(x, dim=-1)
        return self.cache[x.data_ptr()]
"""


@pytest.mark.slow
def test_time_answer_end_to_end_host_clock(tmp_path):
    """Through the real sandboxed workers: an honest answer is timed with the eager row beside
    it; a pointer cache is rejected by the re-check of its timed outputs."""
    from kernelwright.config import TimerConfig
    from kernelwright.judge.timer import compare, time_answer

    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "cache.py").write_text(CACHE)
    cfg = TimerConfig(device="cpu", warmup_ms=1, rep_ms=1, min_reps=5, max_reps=10, flush_l2_bytes=4096,
                      ceilings_cache=str(tmp_path / "ceil.json"))
    rep = time_answer(tmp_path / "task.py", tmp_path / "good.py", cfg, baselines=("eager",), host_clock_ok=True)
    assert rep.accepted, rep.reason
    assert rep.answer is not None and rep.answer.mode == "host" and rep.baselines["eager"] is not None
    assert set(rep.speedup) == {"eager"} and rep.input_sets == cfg.input_sets
    assert rep.bytes_moved == 2 * 6 * 33 * 4  # x read once, y written once (fp32)
    # host time to enqueue one call, per row (a host clock: no back-to-back wall clock on a CPU)
    assert set(rep.host_ms) == {"answer", "eager"} and all(v > 0 for v in rep.host_ms.values())
    assert rep.baseline_wall_ms == {} and rep.speedup_back_to_back == {}
    bad = time_answer(tmp_path / "task.py", tmp_path / "cache.py", cfg, baselines=(), host_clock_ok=True)
    assert not bad.accepted and "differ from the reference" in bad.reason
    c = compare(tmp_path / "task.py", tmp_path / "good.py", tmp_path / "cache.py", cfg, host_clock_ok=True)
    assert not c.accepted and not c.faster and "candidate" in c.reason


# TASK's softmax, with a thread left behind by every call (the timed ones too)
THREADY = TASK.replace("import torch\n", "import threading\nimport time\nimport torch\n", 1).replace(
    "        return torch.softmax", "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n"
    "        return torch.softmax").replace("class Model(", "class {cls}(")


def _host_cfg(tmp_path):
    from kernelwright.config import TimerConfig

    return TimerConfig(device="cpu", warmup_ms=1, rep_ms=1, min_reps=5, max_reps=10, flush_l2_bytes=4096,
                       ceilings_cache=str(tmp_path / "ceil.json"))


@pytest.mark.slow
def test_task_timer_candidates_host_clock(tmp_path):
    """TaskTimer (the loop's timer): eager timed once for the task; a candidate alone, then beside an
    incumbent in one run (a comparison with its noise bar); a pointer cache rejected by the re-check."""
    from kernelwright.judge.timer import TaskTimer

    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "cache.py").write_text(CACHE)
    t = TaskTimer(tmp_path / "task.py", _host_cfg(tmp_path), host_clock_ok=True)
    first = t.candidate(tmp_path / "good.py")
    assert first.report.accepted, first.report.reason
    assert first.comparison is None and first.incumbent is None
    eager = first.report.baselines["eager"]
    assert eager is not None and first.report.speedup["eager"] == pytest.approx(eager.median_ms /
                                                                                first.report.answer.median_ms)
    second = t.candidate(tmp_path / "good.py", tmp_path / "good.py")
    assert second.report.accepted and second.incumbent == str(tmp_path / "good.py")
    assert second.report.baselines["eager"] is eager  # the task's eager row, timed once
    c = second.comparison
    assert c is not None and c.accepted and c.noise >= 0.02 and c.candidate is second.report.answer
    bad = t.candidate(tmp_path / "cache.py", tmp_path / "good.py")
    assert not bad.report.accepted and bad.comparison is None and "differ from the reference" in bad.report.reason


@pytest.mark.slow
def test_a_thread_in_a_baseline_is_noted_in_an_answer_rejected(tmp_path):
    """The B2 rule (a thread appears during the timed calls) rejects an answer; a baseline row (the
    task's own Model: torch's code) is timed and carries a note instead."""
    from kernelwright.judge.timer import time_answer, time_baselines

    (tmp_path / "task.py").write_text(THREADY.format(cls="Model"))
    (tmp_path / "answer.py").write_text(THREADY.format(cls="ModelNew"))
    cfg = _host_cfg(tmp_path)
    base = time_baselines(tmp_path / "task.py", cfg, ("eager",), host_clock_ok=True)
    assert base.baselines["eager"] is not None
    assert any("thread" in n and "not rejected" in n for n in base.notes), base.notes
    rep = time_answer(tmp_path / "task.py", tmp_path / "answer.py", cfg, baselines=(), host_clock_ok=True)
    assert not rep.accepted and "new thread" in rep.reason


def test_host_bound_note_and_back_to_back_speedup():
    from kernelwright.judge.timer import TimingReport, host_bound_note

    assert host_bound_note("answer", 0.5, 2.0) == ""
    note = host_bound_note("answer", 1.9, 2.1)
    assert note.startswith("answer: host-bound") and "1.900 ms against 2.100 ms" in note
    assert host_bound_note("answer", None, 2.0) == ""
    rep = TimingReport(None, {}, {}, None, None, None, "memory", "", [], True, "", "gpu",
                       wall_ms_per_call=2.0, baseline_wall_ms={"eager": 2.5, "compile": None})
    assert rep.speedup_back_to_back == {"eager": 1.25}


def test_lead_cycles_from_the_measured_spin_rate():
    """The lead before each timed call: the spin rate is measured once with events, then converted."""
    import types

    from kernelwright.judge import timer_worker as tw

    slept = []

    class Ev:
        def __init__(self, enable_timing=True):
            self.t = 0.0

        def record(self):
            self.t = sum(slept) / 2000.0 / 1e3  # a GPU spinning 2000 cycles per us; ms

        def synchronize(self):
            pass

        def elapsed_time(self, other):
            return other.t - self.t

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(Event=Ev, _sleep=slept.append))
    tw._CYCLES_PER_US.clear()
    try:
        assert tw._lead_cycles(fake, 0.0) == 0
        assert tw._lead_cycles(fake, 300.0) == 600_000
        assert len(slept) == 3  # measured once, then cached
        assert tw._lead_cycles(fake, 50.0) == 100_000 and len(slept) == 3
        no_sleep = types.SimpleNamespace(cuda=types.SimpleNamespace(Event=Ev))
        assert tw._lead_cycles(no_sleep, 300.0) == 0  # a torch without _sleep: no lead, not a crash
    finally:
        tw._CYCLES_PER_US.clear()


def test_run_body_carries_the_lead():
    from kernelwright.config import TimerConfig
    from kernelwright.judge.timer import _run_body

    assert _run_body(TimerConfig(lead_us=123.0), ["answer"], "auto")["lead_us"] == 123.0
    assert TimerConfig().lead_us > 0


def test_timed_run_keeps_the_garbage_collector_off_and_restores_it(monkeypatch):
    import gc

    from kernelwright.judge import timer_worker as tw

    seen = []
    monkeypatch.setattr(tw, "_run_timed", lambda state, body, torch: seen.append(gc.isenabled()) or {"ok": 1})
    assert gc.isenabled()
    assert tw._op_run(None, {}, None) == {"ok": 1}
    assert seen == [False] and gc.isenabled()

    def boom(state, body, torch):
        raise RuntimeError("x")

    monkeypatch.setattr(tw, "_run_timed", boom)
    with pytest.raises(RuntimeError):
        tw._op_run(None, {}, None)
    assert gc.isenabled()


class _FakeEvents:
    """torch's event API as _CudaClock uses it, with scripted gaps between the end and all-streams
    events: `gaps` is consumed one per finish() (empty probes and timed calls alike)."""

    def __init__(self, gaps, call_ms=1.0):
        import types

        self.gaps, self.call_ms = list(gaps), call_ms
        self.now = 0.0
        fake = self

        class Ev:
            def __init__(self, enable_timing=True):
                self.t = 0.0

        class Base:
            @staticmethod
            def record(ev, stream=None):
                ev.t = fake.now

            @staticmethod
            def synchronize(ev):
                pass

            @staticmethod
            def elapsed_time(a, b):
                return b.t - a.t

        def sync():
            fake.now += fake.gaps.pop(0)

        self.torch = types.SimpleNamespace(
            _C=types.SimpleNamespace(_CudaEventBase=Base, _cuda_synchronize=sync),
            cuda=types.SimpleNamespace(Event=Ev, current_stream=lambda: None))


def test_off_stream_bias_follows_the_hosts_latency_but_not_hidden_work():
    from kernelwright.judge.timer_worker import _CudaClock

    # Calibrated at 10 us; then the host slows to 40 us for every window, probes included: an
    # honest call is not past its stream (the H100 MiniGPT GEMM flagged at 31 us per call).
    fe = _FakeEvents([0.010] * 25 + [0.040] * 200)
    clock = _CudaClock(fe.torch)
    clock.calibrate()
    for _ in range(40):  # a timed call then its probe
        clock.begin()
        clock.finish()
        ms, off = clock.read()
        clock.probe()
    assert off == 0.0
    # Hidden work: 200 us past the end event in the call's window only; probes stay at 40 us.
    fe.gaps = [0.240, 0.040] * 10
    for _ in range(10):
        clock.begin()
        clock.finish()
        ms, off = clock.read()
        clock.probe()
    assert abs(off - 0.200) < 1e-9 and ms >= 0.200
