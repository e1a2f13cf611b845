import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _oob_kernel(y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs + (1 << 40), 1.0, mask=offs < n)  # far out of bounds: poisons the CUDA context


class ModelNew(nn.Module):  # C5 (GPU only): an illegal address; the next check must still work
    def forward(self, x):
        y = torch.empty_like(x)
        _oob_kernel[(triton.cdiv(x.numel(), 256),)](y, x.numel(), BLOCK=256)
        return y
