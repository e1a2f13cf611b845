"""Pointwise family: a chain of elementwise ATen ops with broadcasting, scalar constants and casts,
as one kernel over the flattened output. Memory-bound: bytes = sum(inputs read) + outputs written.

Each tensor input is read through its broadcast strides unless it is laid out exactly like the
output (`IN{i}_FLAT`, decided by the launcher at run time, so the common case has no index math).
"""
from __future__ import annotations

from torch import fx

from ....extract.graph import Captured, meta_val
from ....extract.regions import Region
from .. import expr
from ..codegen import BCAST_STRIDES, dtype_expr, emit_chain, is_tensor, shape_key
from ..family import DeviceSpec, Match, Rendered, Unsupported

# Search space as data. cuda: block size x warps x eviction of streaming loads.
CONFIGS = {
    "cuda": [
        {"BLOCK": b, "num_warps": w, "EVICT": ev}
        for b in (1024, 2048, 4096, 512)
        for w in (4, 8)
        for ev in ("", "evict_first")
        if not (b == 512 and w == 8)
    ],
    # interpreter: few, large programs (each program costs Python time)
    "cpu": [{"BLOCK": 1024, "num_warps": 4, "EVICT": ""}, {"BLOCK": 256, "num_warps": 4, "EVICT": ""}],
}


