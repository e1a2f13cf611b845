"""Integrate the winners: DIR/model_optimized.py (an answer file for the target) and the live module.

model_optimized.py is standalone (torch, triton and what the target file itself imports):
  1. the target file's own source, verbatim (ModelNew subclasses its Model, so the constructor,
     the parameters and the state_dict keys are the original's);
  2. the runtime (integrate/runtime.py, verbatim), which re-exports the forward per input signature
     and runs each region that has a winner through that winner's kernel;
  3. each winning answer file's source as a string, exec'd into its own namespace (two answers may
     both define `_kernel` or `ModelNew`; separate namespaces keep them apart without rewriting them);
  4. the plan: for each region with a winner, its nodes, inputs and outputs.
Regions without a winner, and glue between regions, run as the model's own ATen ops.
"""
from __future__ import annotations

import pprint
import shutil
from pathlib import Path
from typing import Any

RUNTIME_PATH = Path(__file__).with_name("runtime.py")


def is_winner(o: Any) -> bool:
    """A task's best answer goes into the model when it is accepted and, where it was timed, faster
    than the region it replaces: the loop keeps its first accepted answer as the incumbent even when
    slower than eager (0.50x on an H100 matmul region), and swapping that in would slow the model.
    On a CPU nothing is timed (best_speedup None) and every accepted answer is wired in (the
    correctness demo)."""
    return o is not None and o.best_path is not None and (o.best_speedup is None or o.best_speedup > 1.0)


def runtime_plan(plan: dict, outcomes: dict) -> dict:
    """The part of the plan the runtime needs: regions whose task has a winner (is_winner)."""
    won = {name for name, o in outcomes.items() if is_winner(o)}
    regions = [
        {k: r[k] for k in ("region_index", "task", "nodes", "inputs", "outputs")}
        for r in plan.get("regions", [])
        if r.get("task") in won
    ]
    return {"dynamic": bool((plan.get("capture") or {}).get("dynamic")), "regions": regions}


def winners(plan: dict, outcomes: dict) -> dict[str, Path]:
    rp = runtime_plan(plan, outcomes)
    names = sorted({r["task"] for r in rp["regions"]})
    return {n: Path(outcomes[n].best_path) for n in names}


def write_model_optimized(plan: dict, outcomes: dict, out: Path, model_file: Path | None) -> Path | None:
    """Write DIR/model_optimized.py; None when no kernel won (or, for a live module, no file exists)."""
    dest = out / "model_optimized.py"
    if plan["mode"] == "single":
        o = outcomes.get(plan["tasks"][0]["name"])
        if not is_winner(o):
            dest.unlink(missing_ok=True)
            return None
        shutil.copyfile(o.best_path, dest)  # the winner is already an answer for the target
        return dest
    kernels = winners(plan, outcomes)
    if model_file is None or not kernels:
        dest.unlink(missing_ok=True)
        return None
    from ..task import load_module

    params, call = forward_signature(load_module(model_file).Model.forward)
    dest.write_text(render(plan, outcomes, Path(model_file).read_text(), kernels, params, call))
    return dest


def forward_signature(fn) -> tuple[str, str]:
    """("x, mask=None", "x, mask") for `def forward(self, x, mask=None)`: ModelNew keeps the signature
    (the answer contract, and torch.export reads argument names from it)."""
    import inspect

    params, call = [], []
    for i, p in enumerate(inspect.signature(fn).parameters.values()):
        if i == 0:
            continue  # self
        if p.kind is p.VAR_POSITIONAL:
            params.append(f"*{p.name}")
            call.append(f"*{p.name}")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            literal = p.default is p.empty or p.default is None or isinstance(p.default, (bool, int, float, str))
            if not literal:
                raise ValueError(f"forward argument {p.name} has a default kernelwright cannot write: {p.default!r}")
            params.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
            call.append(p.name)
        else:
            raise ValueError(f"forward argument {p.name} is keyword-only or **kwargs, which the runtime does not pass")
    return ", ".join(params), ", ".join(call)


