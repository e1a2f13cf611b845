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