class PointwiseFamily:
    name = "pointwise"
    kinds = ("pointwise",)

    def match(self, region: Region, captured: Captured) -> Match | None:
        for n in region.nodes:
            if not expr.supported(n):
                raise Unsupported(f"no template for {n.target}")
            expr.compute_type(expr.node_dtype(n))
        outs = region.outputs
        if not outs:
            return None
        shape = shape_key(outs[0])
        if any(shape_key(o) != shape for o in outs):
            raise Unsupported("outputs of different shapes")
        tensors = [a for a in region.inputs if is_tensor(a)]
        if not tensors:
            raise Unsupported("no tensor input (a constant-only region)")
        if any(len(shape_key(a)) > len(shape) for a in tensors):
            raise Unsupported("an input of higher rank than the output")
        scalars = [a for a in region.inputs if not is_tensor(a)]
        for s in scalars:
            if not isinstance(meta_val(s), (int, float)) and "Sym" not in type(meta_val(s)).__name__:
                raise Unsupported(f"input {s.name} is neither tensor nor scalar")
        return Match(
            family=self.name,
            region=region,
            label=f"pointwise [{', '.join(o.split('.')[1] for o in region.ops)}] rank {len(shape)}",
            spec={"rank": max(1, len(shape)), "true_rank": len(shape)},
        )

    def configs(self, match: Match, device: DeviceSpec) -> list[dict]:
        return [dict(c) for c in CONFIGS["cpu" if device.kind == "cpu" else "cuda"]]

    def estimate(self, match: Match, config: dict, device: DeviceSpec, numel: int, bytes_moved: int) -> float:
        """Modelled seconds: DRAM time plus a wave-quantization tail and a per-program cost."""
        programs = max(1, -(-numel // config["BLOCK"]))
        per_wave = device.sm_count * max(1, 2048 // (32 * config["num_warps"]))
        waves = -(-programs // per_wave)
        t_mem = bytes_moved / (device.bandwidth_gbs * 1e9)
        return t_mem * (waves * per_wave / programs) + 3e-6

    def render(self, match: Match, config: dict, prefix: str) -> Rendered:
        region = match.region
        rank = match.spec["rank"]
        true_rank = match.spec["true_rank"]
        ins = [f"in{i}" for i in range(len(region.inputs))]
        tensor_idx = [i for i, a in enumerate(region.inputs) if is_tensor(a)]
        outs = [f"out{j}" for j in range(len(region.outputs))]
        kname = f"_{prefix}_pointwise_kernel"
        dims = [f"D{d}" for d in range(rank)]
        evict = f', eviction_policy="{config["EVICT"]}"' if config.get("EVICT") else ""

        params = [f"{ins[i]}_ptr" if i in tensor_idx else ins[i] for i in range(len(ins))]
        params += [f"{o}_ptr" for o in outs] + ["N", *dims]
        params += [f"{ins[i]}_st{d}" for i in tensor_idx for d in range(rank)]
        params += [f"{ins[i].upper()}_FLAT: tl.constexpr" for i in tensor_idx]
        params += ["ALL_FLAT: tl.constexpr", "BIG: tl.constexpr", "BLOCK: tl.constexpr"]
        body = [
            "pid = tl.program_id(0)",
            "if BIG:",
            "    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
            "else:",
            "    offs = pid * BLOCK + tl.arange(0, BLOCK)",
            "mask = offs < N",
            "if not ALL_FLAT:  # n-d index of each element in the output shape",
            "    rem = offs",
        ]
        for d in reversed(range(rank)):
            if d == 0:
                body.append("    i0 = rem")
            else:
                body += [f"    i{d} = rem % D{d}", f"    rem = rem // D{d}"]
        value: dict[fx.Node, str] = {}
        for i in tensor_idx:
            a = region.inputs[i]
            idx = " + ".join(f"i{d} * {ins[i]}_st{d}" for d in range(rank))
            body += [
                f"if {ins[i].upper()}_FLAT:",
                f"    {ins[i]}_off = offs",
                "else:",
                f"    {ins[i]}_off = {idx}",
                f"a{i} = tl.load({ins[i]}_ptr + {ins[i]}_off, mask=mask, other=0{evict})"
                f".to({expr.compute_type(expr.node_dtype(a))})",
            ]
            value[a] = f"a{i}"
        for i, a in enumerate(region.inputs):
            if i not in tensor_idx:
                value[a] = ins[i]
        compute = [n for n in region.nodes]
        emit_chain(compute, value, body)
        for j, o in enumerate(region.outputs):
            body.append(f"tl.store({outs[j]}_ptr + offs, {value[o]}, mask=mask)")
        kernel = "@triton.jit\ndef {}(\n    {},\n):\n".format(kname, ",\n    ".join(params)) + "\n".join(
            "    " + line for line in body
        )

        # launcher
        tin = [ins[i] for i in tensor_idx]
        launch = [f"def {prefix}_pointwise({', '.join(ins)}):"]
        launch.append(f"    # region: {', '.join(region.ops)}")
        launch.append(f"    shape = _kw_broadcast_shapes({', '.join(t + '.shape' for t in tin)})")
        for j, o in enumerate(region.outputs):
            launch.append(
                f"    {outs[j]} = torch.empty(shape, dtype={dtype_expr(o, region.inputs, ins)}, device={tin[0]}.device)"
            )
        launch.append(f"    N = {outs[0]}.numel()")
        launch.append(f"    if N == 0:\n        return ({', '.join(outs)},)")
        launch.append("    dims = list(shape)" if true_rank else "    dims = [1]  # a 0-d output is one element")
        flat = []
        for t in tin:
            launch.append(f"    {t}_st = _kw_bcast_strides({t}, shape, {rank})")
            launch.append(f"    {t}_flat = tuple({t}.shape) == tuple(shape) and {t}.is_contiguous()")
            flat.append(f"{t}_flat")
        args = [(f"{ins[i]}" if i in tensor_idx else f"{ins[i]}") for i in range(len(ins))]
        args += outs + ["N", *[f"dims[{d}]" for d in range(rank)]]
        args += [f"*{t}_st" for t in tin]
        args += [f"{t.upper()}_FLAT={t}_flat" for t in tin]
        args += [f"ALL_FLAT={' and '.join(flat)}", "BIG=N >= 2**31 - 2**20", f"BLOCK={config['BLOCK']}"]
        args += [f"num_warps={config['num_warps']}"]
        launch.append(f"    grid = (triton.cdiv(N, {config['BLOCK']}),)")
        launch.append(f"    {kname}[grid](\n        " + ",\n        ".join(args) + ",\n    )")
        launch.append(f"    return ({', '.join(outs)},)")
        return Rendered(
            launcher=f"{prefix}_pointwise",
            source=kernel + "\n\n\n" + "\n".join(launch) + "\n",
            helpers={"_kw_bcast_strides": BCAST_STRIDES},
            kernels=[kname],
        )


FAMILY = PointwiseFamily()
