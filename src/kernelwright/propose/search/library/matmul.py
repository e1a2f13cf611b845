"""Matmul family: mm, bmm, addmm, nn.Linear, matrix-vector and split-K tall-skinny products, each
with a fused epilogue chain (bias, scale, activation, residual add, a whole-row softmax).

A problem is a `MatmulSpec` (what to compute, as expressions of ModelNew's forward) and the search
space is data: `TILED_CONFIGS` / `GEMV_CONFIGS`, pruned per shape by `candidate_configs`.
`render(spec, cfg)` writes a standalone answer file from templates/matmul_{tiled,gemv}.j2:
kernel `_<name>_kernel`, launcher `<name>_forward`, and a `ModelNew` that keeps the task's
parameter holders (nn.Linear stays as `self.gemm` for its state_dict keys but is never called).

Precision: fp32 operands go through `tl.dot(..., input_precision="ieee")` (exact fp32 FMA) or
"tf32x3" (three TF32 tensor-core products, near-fp32): both are offered, the judge's fp32 tolerance
decides. Plain TF32 is never generated. fp16/bf16 use tensor cores with fp32 accumulation; the
epilogue always runs in fp32 and rounds once at the store.

Measured pitfalls:
- Triton's CPU interpreter (3.9) computes bf16 arithmetic wrongly (a bf16 multiply or tl.dot
  returns garbage), so CPU tests cover fp32 and fp16 only; bf16 is checked on the GPU (bench/).
- Split-K never uses atomics: partial tiles go to an fp32 workspace and a second kernel sums them in
  a fixed order, so results are bitwise reproducible (the judge's determinism stage checks this).
"""
from __future__ import annotations

import ast
import keyword
import re
import textwrap
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"

# ---------------------------------------------------------------------------------------------
# Epilogue ops: Triton expressions over fp32 values. {x} is the running value, {y}/{lo}/{hi} the
# other arguments (earlier values, operand names or float literals).
# tanh is written through sigmoid (tanh x = 2 sigmoid(2x) - 1): the interpreter and every Triton
# backend have tl.sigmoid, while tanh needs a backend-specific libdevice import.
UNARY_OPS: dict[str, str] = {
    "relu": "tl.maximum({x}, 0.0)",
    "sigmoid": "tl.sigmoid({x})",
    "tanh": "2.0 * tl.sigmoid(2.0 * {x}) - 1.0",
    "silu": "{x} * tl.sigmoid({x})",
    "gelu": "0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476))",
    "gelu_tanh": "0.5 * {x} * (1.0 + (2.0 * tl.sigmoid(1.5957691216057308 * ({x} + 0.044715 * {x} * {x} * {x})) - 1.0))",
    "neg": "-{x}",
    "abs": "tl.abs({x})",
    "exp": "tl.exp({x})",
    "square": "{x} * {x}",
    # softplus with PyTorch's threshold 20: log1p(exp(x)) for x <= 20, else x.
    "softplus": "tl.where({x} > 20.0, {x}, tl.log(1.0 + tl.exp(tl.minimum({x}, 20.0))))",
    "mish": "{x} * (2.0 * tl.sigmoid(2.0 * tl.where({x} > 20.0, {x}, tl.log(1.0 + tl.exp(tl.minimum({x}, 20.0))))) - 1.0)",
    "hardsigmoid": "tl.minimum(tl.maximum({x} / 6.0 + 0.5, 0.0), 1.0)",
}
BINARY_OPS: dict[str, str] = {
    "add": "{x} + {y}",
    "sub": "{x} - {y}",
    "rsub": "{y} - {x}",
    "mul": "{x} * {y}",
    "div": "{x} / {y}",
    "rdiv": "{y} / {x}",
    "maximum": "tl.maximum({x}, {y})",
    "minimum": "tl.minimum({x}, {y})",
    "leaky_relu": "tl.where({x} >= 0.0, {x}, {x} * {y})",  # y: negative slope
}
TERNARY_OPS: dict[str, str] = {
    "clamp": "tl.minimum(tl.maximum({x}, {lo}), {hi})",  # hardtanh is clamp(-1, 1)
}
# Ops over the whole row (all N columns of the output): the tile must span N.
ROW_OPS = ("softmax", "log_softmax")


@dataclass(frozen=True)
class Operand:
    """An extra input of the epilogue, as ModelNew's forward computes it."""

    name: str  # identifier in the answer ("bias", "residual", "multiplier")
    expr: str  # forward expression that yields it ("self.bias", "residual", "self.multiplier")
    kind: str = "tensor"  # "tensor": broadcast to the output, read with its strides; "scalar": a number


