"""Capture a model's forward as an ATen-level FX graph with shapes and dtypes.

`capture(model, inputs)` runs `torch.export.export` and then `run_decompositions({})`: the graph
is functional ATen (mutations turned into outputs, e.g. BatchNorm's running stats) but composite
ops that a template matches as a whole are kept (`aten.linear`, `aten.layer_norm`,
`aten.softmax.int`, `aten.cross_entropy_loss`, `aten.var.dim` ...). Every node's
`meta["val"]` is a FakeTensor (or a SymInt / a tuple of them).

Tensor inputs are exported with every dim dynamic (`Dim.AUTO`) where torch allows it, so sizes
that follow the inputs appear as symbols and views read them through `aten.sym_size` nodes: an
answer rendered from the graph then works at other shapes too. Dims that the model ties to its
parameters are specialized to ints by export itself. When dynamic export fails the capture is
retried with static shapes (`Captured.dynamic` says which one happened).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from ..errors import TaskError

# Placeholder kinds, as `Source.kind`.
PARAMETER, BUFFER, INPUT, CONSTANT = "parameter", "buffer", "input", "constant"


@dataclass
class Source:
    """Where a placeholder's value comes from at run time."""

    kind: str  # PARAMETER | BUFFER | INPUT | CONSTANT
    target: str  # parameter/buffer FQN ("lin.weight"), input name, or constant name
    index: int = -1  # position among the forward's arguments (INPUT only)


@dataclass
class Output:
    """One graph output: a user output, or the new value of a mutated buffer."""

    node: fx.Node | None  # None for a non-tensor constant output
    kind: str  # "user" | "buffer_mutation"
    target: str = ""  # buffer FQN for "buffer_mutation"
    value: Any = None  # the literal when node is None


@dataclass
class Captured:
    gm: fx.GraphModule
    placeholders: dict[str, Source]  # placeholder node name -> where its value comes from
    outputs: list[Output]
    example_inputs: list  # the inputs the capture ran with
    dynamic: bool  # True when exported with dynamic dims
    exported: Any = None  # the torch.export.ExportedProgram
    constants: dict[str, Any] = field(default_factory=dict)  # lifted tensor constants by name
    # node name -> root-module int attribute its dim argument reads (`torch.sum(x, self.dim)`);
    # filled by bind_int_attributes(), so an answer can read the attribute at run time
    bindings: dict[str, str] = field(default_factory=dict)
    # node name -> positions of its arguments that hold the attribute: i (args[i]) or (i, j) (args[i][j])
    binding_positions: dict[str, list] = field(default_factory=dict)

    @property
    def graph(self) -> fx.Graph:
        return self.gm.graph

    def nodes(self) -> list[fx.Node]:
        return list(self.gm.graph.nodes)

    def user_inputs(self) -> list[fx.Node]:
        """Placeholders fed by the forward's arguments, in argument order."""
        ph = [n for n in self.gm.graph.nodes if n.op == "placeholder" and self.placeholders[n.name].kind == INPUT]
        return sorted(ph, key=lambda n: self.placeholders[n.name].index)


def _dynamic_spec(inputs: list) -> tuple:
    from torch.export import Dim

    return tuple({d: Dim.AUTO for d in range(x.dim())} if isinstance(x, torch.Tensor) else None for x in inputs)


def _export(model: torch.nn.Module, inputs: tuple, dynamic: bool):
    kwargs = {"dynamic_shapes": _dynamic_spec(list(inputs))} if dynamic else {}
    # export prints/warns about specializations; that is expected, not news for the user.
    quiet = [logging.getLogger(n) for n in ("torch._export", "torch.export", "torch.fx.experimental.symbolic_shapes",
                                             "torch._subclasses.fake_tensor")]
    levels = [q.level for q in quiet]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        for q, lv in zip(quiet, levels):
            q.setLevel(logging.ERROR)
            stack.callback(q.setLevel, lv)
        ep = torch.export.export(model, inputs, strict=False, **kwargs)
        return ep.run_decompositions({})


