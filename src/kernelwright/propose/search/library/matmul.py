"""Matmul family: mm, bmm, matmul, addmm, baddbmm, nn.Linear, mv/addmv (matrix-vector) and split-K
tall-skinny products, each with its fused pointwise epilogue (bias, scale, activation, residual
add, casts: any op of expr.py) and, when the region holds one, a row softmax / log-softmax over
the last dim while the row fits in one tile.

Two templates (templates/matmul_tiled.j2, matmul_gemv.j2); their search space is data
(`CONFIGS`: BLOCK_M/N/K, GROUP_M swizzle, SPLIT_K, num_warps, num_stages, and for fp32 operands
the dot precision), pruned per shape by `prune_configs`.

Precision: fp32 operands go through `tl.dot(..., input_precision="ieee")` (exact fp32 FMA) or
"tf32x3" (three TF32 tensor-core products, near fp32); both are offered and the judge's fp32
tolerance decides. Plain TF32 is never generated. fp16/bf16 use tensor cores with fp32
accumulation. The epilogue runs in fp32 and rounds once, at the store.

Measured pitfalls:
- Triton's CPU interpreter (3.9) computes bf16 arithmetic wrongly (a bf16 multiply or tl.dot
  returns garbage), so CPU tests cover fp32 and fp16; bf16 is checked on the GPU (bench/).
- Split-K never uses atomics: each K slice writes an fp32 partial tile to a workspace and a second
  kernel sums the slices in a fixed order, so results are bitwise reproducible (the judge's
  determinism stage runs every answer several times).
- Offsets are int64 where a row index meets a stride: KernelBench's matrix-vector problem has
  M*K = 2^31 elements.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import torch
from torch import fx

from ....extract.graph import Captured, meta_val, packet_name
from ....extract.regions import Region
from .. import expr
from ..codegen import dtype_expr, emit_chain, is_tensor, shape_key
from ..family import DeviceSpec, Match, Rendered, Unsupported

TEMPLATES = Path(__file__).parent / "templates"

# ---------------------------------------------------------------------------------------------
# Search space (data). Keys follow family.py; PRECISION is this family's own (fp32 operands only).
# Tensor-core tiles for fp16/bf16: the set Triton's matmul tutorial and Inductor sweep on Hopper.
_TC = [
    # BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, SPLIT_K, num_warps, num_stages
    (128, 256, 64, 8, 1, 8, 3),
    (256, 128, 64, 8, 1, 8, 3),
    (128, 256, 64, 8, 1, 8, 4),
    (128, 128, 64, 8, 1, 8, 4),
    (128, 128, 64, 8, 1, 4, 4),
    (128, 128, 32, 8, 1, 4, 4),
    (128, 64, 64, 8, 1, 4, 4),
    (64, 128, 64, 8, 1, 4, 4),
    (64, 64, 64, 8, 1, 4, 4),
    (64, 64, 32, 8, 1, 4, 5),
    (32, 64, 64, 8, 1, 4, 4),
    (16, 64, 128, 8, 1, 4, 4),  # skinny M (decode-like batches)
    (64, 64, 64, 8, 4, 4, 4),  # split-K: few output tiles, long K
    (64, 64, 64, 8, 8, 4, 4),
    (128, 128, 64, 8, 4, 8, 3),
    (32, 32, 128, 8, 16, 4, 3),
]
# fp32 operands: "ieee" runs on the FMA units (register-light tiles), "tf32x3" on tensor cores.
_FP32 = [
    (128, 128, 32, 8, 1, 8, 3),
    (128, 128, 16, 8, 1, 8, 3),
    (128, 64, 32, 8, 1, 4, 3),
    (64, 128, 32, 8, 1, 4, 3),
    (64, 64, 32, 8, 1, 4, 4),
    (32, 64, 32, 8, 1, 4, 4),
    (16, 64, 64, 8, 1, 4, 4),
    (64, 64, 32, 8, 4, 4, 4),
    (64, 64, 32, 8, 8, 4, 3),
    (32, 32, 64, 8, 16, 4, 3),
]
_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "SPLIT_K", "num_warps", "num_stages")
FP32_PRECISIONS = ("ieee", "tf32x3")
CONFIGS: dict[str, list[dict]] = {
    "tc": [dict(zip(_KEYS, c), PRECISION="ieee") for c in _TC],
    "fp32": [dict(zip(_KEYS, c), PRECISION=p) for p in FP32_PRECISIONS for c in _FP32],
    # GEMV streams A once: rows per program x K chunk, split-K when there are few rows.
    "gemv": [
        dict(BLOCK_M=bm, BLOCK_K=bk, SPLIT_K=sk, num_warps=w, num_stages=3)
        for bm, bk, sk, w in [(4, 1024, 1, 4), (8, 512, 1, 4), (16, 256, 1, 4), (1, 2048, 1, 4),
                              (8, 512, 8, 4), (4, 1024, 32, 4)]
    ],
    # The interpreter: correctness only; few, large programs (each costs Python time), one split-K
    # point so both code paths get checked.
    "cpu": [
        dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=32, GROUP_M=4, SPLIT_K=1, num_warps=4, num_stages=2, PRECISION="ieee"),
        dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=16, GROUP_M=2, SPLIT_K=3, num_warps=4, num_stages=2, PRECISION="ieee"),
    ],
    "cpu_gemv": [
        dict(BLOCK_M=16, BLOCK_K=64, SPLIT_K=1, num_warps=4, num_stages=2),
        dict(BLOCK_M=8, BLOCK_K=32, SPLIT_K=4, num_warps=4, num_stages=2),
    ],
}
# A tile spanning whole rows (row-softmax epilogue) holds at most this many fp32 accumulators;
# rows longer than MAX_ROW_N are left to the softmax family.
MAX_ROW_TILE = 16384
MAX_ROW_N = 2048

# ---------------------------------------------------------------------------------------------
# Anchors: which args are A, B, the additive bias, and the scalars (beta, alpha) of each op.
_ANCHORS = {
    # packet: (A index, B index, bias index or None, B given as [N, K] (nn.Linear weight), vector)
    "aten.mm": (0, 1, None, False, False),
    "aten.bmm": (0, 1, None, False, False),
    "aten.matmul": (0, 1, None, False, None),  # vector when B is 1-D or [..., K, 1]
    "aten.linear": (0, 1, 2, True, False),
    "aten.addmm": (1, 2, 0, False, False),
    "aten.baddbmm": (1, 2, 0, False, False),
    "aten.mv": (0, 1, None, False, True),
    "aten.addmv": (1, 2, 0, False, True),
}
ROW_OPS = {"aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax"}


@dataclass
class MatmulSpec:
    """What render() needs, from match(): roles of the region's inputs and the shapes seen."""

    op: str  # identifier stem: "linear_relu"
    a: int  # index into region.inputs of A [..., M, K]
    b: int  # index of B [..., K, N] (or the [N, K] weight when b_is_weight; or the vector)
    b_is_weight: bool  # nn.Linear: B = weight.t(), a view
    vector: bool  # GEMV template
    bias: int | None  # index of the additive bias (linear, addmm ...)
    alpha: float  # out = alpha * (A @ B) + beta * bias
    beta: float
    operands: list[int]  # indices of the inputs the epilogue reads (tensors and scalars)
    whole_rows: bool  # the epilogue holds a row softmax: one tile spans all N
    M: int  # sizes at capture (hints): rows of A (leading dims folded when B is shared), ...
    N: int
    K: int
    Z: int  # batch
    dtype: torch.dtype