@dataclass(frozen=True)
class Step:
    """One epilogue op. Step i's result is named v{i}; the last step's result is stored."""

    op: str  # key of UNARY_OPS / BINARY_OPS / TERNARY_OPS, or a ROW_OPS name
    args: tuple[str | float, ...]  # "acc" (the product), "v{j}" (j < i), operand names, float literals


@dataclass(frozen=True)
class ModelShell:
    """The task Model's constructor and forward signature, for ModelNew."""

    init_args: str  # "self, in_features, out_features" (the task's own)
    init_body: str  # the task's __init__ body, indented 8 spaces (builds the same parameters)
    forward_args: str  # "self, x"


@dataclass(frozen=True)
class MatmulSpec:
    """One matmul region: out = epilogue(a @ b)."""

    name: str  # answer identifiers: _<name>_kernel, <name>_forward
    a: str  # forward expression of A [..., M, K]
    b: str  # forward expression of B [K, N] or [..., K, N]; nn.Linear: "self.gemm.weight.t()"
    shell: ModelShell
    operands: tuple[Operand, ...] = ()
    epilogue: tuple[Step, ...] = ()
    vector: bool = False  # B is a vector ([K] or [..., K, 1]): the GEMV template
    formula: str = ""  # human-readable, for docstrings ("relu(x @ W^T + bias)")