def capture(model: torch.nn.Module, inputs: list, dynamic: bool = True) -> Captured:
    """Export `model(*inputs)` to a functional ATen graph; raises TaskError when torch cannot."""
    args = tuple(inputs)
    ep, errors = None, []
    for dyn in ([True, False] if dynamic else [False]):
        try:
            ep = _export(model, args, dyn)
            dynamic = dyn
            break
        except Exception as exc:  # export raises many types; the message is what matters
            errors.append(f"{'dynamic' if dyn else 'static'}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if ep is None:
        raise TaskError(
            f"torch.export could not capture {type(model).__name__}.forward ({'; '.join(errors)})",
            "Make the forward traceable (no data-dependent Python control flow), or use the LLM proposer.",
        )
    sig = ep.graph_signature
    placeholders: dict[str, Source] = {}
    from torch.export.graph_signature import InputKind, OutputKind

    user_index = 0
    for spec in sig.input_specs:
        name = spec.arg.name
        if spec.kind == InputKind.PARAMETER:
            placeholders[name] = Source(PARAMETER, spec.target)
        elif spec.kind == InputKind.BUFFER:
            placeholders[name] = Source(BUFFER, spec.target)
        elif spec.kind == InputKind.USER_INPUT:
            placeholders[name] = Source(INPUT, name, user_index)
            user_index += 1
        else:  # lifted tensor constants, custom objects, tokens
            placeholders[name] = Source(CONSTANT, spec.target or name)
    gm = ep.graph_module
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    returned = list(out_node.args[0])
    outputs: list[Output] = []
    for spec, value in zip(sig.output_specs, returned):
        node = value if isinstance(value, fx.Node) else None
        lit = None if node is not None else value
        if spec.kind == OutputKind.BUFFER_MUTATION:
            outputs.append(Output(node, "buffer_mutation", spec.target, lit))
        elif spec.kind == OutputKind.USER_OUTPUT:
            outputs.append(Output(node, "user", "", lit))
        else:
            raise TaskError(
                f"the captured graph has an output of kind {spec.kind.name}, which kernelwright does not handle",
                "Only forward passes that return tensors and mutate buffers are supported.",
            )
    return Captured(
        gm=gm,
        placeholders=placeholders,
        outputs=outputs,
        example_inputs=list(inputs),
        dynamic=dynamic,
        exported=ep,
        constants=dict(ep.constants),
    )


def target_name(node: fx.Node) -> str:
    """'aten.add.Tensor' for an ATen call, 'getitem' for operator.getitem, else the op kind."""
    if node.op != "call_function":
        return node.op
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        return f"aten.{t._schema.name.split('::')[-1]}.{t._overloadname}" if t.namespace == "aten" else str(t)
    return getattr(t, "__name__", str(t))


def packet_name(node: fx.Node) -> str:
    """'aten.add' (the overload packet) for an ATen call; same as target_name otherwise."""
    name = target_name(node)
    return ".".join(name.split(".")[:2]) if name.startswith("aten.") else name


def meta_val(node: Any):
    return node.meta.get("val") if isinstance(node, fx.Node) else node


def _full_args(node: fx.Node) -> tuple:
    """Positional args with the schema's defaults filled in (cat(xs) and cat(xs, 0) compare equal)."""
    args = list(node.args)
    schema = getattr(node.target, "_schema", None)
    if schema is not None:
        pos = [a for a in schema.arguments if not a.kwarg_only]
        for a in pos[len(args):]:
            if a.name in node.kwargs:
                args.append(node.kwargs[a.name])
            elif a.has_default_value():
                args.append(a.default_value)
            else:
                break
    return tuple(args)


def _dim_args(node: fx.Node) -> list:
    return [a for a in _full_args(node)[1:] if isinstance(a, (int, list, tuple))]


# Int attributes of submodules a checker changes through the task's constructor (num_groups of
# nn.GroupNorm). Root-module int attributes are always tried.
BINDABLE_SUBMODULE_ATTRS = {"GroupNorm": ("num_groups",)}


def _changed_positions(a: fx.Node, b: fx.Node, value: int, other: int) -> list | None:
    """Argument positions where a holds `value` and b `other` (negative dims count too); None if
    anything else differs."""
    out: list = []
    a_args, b_args = _full_args(a), _full_args(b)
    if len(a_args) != len(b_args):
        return None

    def same_dim(x, y) -> bool:
        return isinstance(x, int) and isinstance(y, int) and (x, y) in ((value, other),) or (
            isinstance(x, int) and isinstance(y, int) and x < 0 and y < 0 and x - y == value - other)

    for i, (x, y) in enumerate(zip(a_args, b_args)):
        if isinstance(x, fx.Node) or isinstance(y, fx.Node):
            continue
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y):
            for j, (xx, yy) in enumerate(zip(x, y)):
                if isinstance(xx, fx.Node) or xx == yy:
                    continue
                if not same_dim(xx, yy):
                    return None
                out.append((i, j))
        elif x != y:
            if not same_dim(x, y):
                return None
            out.append(i)
    return out


