"""Load and validate a KernelBench-format task file; build its inputs at rescaled sizes.

A task file defines `class Model(nn.Module)`, `get_inputs()` and `get_init_inputs()`.
Its *size constants* are the module-level ints that feed those two functions (directly or
through a helper they call); the judge overrides them to check an answer at other shapes.
A task may also declare extra dtypes to check with a module-level `DTYPES = [torch.float16, ...]`.

The task is the user's own (trusted) code: it is loaded into the judge's process. Answers
never are (see judge/).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import TaskError
from .pyparse import parse

_FIX = "Fix the task file: it must define class Model(nn.Module), get_inputs() and get_init_inputs()."


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return f"kw_task_{digest}"


def load_module(path: str | Path, name: str | None = None) -> types.ModuleType:
    """Exec a Python file into a fresh module (not cached in sys.modules beyond the exec)."""
    path = Path(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot read task file {path}: {exc}", "Check the path and its permissions.")
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise TaskError(f"syntax error in {path} line {exc.lineno}: {exc.msg}", _FIX)
    mod = types.ModuleType(name or _module_name(path))
    mod.__file__ = str(path)
    # Registered while executing so that dataclasses / pickling inside the file work.
    sys.modules[mod.__name__] = mod
    try:
        exec(code, mod.__dict__)
    except Exception as exc:  # the file's own top level raised
        sys.modules.pop(mod.__name__, None)
        raise TaskError(f"{path} raised while loading: {type(exc).__name__}: {exc}", _FIX)
    return mod


def _referenced_globals(fn: Any, mod_dict: dict, seen: set[int]) -> set[str]:
    """Global names read by fn's code, following nested code objects and same-module helpers."""
    names: set[str] = set()
    code = getattr(fn, "__code__", None)
    if code is None or id(code) in seen:
        return names
    seen.add(id(code))
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    for n in list(names):
        obj = mod_dict.get(n)
        if isinstance(obj, types.FunctionType) and obj.__module__ == mod_dict.get("__name__"):
            names |= _referenced_globals(obj, mod_dict, seen)
    return names


@dataclass
class Task:
    """A loaded task. `size_constants` maps name -> the file's own value."""

    path: Path
    name: str
    source: str
    module: types.ModuleType
    size_constants: dict[str, int] = field(default_factory=dict)
    dtypes: list[torch.dtype] = field(default_factory=list)

    @contextlib.contextmanager
    def overridden(self, overrides: dict[str, int] | None) -> Iterator[None]:
        """Temporarily set size constants (module globals) to other values."""
        overrides = overrides or {}
        unknown = set(overrides) - set(self.size_constants)
        if unknown:
            raise KeyError(f"not size constants of {self.name}: {sorted(unknown)}")
        g = self.module.__dict__
        derived = _derived_assignments(self.source, frozenset(overrides))
        names = set(overrides) | {n for _, targets in derived for n in targets}
        old = {k: g[k] for k in names if k in g}
        g.update(overrides)
        try:
            # Module constants computed from an overridden one at import (`input_shape =
            # (num_classes,)`) are computed again, in file order: otherwise a size variant mixes
            # the new value with the stale one (KernelBench level1/95: targets past the class count).
            for code, _ in derived:
                exec(code, g)
            yield
        finally:
            for k in names:
                if k in old:
                    g[k] = old[k]
                else:
                    g.pop(k, None)

    def init_inputs(self, overrides: dict[str, int] | None = None, seed: int = 0) -> list:
        with self.overridden(overrides):
            torch.manual_seed(seed)
            try:
                out = self.module.get_init_inputs()
            except Exception as exc:
                raise TaskError(f"get_init_inputs() of {self.name} raised: {type(exc).__name__}: {exc}", _FIX)
        if not isinstance(out, (list, tuple)):
            raise TaskError(f"get_init_inputs() of {self.name} returned {type(out).__name__}, not a list", _FIX)
        return list(out)

    def inputs(self, overrides: dict[str, int] | None = None, seed: int = 0) -> list:
        with self.overridden(overrides):
            torch.manual_seed(seed)
            try:
                out = self.module.get_inputs()
            except Exception as exc:
                raise TaskError(f"get_inputs() of {self.name} raised: {type(exc).__name__}: {exc}", _FIX)
        if not isinstance(out, (list, tuple)):
            raise TaskError(f"get_inputs() of {self.name} returned {type(out).__name__}, not a list", _FIX)
        return list(out)

    def build_model(self, init_inputs: list, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        try:
            return self.module.Model(*init_inputs)
        except Exception as exc:
            raise TaskError(f"Model(*get_init_inputs()) of {self.name} raised: {type(exc).__name__}: {exc}", _FIX)


@functools.lru_cache(maxsize=64)
def _derived_assignments(source: str, changed: frozenset) -> list[tuple[Any, list[str]]]:
    """(compiled statement, names it assigns) for each top-level `NAME = expression` that reads,
    directly or through an earlier such statement, one of `changed`; in file order."""
    import ast

    if not changed:
        return []
    try:
        tree = parse(source)
    except SyntaxError:
        return []
    dirty, out = set(changed), []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            targets, value = [stmt.target.id], stmt.value
        else:
            continue
        if not targets or set(targets) & changed:
            continue  # the overridden constants themselves keep their override
        reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
        if reads & dirty:
            out.append((compile(ast.Module(body=[stmt], type_ignores=[]), "<task constants>", "exec"), targets))
            dirty.update(targets)
    return out


def find_size_constants(mod: types.ModuleType) -> dict[str, int]:
    g = mod.__dict__
    seen: set[int] = set()
    names = _referenced_globals(g.get("get_inputs"), g, seen) | _referenced_globals(g.get("get_init_inputs"), g, seen)
    return {
        n: g[n]
        for n in sorted(names)
        if n in g and isinstance(g[n], int) and not isinstance(g[n], bool) and not n.startswith("__")
    }


def load_task(path: str | Path) -> Task:
    """Load and validate a task file; raises TaskError with what to fix."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task file not found: {path}", "Pass the path of a KernelBench-format .py file.")
    mod = load_module(path)
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if not hasattr(mod, n)]
    if missing:
        raise TaskError(f"{path} does not define {', '.join(missing)}", _FIX)
    if not (isinstance(mod.Model, type) and issubclass(mod.Model, torch.nn.Module)):
        raise TaskError(f"{path}: Model is not an nn.Module subclass", _FIX)
    for fn in ("get_inputs", "get_init_inputs"):
        if not callable(getattr(mod, fn)):
            raise TaskError(f"{path}: {fn} is not a function", _FIX)
    dtypes = getattr(mod, "DTYPES", [])
    if not isinstance(dtypes, (list, tuple)) or not all(isinstance(d, torch.dtype) for d in dtypes):
        raise TaskError(f"{path}: DTYPES must be a list of torch dtypes", "e.g. DTYPES = [torch.float16]")
    return Task(
        path=path,
        name=path.stem,
        source=path.read_text(),
        module=mod,
        size_constants=find_size_constants(mod),
        dtypes=list(dtypes),
    )
