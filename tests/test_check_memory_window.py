"""How many checks of a task the loop runs side by side on a GPU: sized by what one check holds,
outputs included (the H100 MiniGPT run counted inputs only: an attention task whose output is
128x8x512x512 got 8 checks at once and every one ran out of memory)."""

from kernelwright.judge.inputs import count_elements, count_io_elements
from kernelwright.loop.run import checks_that_fit
from kernelwright.task import load_task

SCORES = '''
import torch
import torch.nn as nn

B, T, D = 2, 64, 16


class Model(nn.Module):
    def forward(self, q, k):
        # [B, T, D] x [B, D, T] -> [B, T, T]: the output is T / (2 D) = 2x the inputs
        return torch.softmax(q @ k.transpose(1, 2), dim=-1)


def get_inputs():
    return [torch.randn(B, T, D), torch.randn(B, T, D)]


def get_init_inputs():
    return []
'''


def test_outputs_are_counted(tmp_path):
    p = tmp_path / "scores.py"
    p.write_text(SCORES)
    task = load_task(p)
    ins = 2 * 2 * 64 * 16
    assert count_elements(task, {}) == ins
    assert count_io_elements(task, {}) == ins + 2 * 64 * 64
    assert count_io_elements(task, {"T": 128}) == 2 * 2 * 128 * 16 + 2 * 128 * 128


def test_window_from_footprint():
    gib = 1 << 30
    attention = 2 * 128 * 8 * 512 * 512  # MiniGPT's masked scores in and out
    assert checks_that_fit(attention, 80 * gib) == 1
    assert checks_that_fit(1 << 20, 80 * gib) > 8  # small tasks: the worker count decides
    assert checks_that_fit(10**12, 80 * gib) == 1  # never zero


CHAIN = '''
import torch
import torch.nn as nn

N = 1000


class Model(nn.Module):
    def forward(self, x):
        a = x * 2.0
        b = a + 1.0
        a = None  # freed: the peak is two chain values at once, not the whole chain
        c = torch.tanh(b)
        b = None
        d = c * 3.0
        c = None
        return d.view(-1)


def get_inputs():
    return [torch.randn(N)]


def get_init_inputs():
    return []
'''


def test_intermediates_peak_counts_live_values_only(tmp_path):
    from kernelwright.judge.inputs import count_footprint

    p = tmp_path / "chain.py"
    p.write_text(CHAIN)
    io, peak = count_footprint(load_task(p), {})
    assert io == 2 * 1000  # x in, d out (the view is not a new value)
    assert peak == 2 * 1000  # two of a, b, c, d alive at once
    io2, peak2 = count_footprint(load_task(p), {"N": 5000})
    assert (io2, peak2) == (10000, 10000)


def test_intermediates_shrink_the_window():
    gib = 1 << 30
    io = 128 * 512 * 768 + 128 * 512 * 3072  # MiniGPT's linear + GELU task: x in, y out
    assert checks_that_fit(io, 80 * gib) == 3  # what the H100 run put side by side (51 GB, OOM)
    assert checks_that_fit(io, 80 * gib, intermediates=3 * 128 * 512 * 3072) == 1
