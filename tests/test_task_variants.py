"""Size variants of a task keep its derived module constants consistent (KernelBench level1/95:
`input_shape = (num_classes,)` stayed stale when num_classes was varied, so the targets ran past
the logits' class count; on cuda the judge's own reference then tripped a device-side assert)."""
import textwrap

import torch

from kernelwright.task import load_task

TASK = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Model(nn.Module):
        def forward(self, logits, targets):
            return nn.functional.cross_entropy(logits, targets)

    batch_size = 16
    num_classes = 10
    input_shape = (num_classes,)
    half: int = num_classes // 2
    dim = 1

    def get_inputs():
        return [torch.rand(batch_size, *input_shape), torch.randint(0, num_classes, (batch_size,))]

    def get_init_inputs():
        return []
''')


def test_derived_constants_follow_a_size_variant_and_are_restored(tmp_path):
    f = tmp_path / "task_ce.py"
    f.write_text(TASK)
    task = load_task(f)
    assert {"batch_size", "num_classes"} <= set(task.size_constants)
    logits, targets = task.inputs({"num_classes": 3, "batch_size": 64}, seed=1)
    assert logits.shape == (64, 3) and int(targets.max()) < 3  # was (64, 10) logits with classes < 3
    torch.nn.functional.cross_entropy(logits, targets)  # consistent: no out-of-range target
    g = task.module.__dict__
    assert (g["num_classes"], g["input_shape"], g["half"], g["dim"]) == (10, (10,), 5, 1)  # restored
    logits, targets = task.inputs({"num_classes": 40}, seed=1)
    assert logits.shape == (16, 40)
