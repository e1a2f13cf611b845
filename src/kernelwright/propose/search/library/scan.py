"""Scan family: cumsum / cumprod over any dim, reversed (flip -> scan -> flip, as KernelBench writes
it) with a pointwise prologue and epilogue (e.g. `cumsum(x * mask)`).

The domain is viewed as [M rows, R along the scan dim] (strides per input from the launcher).
ONE_PASS: the row fits in a tile and `tl.cumsum` / `tl.associative_scan` does it all; looped:
chunks of BLOCK_R walk the row (from the end when reversed) with a per-row carry in fp32.
"""
from __future__ import annotations

from torch import fx

from ....extract.graph import Captured, packet_name
from ....extract.regions import Region
from .. import expr
from ..codegen import dtype_expr, emit_chain, is_tensor, shape_key
from ..family import DeviceSpec, Match, Rendered, Unsupported
from ..rowengine import GROUP_STRIDES, PROD, ROW_HELPERS

SCANS = {"aten.cumsum": "sum", "aten.cumprod": "prod"}

CONFIGS = {
    "cpu": [
        {"ONE_PASS_MAX": 1024, "BLOCK_O": 16, "BLOCK_R": 128, "num_warps": 4},
        {"ONE_PASS_MAX": 0, "BLOCK_O": 4, "BLOCK_R": 16, "num_warps": 4},
    ],
    "cuda": [
        {"ONE_PASS_MAX": op, "BLOCK_O": bo, "BLOCK_R": br, "num_warps": w}
        for op in (4096, 1024)
        for bo in (1, 2, 4)
        for br in (512, 1024, 2048)
        for w in (4, 8)
    ],
}