def render(
    plan: dict, outcomes: dict, target_source: str, kernels: dict[str, Path], params: str, call: str
) -> str:
    rp = runtime_plan(plan, outcomes)
    parts = [
        f'"""Optimized {plan["name"]}: written by kernelwright from {plan["target"]}.\n\n'
        f"ModelNew runs {len(kernels)} kernel(s) in place of {len(rp['regions'])} region(s) of the model; "
        "the rest of the forward\nruns as the original's ATen ops. See the runtime section for how.\n"
        '"""',
        "# ==== the target file, verbatim ===============================================================",
        target_source.rstrip(),
        "",
        RUNTIME_PATH.read_text().rstrip(),
        "",
        "# ==== the winning kernels: one answer file each (checked by the judge on its own task) ========",
        "_KW_KERNEL_SOURCES = {}",
    ]
    for name, path in kernels.items():
        src = Path(path).read_text()
        parts.append(f"_KW_KERNEL_SOURCES[{name!r}] = {_pylit(src)}")
    parts += [
        "",
        "# ==== the plan: for each region with a winner, where it is in the exported graph =============",
        f"_KW_PLAN = {pprint.pformat(rp, width=110, sort_dicts=False)}",
        "",
        "_KW_KERNELS = {name: kw_load_kernel(name, src, __name__) for name, src in _KW_KERNEL_SOURCES.items()}",
        "_KW_GRAPHS = {}  # exported graphs, shared by every ModelNew instance (see KwRuntime)",
        "",
        "",
        "class ModelNew(Model):",
        '    """The target Model with the winners wired in: same constructor, parameters and state_dict."""',
        "",
        "    def __init__(self, *args, **kwargs):",
        "        super().__init__(*args, **kwargs)",
        "        # Not a submodule: the kernels' own modules must not add keys to the state_dict.",
        "        object.__setattr__(self, '_kw_runtime', KwRuntime(_KW_PLAN, _KW_KERNELS, _KW_GRAPHS))",
        "",
        f"    def forward(self{', ' if params else ''}{params}):",
        f"        return self._kw_runtime(self, Model.forward, ({call}{',' if call else ''}))",
        "",
    ]
    return "\n".join(parts)


def _pylit(text: str) -> str:
    """A Python literal for `text`, readable as code when it has no triple quotes or backslashes."""
    if '"""' not in text and "\\" not in text:
        return 'r"""' + text + '"""' if not text.endswith('"') else repr(text)
    return repr(text)


def load_optimized(plan: dict, outcomes: dict, out: Path, model) -> Any:
    """The live module for kernelwright.optimize(): `model` itself (its state shared, not copied) with
    the winners wired in through the same runtime the file uses. Returns `model` when nothing won."""
    from ..task import load_module
    from . import runtime

    if plan["mode"] == "single":
        o = outcomes.get(plan["tasks"][0]["name"])
        if not is_winner(o):
            return model
        from ..task import load_task

        task = load_task(out / plan["tasks"][0]["path"])
        new = load_module(o.best_path).ModelNew(*task.init_inputs(seed=0))
        new.load_state_dict(model.state_dict(), strict=False)  # the caller's weights, where names match
        device = next((p.device for p in model.parameters()), None)
        return new.to(device) if device is not None else new
    kernels = winners(plan, outcomes)
    if not kernels:
        return model
    classes = {}
    for name, path in kernels.items():
        classes[name] = runtime.kw_load_kernel(name, Path(path).read_text(), f"kw_live_{name}")
    rt = runtime.KwRuntime(runtime_plan(plan, outcomes), classes)
    original = type(model).forward
    params, call = forward_signature(original)
    namespace = {"_original": original}
    exec(  # a forward with the original's argument names: torch.export reads them
        f"def forward(self{', ' if params else ''}{params}):\n"
        f"    return self._kw_runtime(self, _original, ({call}{',' if call else ''}))\n",
        namespace,
    )
    cls = type(f"{type(model).__name__}Optimized", (type(model),), {
        "forward": namespace["forward"],
        "__module__": type(model).__module__,
    })
    new = cls.__new__(cls)
    new.__dict__ = dict(model.__dict__)
    object.__setattr__(new, "_kw_runtime", rt)
    return new