def _hint(s: Any) -> int:
    from ....extract.graph import size_hint

    return size_hint(s)


def _arg(node: fx.Node, i: int | None, name: str, default: Any = None) -> Any:
    if i is not None and len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _number(x: Any, what: str) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    raise Unsupported(f"{what} is not a constant number ({x!r})")


class MatmulFamily:
    name = "matmul"
    kinds = ("matmul",)

    # ---- match ---------------------------------------------------------------------------
    def match(self, region: Region, captured: Captured) -> Match | None:
        anchor = region.anchor
        if anchor is None:
            return None
        packet = packet_name(anchor)
        if packet not in _ANCHORS:
            raise Unsupported(f"{packet} is not a matmul this family renders (mm, bmm, matmul, linear, addmm, baddbmm, mv, addmv)")
        ai, bi, biasi, weight, vector = _ANCHORS[packet]
        a_node, b_node = anchor.args[ai], anchor.args[bi]
        bias_node = _arg(anchor, biasi, "bias") if biasi is not None else None
        alpha = _number(anchor.kwargs.get("alpha", 1), "alpha")
        beta = _number(anchor.kwargs.get("beta", 1), "beta")
        for n in (a_node, b_node):
            if not isinstance(n, fx.Node) or not is_tensor(n):
                raise Unsupported("a matmul operand is not a tensor")
        va, vb = meta_val(a_node), meta_val(b_node)
        if va.dim() < 2:
            raise Unsupported("vector @ matrix (A is 1-D)")
        if not (va.dtype == vb.dtype and va.dtype in (torch.float32, torch.float16, torch.bfloat16)):
            raise Unsupported(f"operand dtypes {va.dtype}, {vb.dtype} (needs one of fp32/fp16/bf16)")
        if vector is None:
            vector = vb.dim() == 1 or (vb.shape[-1] == 1 and isinstance(vb.shape[-1], int))
        if vector and vb.dim() > 1 and not (vb.shape[-1] == 1):
            raise Unsupported("matrix-vector with a non-vector B")
        if weight and vb.dim() != 2:
            raise Unsupported("linear with a weight that is not 2-D")

        whole_rows = check_epilogue(region, anchor, allow_rows=not vector)
        epilogue = [n for n in region.nodes if n is not anchor]
        idx = {n: i for i, n in enumerate(region.inputs)}
        with_bias = bias_node is not None and beta != 0.0
        operands = epilogue_operands(region, anchor, [bias_node] if with_bias else [])

        # Sizes at capture, for configs and the model.
        K = _hint(va.shape[-1])
        if vector:
            M, N = _hint(va.shape[-2]), 1
            Z = 1
            for s in va.shape[:-2]:
                Z *= _hint(s)
        elif weight or vb.dim() == 2:
            N = _hint(vb.shape[0] if weight else vb.shape[-1])
            M = 1
            for s in va.shape[:-1]:
                M *= _hint(s)
            Z = 1
        else:
            M, N = _hint(va.shape[-2]), _hint(vb.shape[-1])
            Z = 1
            for s in torch.broadcast_shapes(tuple(_hint(s) for s in va.shape[:-2]), tuple(_hint(s) for s in vb.shape[:-2])):
                Z *= s
        if whole_rows and N > MAX_ROW_N:
            raise Unsupported(f"row softmax over {N} columns does not fit one tile (max {MAX_ROW_N})")

        stem = {"aten.linear": "linear", "aten.mv": "gemv", "aten.addmv": "gemv"}.get(packet, packet.split(".")[1])
        if vector:
            stem = "gemv"
        names = [packet_name(n).split(".")[1].lstrip("_") for n in epilogue if packet_name(n) not in ("aten.clone", "aten.alias")]
        op = "_".join([stem, *names[:3]])
        spec = MatmulSpec(
            op=op,
            a=idx[a_node],
            b=idx[b_node],
            b_is_weight=weight,
            vector=bool(vector),
            bias=idx[bias_node] if with_bias else None,
            alpha=alpha,
            beta=beta,
            operands=operands,
            whole_rows=whole_rows,
            M=M,
            N=N,
            K=K,
            Z=Z,
            dtype=va.dtype,
        )
        shape = f"[{Z}x]" if Z > 1 else ""
        return Match(
            family=self.name,
            region=region,
            label=f"{'gemv' if vector else 'gemm'} {shape}{M}x{N}x{K} {str(va.dtype)[6:]} + [{', '.join(names)}]",
            spec={"matmul": spec},
            score=2.0,
        )

    # ---- configs -------------------------------------------------------------------------
    def configs(self, match: Match, device: DeviceSpec) -> list[dict]:
        spec: MatmulSpec = match.spec["matmul"]
        if device.kind == "cpu":
            return [dict(c) for c in CONFIGS["cpu_gemv" if spec.vector else "cpu"]]
        return prune_configs(spec, device.sm_count)

    def estimate(self, match: Match, config: dict, device: DeviceSpec, *_: Any, **__: Any) -> float:
        """Modelled seconds: max(FLOPs at a tile-efficiency-scaled peak, bytes at DRAM bandwidth),
        stretched by wave quantization, plus launch costs. Ranks configs; measurement decides."""
        s: MatmulSpec = match.spec["matmul"]
        esize = 4 if s.dtype == torch.float32 else 2
        bytes_moved = esize * s.Z * (s.M * s.K + s.K * s.N + s.M * s.N)
        flops = 2.0 * s.Z * s.M * s.N * s.K
        launch = 4e-6 * (2 if config.get("SPLIT_K", 1) > 1 else 1)
        if s.vector:
            return bytes_moved / (device.bandwidth_gbs * 1e9) + launch
        bm, bn, sk = config["BLOCK_M"], config["BLOCK_N"], config.get("SPLIT_K", 1)
        if s.whole_rows:
            bn = max(16, 1 << (s.N - 1).bit_length())
        if s.dtype != torch.float32:
            peak = device.bf16_tflops
        elif config.get("PRECISION") == "tf32x3":
            peak = device.bf16_tflops / 2 / 3  # TF32 runs at half the bf16 rate, three products
        else:
            peak = device.fp32_tflops
        # Larger tiles reuse each loaded element more; 128x128 and up reach the peak.
        tile_eff = min(1.0, (bm * bn / (128 * 128)) ** 0.35)
        tiles = s.Z * -(-s.M // bm) * -(-s.N // bn) * sk
        waves = -(-tiles // max(1, device.sm_count))
        quant = tiles / (waves * max(1, device.sm_count))
        t_flops = flops / (peak * 1e12 * tile_eff * quant)
        t_mem = bytes_moved / (device.bandwidth_gbs * 1e9)
        if sk > 1:
            t_mem += 2 * 4 * sk * s.Z * s.M * s.N / (device.bandwidth_gbs * 1e9)
        return max(t_flops, t_mem) + launch

    # ---- render --------------------------------------------------------------------------
    def render(self, match: Match, config: dict, prefix: str) -> Rendered:
        return render_region(match.region, match.spec["matmul"], config, prefix)


def prune_configs(spec: MatmulSpec, sm_count: int = 132) -> list[dict]:
    """Configs worth timing at this shape. Correctness never depends on the choice (every answer
    runs at any shape); pruning only skips waste: tiles far larger than the problem, split-K where
    the output alone fills the GPU or K is short, whole-row tiles with split-K."""
    if spec.vector:
        out = []
        for c in CONFIGS["gemv"]:
            rows = spec.Z * -(-spec.M // c["BLOCK_M"])
            if c["SPLIT_K"] > 1 and (rows >= 2 * sm_count or spec.K < 8 * c["BLOCK_K"] * c["SPLIT_K"]):
                continue
            out.append(dict(c))
        return out
    base = CONFIGS["fp32" if spec.dtype == torch.float32 else "tc"]
    pm = max(16, 1 << max(0, (spec.M - 1).bit_length()))
    pn = max(16, 1 << max(0, (spec.N - 1).bit_length()))
    out: list[dict] = []
    for c in base:
        if c["BLOCK_M"] > 2 * pm or (c["BLOCK_N"] > 2 * pn and not spec.whole_rows):
            continue
        tiles = spec.Z * -(-spec.M // c["BLOCK_M"]) * -(-spec.N // c["BLOCK_N"])
        if c["SPLIT_K"] > 1 and (spec.whole_rows or tiles >= sm_count or spec.K < 4 * c["BLOCK_K"] * c["SPLIT_K"]):
            continue
        c = dict(c)
        if spec.whole_rows:
            c["BLOCK_N"] = 16  # replaced at run time by the next power of two of N
            if c in out:
                continue
        out.append(c)
    return out


# ---------------------------------------------------------------------------------------------
# Rendering


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass
class _Item:
    """A kernel parameter group: an epilogue operand or an output."""

    name: str
    kind: str  # "tensor" | "scalar"
    expr: str = ""  # launcher expression (operands)
    dtype: str = ""  # launcher dtype expression (outputs)


# Python helper pasted once into the answer: epilogue operands read in place through broadcast
# strides (a bias row is never copied).
AS_ZMN = '''
def _kw_as_zmn(t, shape, zmn):
    """t broadcast to the output shape, viewed as [Z, M, N] (stride 0 on broadcast dims)."""
    return torch.broadcast_to(t, shape).reshape(zmn)
'''


def _epilogue(region: Region, spec: MatmulSpec, ins: list[str]) -> tuple[list[str], dict[fx.Node, str]]:
    """Triton lines for the product's scale and bias, then the region's epilogue ops."""
    lines: list[str] = []
    v = "acc"
    if spec.alpha != 1.0:
        lines.append(f"prod = acc * {expr.literal(spec.alpha)}")
        v = "prod"
    if spec.bias is not None:
        b = ins[spec.bias] if spec.beta == 1.0 else f"{ins[spec.bias]} * {expr.literal(spec.beta)}"
        lines.append(f"prod = {v} + {b}")
        v = "prod"
    return epilogue_lines(region, spec.operands, ins, lines, v)


def epilogue_lines(
    region: Region, operands: list[int], ins: list[str], anchor_lines: list[str], anchor_value: str
) -> tuple[list[str], dict[fx.Node, str]]:
    """Triton lines turning the anchor's fp32 tile into the region's values, and node -> value
    name. The kernel provides `acc` [BLOCK_M, BLOCK_N] at rows offs_m, columns offs_n of batch z,
    with mask_m / mask_n / mask; `anchor_lines` compute the anchor's value (`anchor_value`) from
    acc and the loaded operands. Shared with the attention family."""
    lines: list[str] = []
    value: dict[fx.Node, str] = {}
    for i in operands:
        node = region.inputs[i]
        if is_tensor(node):
            lines.append(
                f"{ins[i]} = tl.load({ins[i]}_ptr + z * stride_{ins[i]}_z + offs_m[:, None].to(tl.int64) * stride_{ins[i]}_m"
                f" + offs_n[None, :] * stride_{ins[i]}_n, mask=mask, other=0.0).to(tl.float32)"
            )
        value[node] = ins[i]  # scalars arrive as kernel arguments of that name
    lines += anchor_lines
    anchor = region.anchor
    value[anchor] = anchor_value
    for n in region.nodes:
        if n is anchor or packet_name(n) == "getitem":
            continue
        if packet_name(n) in ROW_OPS:
            x = value[n.args[0]]
            r = f"row{len(value)}"
            # Columns past N hold wrapped garbage: -inf keeps them out of the row's max and sum.
            lines.append(f"{r} = tl.where(mask_n[None, :], {x}, float(\"-inf\"))")
            lines.append(f"{r} = {r} - tl.max({r}, axis=1)[:, None]")
            if "log" in packet_name(n):
                lines.append(f"{r} = {r} - tl.log(tl.sum(tl.exp({r}), axis=1))[:, None]")
            else:
                lines.append(f"{r} = tl.exp({r})")
                lines.append(f"{r} = {r} / tl.sum({r}, axis=1)[:, None]")
            value[n] = r
        else:
            emit_chain([n], value, lines)
    return lines, value


def operand_items(region: Region, operands: list[int], ins: list[str]) -> list["_Item"]:
    return [_Item(ins[i], "tensor" if is_tensor(region.inputs[i]) else "scalar", expr=ins[i]) for i in operands]


def output_items(region: Region, ins: list[str]) -> list["_Item"]:
    return [_Item(f"out{j}", "tensor", dtype=dtype_expr(o, region.inputs, ins)) for j, o in enumerate(region.outputs)]


def store_lines(region: Region, value: dict[fx.Node, str]) -> list[str]:
    """One masked store per region output into out{j} [Z, M, N]."""
    return [
        f"tl.store(out{j}_ptr + z * stride_out{j}_z + offs_m[:, None].to(tl.int64) * stride_out{j}_m"
        f" + offs_n[None, :] * stride_out{j}_n, {value[o]}.to(out{j}_ptr.dtype.element_ty), mask=mask)"
        for j, o in enumerate(region.outputs)
    ]


def epilogue_operands(region: Region, anchor: fx.Node, extra: list[fx.Node]) -> list[int]:
    """Indices of region inputs the epilogue reads (plus `extra`, e.g. a bias), checked to be
    numbers or tensors that broadcast to the anchor's output."""
    out_key = shape_key(anchor)
    idx = {n: i for i, n in enumerate(region.inputs)}
    nodes = {a for n in region.nodes if n is not anchor for a in n.all_input_nodes if a in idx} | set(extra)
    for a in nodes:
        if is_tensor(a):
            ks = shape_key(a)
            if len(ks) > len(out_key) or any(s not in ("1", o) for s, o in zip(ks[::-1], out_key[::-1])):
                raise Unsupported(f"epilogue input {a.name} of shape {ks} does not broadcast to {out_key}")
        elif not isinstance(meta_val(a), (int, float, torch.SymInt, torch.SymFloat)):
            raise Unsupported(f"epilogue input {a.name} is neither a tensor nor a number")
    return sorted(idx[a] for a in nodes)


def check_epilogue(region: Region, anchor: fx.Node, allow_rows: bool) -> bool:
    """Every non-anchor node is a pointwise op of expr.py (or, when allowed, a last-dim softmax)
    of the anchor's shape, and every output is computed here. Returns whether a row op is present."""
    out_key = shape_key(anchor)
    whole_rows = False
    for n in region.nodes:
        if n is anchor:
            continue
        if shape_key(n) != out_key:
            raise Unsupported(f"epilogue op {n.name} has shape {shape_key(n)}, not the product's {out_key}")
        p = packet_name(n)
        if p in ROW_OPS:
            dim = n.args[1]
            if not allow_rows or dim not in (-1, len(out_key) - 1):
                raise Unsupported(f"{p} over dim {dim}: only the last dim of a matrix product fuses")
            whole_rows = True
        elif not expr.supported(n):
            raise Unsupported(f"epilogue op {p} has no template")
    for o in region.outputs:
        if o not in region.nodes:
            raise Unsupported(f"output {o.name} is not computed by the region")
    return whole_rows


def render_region(region: Region, spec: MatmulSpec, config: dict, prefix: str) -> Rendered:
    ins = [f"in{i}" for i in range(len(region.inputs))]
    kernel = f"_{prefix}_{spec.op}_kernel"
    splitk_kernel = f"_{prefix}_{spec.op}_splitk_kernel"
    launcher = f"{prefix}_{spec.op}"
    lines, value = _epilogue(region, spec, ins)
    operands = operand_items(region, spec.operands, ins)
    outputs = output_items(region, ins)
    b_expr = f"{ins[spec.b]}.t()" if spec.b_is_weight else ins[spec.b]
    cfg = dict(config)
    cfg.setdefault("PRECISION", "ieee")
    if cfg["PRECISION"] not in FP32_PRECISIONS:
        raise ValueError(f"PRECISION must be one of {FP32_PRECISIONS}, got {cfg['PRECISION']!r} (plain tf32 fails fp32 tolerance)")
    knobs = " ".join(f"{k}={v}" for k, v in cfg.items())
    args_doc = "; ".join(f"{ins[i]}: {region.inputs[i].name}" for i in range(len(ins)))
    text = _env().get_template("matmul_gemv.j2" if spec.vector else "matmul_tiled.j2").render(
        kernel=kernel,
        splitk_kernel=splitk_kernel,
        launcher=launcher,
        args=ins,
        a_expr=ins[spec.a],
        b_expr=b_expr,
        cfg=cfg,
        knobs=knobs,
        formula=f"{' -> '.join(region.ops)} ({args_doc})",
        operands=operands,
        outputs=outputs,
        epilogue_lines=lines,
        store_lines=store_lines(region, value),
        whole_rows=spec.whole_rows,
        max_row_tile=MAX_ROW_TILE,
    )
    kernels = [kernel] + ([splitk_kernel] if cfg["SPLIT_K"] > 1 else [])
    return Rendered(launcher=launcher, source=tidy(text), helpers={"_kw_as_zmn": AS_ZMN}, kernels=kernels)


def tidy(text: str) -> str:
    """Drop the blank lines that empty template loops leave inside brackets, and long blank runs."""
    text = re.sub(r",\n[ \t]*\n", ",\n", text)
    return re.sub(r"\n{4,}", "\n\n\n", text)


FAMILY = MatmulFamily()