@dataclass(frozen=True)
class MatmulConfig:
    """One point of the search space (triton.Config-style; GEMV ignores block_n and group_m)."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    fp32_precision: str = "ieee"  # "ieee" or "tf32x3"; only read for fp32 operands

    def label(self) -> str:
        return (
            f"{self.block_m}x{self.block_n}x{self.block_k} g{self.group_m} sk{self.split_k}"
            f" w{self.num_warps} s{self.num_stages} {self.fp32_precision}"
        )


# ---------------------------------------------------------------------------------------------
# Search space. Tensor-core tiles for fp16/bf16 (the set Triton's matmul tutorial and Inductor
# sweep on Hopper), smaller register-light tiles for the fp32 FMA path, split-K for few output
# tiles and long K. The tuner times the survivors of `candidate_configs`.
TILED_CONFIGS: tuple[MatmulConfig, ...] = (
    MatmulConfig(128, 256, 64, 8, 1, 8, 3),
    MatmulConfig(256, 128, 64, 8, 1, 8, 3),
    MatmulConfig(128, 256, 64, 8, 1, 8, 4),
    MatmulConfig(128, 128, 64, 8, 1, 8, 4),
    MatmulConfig(128, 128, 64, 8, 1, 4, 4),
    MatmulConfig(128, 128, 32, 8, 1, 4, 4),
    MatmulConfig(128, 64, 64, 8, 1, 4, 4),
    MatmulConfig(64, 128, 64, 8, 1, 4, 4),
    MatmulConfig(64, 64, 64, 8, 1, 4, 4),
    MatmulConfig(64, 64, 32, 8, 1, 4, 5),
    MatmulConfig(32, 64, 64, 8, 1, 4, 4),
    MatmulConfig(16, 64, 128, 8, 1, 4, 4),  # skinny M (decode-like batches)
    MatmulConfig(64, 64, 64, 8, 4, 4, 4),  # split-K: few output tiles, long K
    MatmulConfig(64, 64, 64, 8, 8, 4, 4),
    MatmulConfig(128, 128, 64, 8, 4, 8, 3),
    MatmulConfig(32, 32, 128, 8, 16, 4, 3),
)
FP32_TILED_CONFIGS: tuple[MatmulConfig, ...] = (
    MatmulConfig(128, 128, 32, 8, 1, 8, 3),
    MatmulConfig(128, 128, 16, 8, 1, 8, 3),
    MatmulConfig(128, 64, 32, 8, 1, 4, 3),
    MatmulConfig(64, 128, 32, 8, 1, 4, 3),
    MatmulConfig(64, 64, 32, 8, 1, 4, 4),
    MatmulConfig(32, 64, 32, 8, 1, 4, 4),
    MatmulConfig(16, 64, 64, 8, 1, 4, 4),
    MatmulConfig(64, 64, 32, 8, 4, 4, 4),
    MatmulConfig(64, 64, 32, 8, 8, 4, 3),
    MatmulConfig(32, 32, 64, 8, 16, 4, 3),
)
FP32_PRECISIONS = ("ieee", "tf32x3")
GEMV_CONFIGS: tuple[MatmulConfig, ...] = (
    MatmulConfig(4, 1, 1024, split_k=1, num_warps=4, num_stages=3),
    MatmulConfig(8, 1, 512, split_k=1, num_warps=4, num_stages=3),
    MatmulConfig(16, 1, 256, split_k=1, num_warps=4, num_stages=3),
    MatmulConfig(1, 1, 2048, split_k=1, num_warps=4, num_stages=3),
    MatmulConfig(8, 1, 512, split_k=8, num_warps=4, num_stages=3),
    MatmulConfig(4, 1, 1024, split_k=32, num_warps=4, num_stages=3),
)
# A tile spanning whole rows (row softmax epilogue) holds at most this many fp32 accumulators.
MAX_ROW_TILE = 16384
# Whole-row epilogues are offered only while the row fits in one tile.
MAX_ROW_N = 2048
# Streaming multiprocessors of the target GPU (H100 SXM: 132): split-K is offered only when the
# output has fewer tiles than this.
NUM_SMS = 132


def _whole_rows(spec: MatmulSpec) -> bool:
    return any(s.op in ROW_OPS for s in spec.epilogue)


def candidate_configs(
    spec: MatmulSpec, M: int, N: int, K: int, Z: int = 1, dtype: str = "float32"
) -> list[MatmulConfig]:
    """Configs worth timing for this shape, best guesses first. Correctness does not depend on the
    choice: every rendered answer runs at any shape; the pruning only avoids waste (tiles far larger
    than the problem, split-K where the output alone fills the GPU, whole rows that do not fit)."""
    if spec.vector:
        out = []
        for c in GEMV_CONFIGS:
            if c.split_k > 1 and (Z * M // c.block_m >= 2 * NUM_SMS or K < 8 * c.block_k * c.split_k):
                continue
            out.append(c)
        return out
    if _whole_rows(spec) and N > MAX_ROW_N:
        return []
    fp32 = dtype == "float32"
    base = FP32_TILED_CONFIGS if fp32 else TILED_CONFIGS
    pm, pn = max(16, _next_pow2(M)), max(16, _next_pow2(N))
    out = []
    for c in base:
        if c.block_m > 2 * pm or (c.block_n > 2 * pn and not _whole_rows(spec)):
            continue
        tiles = Z * _cdiv(M, c.block_m) * _cdiv(N, c.block_n)
        if c.split_k > 1 and (tiles >= NUM_SMS or K < 4 * c.block_k * c.split_k):
            continue
        if _whole_rows(spec) and c.split_k > 1:
            continue  # the split-K stage would hold the whole-row tile twice; not worth it
        out.append(c)
    if _whole_rows(spec):
        out = list({replace(c, block_n=16): None for c in out})  # block_n is set from N at run time
    if fp32:
        out = [replace(c, fp32_precision=p) for p in FP32_PRECISIONS for c in out]
    return out


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# ---------------------------------------------------------------------------------------------
# Rendering


def render_epilogue(spec: MatmulSpec) -> list[str]:
    """Triton lines turning `acc` (fp32 [BLOCK_M, BLOCK_N] at offs_m/offs_n/mask of batch z) into
    `out`. Tensor operands are loaded once each, in fp32."""
    lines: list[str] = []
    for o in spec.operands:
        if o.kind == "tensor":
            lines.append(
                f"{o.name} = tl.load({o.name}_ptr + z * stride_{o.name}_z"
                f" + offs_m[:, None].to(tl.int64) * stride_{o.name}_m + offs_n[None, :] * stride_{o.name}_n,"
                " mask=mask, other=0.0).to(tl.float32)"
            )
    known = {"acc"} | {o.name for o in spec.operands}
    for i, step in enumerate(spec.epilogue):
        args = [_arg(a, known, spec.name) for a in step.args]
        v = f"v{i}"
        if step.op in UNARY_OPS and len(args) == 1:
            lines.append(f"{v} = " + UNARY_OPS[step.op].format(x=args[0]))
        elif step.op in BINARY_OPS and len(args) == 2:
            lines.append(f"{v} = " + BINARY_OPS[step.op].format(x=args[0], y=args[1]))
        elif step.op in TERNARY_OPS and len(args) == 3:
            lines.append(f"{v} = " + TERNARY_OPS[step.op].format(x=args[0], lo=args[1], hi=args[2]))
        elif step.op in ROW_OPS and len(args) == 1:
            # Columns past N hold garbage from the wrapped B loads: -inf keeps them out of the row.
            lines.append(f"{v} = tl.where(mask_n[None, :], {args[0]}, float(\"-inf\"))")
            lines.append(f"{v} = {v} - tl.max({v}, axis=1)[:, None]")
            if step.op == "softmax":
                lines.append(f"{v} = tl.exp({v})")
                lines.append(f"{v} = {v} / tl.sum({v}, axis=1)[:, None]")
            else:
                lines.append(f"{v} = {v} - tl.log(tl.sum(tl.exp({v}), axis=1))[:, None]")
        else:
            raise ValueError(f"{spec.name}: epilogue op {step.op!r} with {len(args)} args is not in the matmul tables")
        known.add(v)
    lines.append(f"out = v{len(spec.epilogue) - 1}" if spec.epilogue else "out = acc")
    return lines


def _arg(a: str | float, known: set[str], name: str) -> str:
    if isinstance(a, (int, float)):
        return repr(float(a))
    if a not in known:
        raise ValueError(f"{name}: epilogue argument {a!r} is neither acc, an earlier step nor an operand")
    return a


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def forward_lines(spec: MatmulSpec) -> list[str]:
    args = ", ".join([spec.a, spec.b] + [o.expr for o in spec.operands])
    return [f"return {spec.name}_forward({args})"]


def render(spec: MatmulSpec, cfg: MatmulConfig, doc: str = "") -> str:
    """The full text of an answer file computing spec with config cfg."""
    _check_identifier(spec.name)
    for o in spec.operands:
        _check_identifier(o.name)
    template = "matmul_gemv.j2" if spec.vector else "matmul_tiled.j2"
    if spec.vector and _whole_rows(spec):
        raise ValueError(f"{spec.name}: a row softmax over a matrix-vector output (N=1) is not a matmul epilogue")
    text = _env().get_template(template).render(
        doc=doc or f"{spec.formula or spec.name}: Triton {'GEMV' if spec.vector else 'GEMM'} ({cfg.label()}).",
        name=spec.name,
        formula=spec.formula or "out = epilogue(a @ b)",
        cfg=cfg,
        operands=spec.operands,
        epilogue_lines=render_epilogue(spec),
        whole_rows=_whole_rows(spec),
        max_row_tile=MAX_ROW_TILE,
        shell=spec.shell,
        forward_lines=forward_lines(spec),
    )
    return tidy(text)


def tidy(text: str) -> str:
    """Drop the blank lines that empty template loops leave: inside a bracket (after a line ending
    in a comma) and runs of more than two."""
    text = re.sub(r",\n[ \t]*\n", ",\n", text)
    return re.sub(r"\n{4,}", "\n\n\n", text)


def _check_identifier(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a Python identifier")


# ---------------------------------------------------------------------------------------------
# ModelNew shell from a task file (until extract/ provides one for every family).


def shell_from_task(task_source: str) -> ModelShell:
    """Read class Model's __init__ (kept verbatim, so the parameters and state_dict keys match) and
    forward signature from a task file's text."""
    tree = ast.parse(task_source)
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    if model is None:
        raise ValueError("task defines no class Model")
    funcs = {n.name: n for n in model.body if isinstance(n, ast.FunctionDef)}
    if "__init__" not in funcs or "forward" not in funcs:
        raise ValueError("class Model needs __init__ and forward")
    init, fwd = funcs["__init__"], funcs["forward"]
    lines = task_source.splitlines()
    body_start = init.body[0].lineno - 1
    if isinstance(init.body[0], ast.Expr) and isinstance(getattr(init.body[0], "value", None), ast.Constant):
        body_start = init.body[0].end_lineno  # drop the docstring
    body = textwrap.dedent("\n".join(lines[body_start : init.end_lineno]))
    body = re.sub(r"super\(\s*Model\s*,\s*self\s*\)", "super()", body)
    if not body.strip():
        body = "super().__init__()"
    return ModelShell(
        init_args=ast.unparse(init.args),
        init_body=textwrap.indent(body, " " * 8),
        forward_args=ast.unparse(fwd.args),
    )


__all__ = [
    "BINARY_OPS",
    "FP32_TILED_CONFIGS",
    "GEMV_CONFIGS",
    "MatmulConfig",
    "MatmulSpec",
    "ModelShell",
    "Operand",
    "ROW_OPS",
    "Step",
    "TERNARY_OPS",
    "TILED_CONFIGS",
    "UNARY_OPS",
    "candidate_configs",
    "render",
    "render_epilogue",
    "shell_from_task",
]