class ScanFamily:
    name = "scan"
    kinds = ("scan",)

    def match(self, region: Region, captured: Captured) -> Match | None:
        scans = [n for n in region.nodes if packet_name(n) in SCANS]
        if len(scans) != 1:
            return None
        scan = scans[0]
        rank = len(shape_key(scan))
        if rank == 0:
            raise Unsupported("a scan of a 0-d tensor")
        dim = scan.args[1] % rank
        if scan.kwargs.get("dtype") is not None:
            raise Unsupported("scan with a dtype argument")
        cats = [n for n in region.nodes if packet_name(n) == "aten.cat"]
        shift_const = None
        if cats:  # exclusive scan as KernelBench writes it: cat([zeros_like(..), cumsum(x[:, :-1])], dim)
            cat = cats[0]
            const, scanned = cat.args[0]
            cat_dim = (cat.args[1] if len(cat.args) > 1 else 0) % rank
            if len(cats) != 1 or scanned is not scan or cat_dim != dim or region.nodes[-1] is not cat:
                raise Unsupported("a cat in a scan region other than a leading constant on the scan dim")
            shift_const = {"aten.zeros_like": 0.0, "aten.ones_like": 1.0}.get(packet_name(const))
            if shift_const is None:
                fill = const.args[1] if len(const.args) > 1 else None
                if not isinstance(fill, (int, float)):
                    raise Unsupported("exclusive scan with a non-constant first element")
                shift_const = float(fill)
        flips = [n for n in region.nodes if packet_name(n) == "aten.flip"]
        for f in flips:
            if [d % rank for d in f.args[1]] != [dim]:
                raise Unsupported("a flip over other dims than the scan dim")
        before = [f for f in flips if f in scan.all_input_nodes]
        after = [f for f in flips if scan in f.all_input_nodes]
        if len(flips) != len(before) + len(after) or len(before) != len(after):
            raise Unsupported("a flip on one side of the scan only")
        full = shape_key(scan)
        extra = set(cats) | ({cats[0].args[0][0]} if cats else set())
        for n in region.nodes:
            if n is scan or n in flips or n in extra:
                continue
            if not expr.supported(n):
                raise Unsupported(f"{packet_name(n)} in a scan region")
            if shape_key(n) != full:
                raise Unsupported("a pointwise op of another shape than the scan")
        for o in region.outputs:
            if shape_key(o) != full and o not in cats:
                raise Unsupported("an output of another shape than the scan")
        rev = bool(before)
        return Match(
            self.name,
            region,
            f"{'reversed ' if rev else ''}cum{SCANS[packet_name(scan)]} over dim {dim} of rank {rank}",
            {"scan": scan, "dim": dim, "rank": rank, "reverse": rev, "flips": flips, "op": SCANS[packet_name(scan)],
             "dim_attr": captured.bindings.get(scan.name), "shift": shift_const, "extra": extra},
        )

    def configs(self, match: Match, device: DeviceSpec) -> list[dict]:
        return [dict(c) for c in CONFIGS["cpu" if device.kind == "cpu" else "cuda"]]

    def estimate(self, match: Match, config: dict, device: DeviceSpec, numel: int, bytes_moved: int) -> float:
        return bytes_moved / (device.bandwidth_gbs * 1e9) * (1.0 + 1.0 / config["BLOCK_O"]) + 4e-6

    def render(self, match: Match, config: dict, prefix: str) -> Rendered:
        region = match.region
        sp = match.spec
        rank, dim, op = sp["rank"], sp["dim"], sp["op"]
        scan = sp["scan"]
        kept = [[d] for d in range(rank) if d != dim]
        # merge adjacent kept dims is left to _kw_group_strides per group; one group per dim here
        KG = len(kept)
        # inputs only the exclusive scan's constant reads (its shape source) are not loaded
        readers = [n for n in region.nodes if n not in sp.get("extra", set())]
        tin = [i for i, a in enumerate(region.inputs) if is_tensor(a) and any(a in n.all_input_nodes for n in readers)]
        sin = [i for i, a in enumerate(region.inputs) if not is_tensor(a)]
        kname = f"_{prefix}_scan_kernel"
        neutral = "0.0" if op == "sum" else "1.0"
        users = [f"in{i}" for i in tin] + [f"out{j}" for j in range(len(region.outputs))]

        params = []
        for i in range(len(region.inputs)):
            if i in tin:
                params += [f"in{i}_ptr"] + [f"in{i}_k{g}" for g in range(KG)] + [f"in{i}_q"]
            elif i in sin:
                params.append(f"in{i}")
        for j in range(len(region.outputs)):
            params += [f"out{j}_ptr"] + [f"out{j}_k{g}" for g in range(KG)] + [f"out{j}_q"]
        params += ["M", "R"] + [f"K{g}" for g in range(KG)]
        shift = sp.get("shift")
        params += ["ONE_PASS: tl.constexpr", "REVERSE: tl.constexpr", "BLOCK_O: tl.constexpr", "BLOCK_R: tl.constexpr"]

        B = ["pid = tl.program_id(0)", "o = pid.to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)", "omask = o < M", "rem = o"]
        for g in reversed(range(KG)):
            B += [f"kc{g} = rem % K{g}", f"rem = rem // K{g}"] if g > 0 else [f"kc{g} = rem"]
        for u in users:
            B.append(f"{u}_oo = " + (" + ".join(f"kc{g} * {u}_k{g}" for g in range(KG)) if KG else "o * 0"))

        def chunk(start: str, carry: bool) -> list[str]:
            L = [f"r = {start} + tl.arange(0, BLOCK_R)", "m2 = omask[:, None] & (r < R)[None, :]"]
            value: dict[fx.Node, str] = {}
            for i in tin:
                a = region.inputs[i]
                L.append(
                    f"a{i} = tl.load(in{i}_ptr + in{i}_oo[:, None] + (r * in{i}_q)[None, :], mask=m2, other=0)"
                    f".to({expr.compute_type(expr.node_dtype(a))})"
                )
                value[a] = f"a{i}"
            for i in sin:
                value[region.inputs[i]] = f"in{i}"
            skip = set(sp["flips"]) | sp.get("extra", set())
            pro = [n for n in region.nodes if n is not scan and n not in skip and _before(n, scan)]
            epi = [n for n in region.nodes if n is not scan and n not in skip and not _before(n, scan)]
            emit_chain(pro, value, L)
            src_node = scan.args[0]
            src = value[src_node.args[0]] if src_node in sp["flips"] else value[src_node]
            L.append(f"src = tl.where(m2, {src}, {neutral})")
            if op == "sum":
                L.append("s = tl.cumsum(src, axis=1, reverse=REVERSE)")
            else:
                L.append("s = tl.associative_scan(src, 1, _kw_mul, reverse=REVERSE)")
            if carry:
                if op == "sum":
                    L += ["s = s + carry[:, None]", "carry = carry + tl.sum(src, 1)"]
                else:
                    L += ["s = s * carry[:, None]", "carry = carry * tl.reduce(src, 1, _kw_mul)"]
            value[scan] = "s"
            for f in sp["flips"]:
                if scan in f.all_input_nodes:
                    value[f] = "s"
            emit_chain(epi, value, L)
            for j, o in enumerate(region.outputs):
                if shift is not None:  # exclusive: element r of the scan lands at r + 1
                    L.append(f"tl.store(out{j}_ptr + out{j}_oo[:, None] + ((r + 1) * out{j}_q)[None, :], s, mask=m2)")
                else:
                    L.append(f"tl.store(out{j}_ptr + out{j}_oo[:, None] + (r * out{j}_q)[None, :], {value[o]}, mask=m2)")
            return L

        if shift is not None:
            B += [f"tl.store(out{j}_ptr + out{j}_oo, tl.full([BLOCK_O], {shift!r}, tl.float32), mask=omask)"
                  for j in range(len(region.outputs))]
        B.append("if ONE_PASS:")
        B += ["    " + x for x in chunk("0", False)]
        B.append("else:")
        B.append(f"    carry = tl.full([BLOCK_O], {neutral}, tl.float32)")
        B.append("    nchunks = tl.cdiv(R, BLOCK_R)")
        B.append("    for i in range(0, nchunks):")
        B.append("        if REVERSE:  # walk the row from its end")
        B.append("            r0 = (nchunks - 1 - i) * BLOCK_R")
        B.append("        else:")
        B.append("            r0 = i * BLOCK_R")
        B += ["        " + x for x in chunk("r0", True)]
        kernel = "@triton.jit\ndef {}(\n    {},\n):\n".format(kname, ",\n    ".join(params)) + "\n".join("    " + x for x in B)

        ins = [f"in{i}" for i in range(len(region.inputs))]
        L = [f"def {prefix}_scan({', '.join(ins + [f'dim={dim}'])}):", f"    # region: {', '.join(region.ops)}"]
        L.append(f"    shape = tuple(_kw_broadcast_shapes({', '.join(f'in{i}.shape' for i in tin)}))")
        L.append(f"    d = dim % {rank}  # the scan dim")
        L.append(f"    groups = [[i] for i in range({rank}) if i != d] + [[d]]")
        L.append(f"    Ks = [shape[i] for i in range({rank}) if i != d]")
        L.append("    M, R = _kw_prod(Ks), shape[d]")
        outs = []
        if sp.get("shift") is not None:
            L.append("    out_shape = tuple(s + 1 if i == d else s for i, s in enumerate(shape))  # the leading constant")
        else:
            L.append("    out_shape = shape")
        for j, o in enumerate(region.outputs):
            L.append(f"    out{j} = torch.empty(out_shape, dtype={dtype_expr(o, region.inputs, ins)}, device=in{tin[0]}.device)")
            outs.append(f"out{j}")
        L.append(f"    if M == 0:\n        return ({', '.join(outs)},)")
        args = []
        for i in range(len(region.inputs)):
            if i in tin:
                L.append(f"    in{i}_st = _kw_group_strides(in{i}, shape, groups)")
                args += [f"in{i}", f"*in{i}_st"]
            elif i in sin:
                args.append(f"in{i}")
        for j in range(len(region.outputs)):
            L.append(f"    out{j}_st = _kw_group_strides(out{j}, out_shape, groups)")
            args += [f"out{j}", f"*out{j}_st"]
        L.append(f"    one_pass = R <= {config['ONE_PASS_MAX']}")
        L.append(f"    block_r = triton.next_power_of_2(R) if one_pass else {config['BLOCK_R']}")
        L.append(f"    block_o = max(1, min({config['BLOCK_O']}, 8192 // block_r))")
        args += ["M", "R", "*Ks", "ONE_PASS=one_pass", f"REVERSE={sp['reverse']}", "BLOCK_O=block_o", "BLOCK_R=block_r",
                 f"num_warps={config['num_warps']}"]
        L.append("    grid = (triton.cdiv(M, block_o),)")
        L.append(f"    {kname}[grid](\n        " + ",\n        ".join(args) + ",\n    )")
        L.append(f"    return ({', '.join(outs)},)")
        helpers = {"_kw_group_strides": GROUP_STRIDES, "_kw_prod": PROD}
        if op == "prod":
            helpers["_kw_mul"] = ROW_HELPERS["_kw_mul"]
        kw = {"dim": f"self.{sp['dim_attr']}"} if sp.get("dim_attr") else {}
        return Rendered(f"{prefix}_scan", kernel + "\n\n\n" + "\n".join(L) + "\n", helpers, [kname], kw)


def _before(n: fx.Node, scan: fx.Node) -> bool:
    """True when n precedes the scan in graph order (a prologue op)."""
    cur = n
    while cur.op != "output":
        if cur is scan:
            return True
        cur = cur.next
    return False


FAMILY = ScanFamily()
