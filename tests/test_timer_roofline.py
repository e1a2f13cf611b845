"""Bytes, FLOPs, rates, bound and the physical floor (threat B9), on synthetic ceilings."""
import pytest
import torch

from kernelwright.judge import roofline
from kernelwright.judge.ceilings import FALLBACK, MEASURED, Ceilings

H100ISH = Ceilings("GPU", 3000.0, {"bfloat16": 700.0, "float32": 50.0}, MEASURED)


def test_tensor_bytes_counts_distinct_storage_once():
    x = torch.zeros(10, 4)  # 160 B
    w = torch.zeros(4, dtype=torch.float16)  # 8 B
    assert roofline.tensor_bytes([x, x], (w,), {"k": x}) == 168
    assert roofline.tensor_bytes([torch.zeros(0)]) == 0
    assert roofline.main_dtype([x, w]) == "float32"


def test_flops_from_flop_counter():
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    out, flops = roofline.run_counting_flops(lambda: a @ b)
    assert flops == 2 * 16 * 32 * 8
    assert torch.equal(out, a @ b)
    _, f2 = roofline.run_counting_flops(lambda: torch.softmax(a, -1))
    assert f2 == 0  # not counted: memory-bound by construction


def test_memory_bound_floor_and_rates():
    work = roofline.Work(bytes_moved=3_000_000_000, flops=0, dtype="bfloat16")  # 3 GB
    assert roofline.bound(work, H100ISH) == "memory"
    assert roofline.floor_ms(work, H100ISH) == pytest.approx(1.0)  # 3 GB at 3000 GB/s
    gbps, tflops = roofline.rates(work, 2.0)
    assert gbps == pytest.approx(1500.0) and tflops is None
    assert roofline.pct_of_ceiling(work, 2.0, H100ISH) == pytest.approx(50.0)


def test_compute_bound_uses_matmul_rate_of_the_dtype():
    n = 8192
    work = roofline.Work(bytes_moved=3 * n * n * 2, flops=2 * n**3, dtype="bfloat16")
    assert roofline.bound(work, H100ISH) == "compute"
    floor = roofline.floor_ms(work, H100ISH)
    assert floor == pytest.approx(2 * n**3 / 700e12 * 1e3)
    assert roofline.pct_of_ceiling(work, floor * 2, H100ISH) == pytest.approx(50.0)
    # An fp64 matmul has no measured rate of its own: the floor still has one.
    w64 = roofline.Work(bytes_moved=1, flops=10**12, dtype="float64")
    assert roofline.floor_ms(w64, H100ISH) == pytest.approx(10**12 / 700e12 * 1e3)


def test_fp32_floor_uses_the_fastest_rate_but_reports_against_fp32():
    """An fp32 answer on tensor cores (3xTF32) legitimately beats torch's CUDA-core fp32 rate
    (1.6x on an H100): the floor must not call that impossible; % of ceiling says it beat fp32."""
    n = 4096
    work = roofline.Work(bytes_moved=3 * n * n * 4, flops=2 * n**3, dtype="float32")
    fp32_time = 2 * n**3 / 50e12 * 1e3  # torch's fp32 rate
    assert not roofline.below_floor(fp32_time / 1.6, work, H100ISH, slack=0.15)
    assert roofline.below_floor(2 * n**3 / 700e12 * 1e3 / 2, work, H100ISH, slack=0.15)  # 2x the fastest rate
    assert roofline.pct_of_ceiling(work, fp32_time / 1.6, H100ISH) == pytest.approx(160.0)


def test_below_floor_rejects_impossible_times_only():
    work = roofline.Work(bytes_moved=3_000_000_000, flops=0, dtype="float32")  # floor 1 ms
    assert roofline.below_floor(1e-6, work, H100ISH, slack=0.15)  # a forged 1 ns
    assert roofline.below_floor(0.80, work, H100ISH, slack=0.15)  # 125 % of the copy ceiling
    assert not roofline.below_floor(0.90, work, H100ISH, slack=0.15)  # 111 %: within the slack
    assert not roofline.below_floor(1.05, work, H100ISH, slack=0.15)


def test_no_ceiling_means_no_floor():
    unknown = Ceilings("mystery", None, {}, "unknown GPU: no ceiling")
    work = roofline.Work(bytes_moved=10**9, flops=0, dtype="float32")
    assert roofline.floor_ms(work, unknown) is None
    assert not roofline.below_floor(1e-9, work, unknown, slack=0.0)
    assert roofline.pct_of_ceiling(work, 1.0, unknown) is None
    fallback = Ceilings("H100", 3352.0, {}, FALLBACK)
    assert roofline.floor_ms(work, fallback) == pytest.approx(10**9 / 3352e9 * 1e3)
