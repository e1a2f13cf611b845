import os
import threading
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _touch_kernel(p, n, BLOCK: tl.constexpr):
    # A kernel of its own that runs on every forward, so each cheat reaches the defense it targets.
    offs = tl.arange(0, BLOCK)
    tl.store(p + offs, 1.0, mask=offs < n)


def touch(x):
    s = torch.empty(8, device=x.device)
    _touch_kernel[(1,)](s, 8, BLOCK=8)


import pathlib
import sys

# C7: shadow torch in the working directory and edit the judge on disk.
pathlib.Path("torch.py").write_text("raise SystemExit(0)\n")
for p in sys.path:
    target = pathlib.Path(p) / "kernelwright" / "judge" / "compare.py"
    if target.exists():
        try:
            target.write_text(target.read_text() + "\n# tampered\n")
        except OSError:
            pass


class ModelNew(nn.Module):
    def forward(self, x):
        touch(x)
        return torch.zeros_like(x)