def bind_int_attributes(model: torch.nn.Module, inputs: list, captured: Captured) -> dict[str, str]:
    """Find which nodes' int arguments come from an int attribute of the root module.

    KernelBench keeps a reduction's dim as `self.dim` from get_init_inputs(), and a checker may
    build the model with another dim. Each int attribute is changed to another value and the
    forward re-captured; nodes whose arguments alone change (same graph otherwise) are bound to
    it. Attributes that change anything else (shapes, the graph) are left unbound."""
    base = [n for n in captured.graph.nodes]
    found: dict[str, str] = {}
    candidates = [(model, attr, attr) for attr in vars(model)]
    for path, mod in model.named_modules():
        for attr in BINDABLE_SUBMODULE_ATTRS.get(type(mod).__name__, ()):
            if path:
                candidates.append((mod, attr, f"{path}.{attr}"))
    for owner, attr, name in candidates:
        value = getattr(owner, attr, None)
        if type(value) is not int or attr.startswith("_"):
            continue
        tries = (value + 1, value - 1, value + 2)
        if owner is not model:
            # num_groups: G +- 1 rarely divides C (GroupNorm(8, 64): 9, 7 and 10 all raise, and an
            # attribute whose every try raises is left unbound: the answer keeps G as a literal)
            tries += tuple(o for o in (value * 2, value // 2) if o > 0 and o != value)
        for other in tries:
            try:
                setattr(owner, attr, other)
                alt = capture(model, inputs, dynamic=captured.dynamic)
            except Exception:
                continue
            finally:
                setattr(owner, attr, value)
            nodes = list(alt.graph.nodes)
            if len(nodes) != len(base) or any(a.target != b.target for a, b in zip(base, nodes)):
                break  # the attribute changes the graph itself: not a plain dim
            diff = [(a, b) for a, b in zip(base, nodes) if a.op == "call_function" and _dim_args(a) != _dim_args(b)]
            positions = {a.name: _changed_positions(a, b, value, other) for a, b in diff}
            if diff and all(p is not None for p in positions.values()):
                for a, _ in diff:
                    found[a.name] = name
                    captured.binding_positions[a.name] = positions[a.name]
            break
    captured.bindings.update(found)
    return found


def size_hint(s) -> int:
    """A concrete int for a (possibly symbolic) size: its hint at the captured shapes.
    Works on torch 2.11 (GPU image) and 2.13 (CPU), which differ in their symbolic-shape helpers."""
    if isinstance(s, int):
        return s
    try:
        h = s.node.hint
        if h is not None:
            return int(h)
    except AttributeError:
        pass
    return int(s)
