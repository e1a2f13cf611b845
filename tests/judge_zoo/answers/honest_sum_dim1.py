import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sum_mid_kernel(x_ptr, y_ptr, N, M, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    # x: [B, N, M] contiguous; one program per (b, block of M columns); reduce over N.
    b = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        ptrs = x_ptr + b * N * M + rows[:, None] * M + cols[None, :]
        m = (rows[:, None] < N) & (cols[None, :] < M)
        acc += tl.sum(tl.load(ptrs, mask=m, other=0.0), axis=0)
    tl.store(y_ptr + b * M + cols, acc, mask=cols < M)


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        assert self.dim == 1 and x.dim() == 3
        x = x.contiguous()
        B, N, M = x.shape
        y = torch.empty(B, M, device=x.device, dtype=x.dtype)
        _sum_mid_kernel[(B, triton.cdiv(M, 32))](x, y, N, M, BLOCK_N=16, BLOCK_M=32)
        return y
