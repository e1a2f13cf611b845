"""Which steps of the whole-model answer's first forward start a Python thread on a GPU machine
(session 3's H100 whole-model check rejected model_optimized.py: "the answer left 1 new thread(s)
running after its forward returned"; on a CPU none appears). Prints each new thread's name, class
and target after each step the runtime takes: torch.export + run_decompositions on cuda tensors,
a first Triton launch, torch.func.functional_call.

    python bench/probe_threads.py
"""
from __future__ import annotations

import threading


def new_threads(before: set) -> list[str]:
    return [f"{t.name} ({type(t).__module__}.{type(t).__qualname__}, target "
            f"{getattr(getattr(t, '_target', None), '__qualname__', '?')}, daemon={t.daemon})"
            for t in threading.enumerate() if t.ident not in before]


def main() -> None:
    seen = {t.ident for t in threading.enumerate()}

    def step(label, fn):
        fn()
        added = new_threads(seen)
        seen.update(t.ident for t in threading.enumerate())
        print(f"{label}: {added or 'no new thread'}", flush=True)

    import torch
    import triton
    import triton.language as tl

    step("import torch, triton", lambda: None)
    x = torch.randn(64, 128, device="cuda")
    step("first cuda tensor", lambda: torch.cuda.synchronize())

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(128, 128)

        def forward(self, x):
            return torch.relu(self.lin(x)).softmax(-1)

    m = M().cuda()

    def export():
        from torch.export import Dim, export
        export(m, (x,), dynamic_shapes=({0: Dim.AUTO, 1: Dim.AUTO},), strict=False).run_decompositions({})

    step("torch.export(dynamic) + run_decompositions on cuda", export)

    def export_static():
        from torch.export import export
        export(m, (x,), strict=False).run_decompositions({})

    step("torch.export(static) on cuda", export_static)

    @triton.jit
    def double(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n) * 2, mask=i < n)

    y = torch.empty_like(x)
    step("first triton compile + launch", lambda: (double[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024),
                                                    torch.cuda.synchronize()))
    step("torch.func.functional_call", lambda: torch.func.functional_call(m, dict(m.named_parameters()), (x,)))
    step("sdpa", lambda: torch.nn.functional.scaled_dot_product_attention(*(torch.randn(1, 2, 16, 64, device="cuda",
                                                                                        dtype=torch.bfloat16),) * 3))
    import time
    time.sleep(1.0)
    step("1 s later", lambda: None)


if __name__ == "__main__":
    main()
