"""Compare an answer's outputs with the references, element by element, in the judge's process."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .tolerances import NATIVE_ERROR_SLACK, SENSITIVITY_SLACK, tolerance, working_tolerance


@dataclass
class Ref64:
    """The float64 reference outputs, and per element how far they move when the inputs and weights
    move by one ulp of their own dtype (None where that could not be measured). work_dtype: the least
    precise floating dtype the native reference computed in (an op's output), None if unknown; its
    tolerance applies where it is looser than the output dtype's (tolerances.py). values are None
    where the task does not run in float64 but work_dtype is known."""

    values: list[torch.Tensor | None]
    sens: list[torch.Tensor | None] | None = None
    work_dtype: torch.dtype | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.values[i]

    def __iter__(self):
        return iter(self.values)

    def to(self, device) -> "Ref64":
        sens = None if self.sens is None else [s.to(device) if s is not None else None for s in self.sens]
        return Ref64([v.to(device) if v is not None else None for v in self.values], sens, self.work_dtype)


@dataclass
class Match:
    ok: bool
    reason: str = ""
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0


def _where(mask: torch.Tensor) -> tuple[int, ...]:
    idx = mask.nonzero()[0].tolist()
    return tuple(idx)


def compare_one(cand: torch.Tensor, native: torch.Tensor, ref64: torch.Tensor | None, label: str,
                sens: torch.Tensor | None = None, work_dtype: torch.dtype | None = None) -> Match:
    """cand: the answer's output (on cpu); native: the task in its own dtype; ref64: float64 run or None;
    sens: |float64 run on one-ulp-perturbed inputs and weights - ref64| (the problem's own conditioning);
    work_dtype: the least precise floating dtype the reference computed in (loosens, never tightens)."""
    if tuple(cand.shape) != tuple(native.shape):
        return Match(False, f"{label}: shape {tuple(cand.shape)} != expected {tuple(native.shape)}")
    if cand.dtype != native.dtype:
        return Match(False, f"{label}: dtype {cand.dtype} != expected {native.dtype}")
    if cand.numel() == 0:
        return Match(True)
    if not (native.is_floating_point() or native.is_complex()):
        exact = cand == native
        if ref64 is not None and ref64.shape == native.shape:
            exact |= cand == ref64.to(cand.dtype)  # near-ties: either reference's choice is right
        if bool(exact.all()):
            return Match(True)
        bad = ~exact
        at = _where(bad)
        return Match(False, f"{label}: {int(bad.sum())} of {cand.numel()} elements differ (exact {cand.dtype} "
                            f"expected); first at {at}: got {cand[at].item()}, expected {native[at].item()}")
    c, n = cand.double(), native.double()
    r = ref64.double() if ref64 is not None and ref64.shape == native.shape else n
    for name, fn in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        fc, fn_ = fn(c), fn(n)
        if not torch.equal(fc, fn_):
            at = _where(fc != fn_)
            return Match(False, f"{label}: {name} positions differ from the reference ({int((fc != fn_).sum())} "
                                f"elements); first at {at}: got {c[at].item()}, expected {n[at].item()}")
    finite = torch.isfinite(n)
    r = torch.where(torch.isfinite(r), r, n)  # float64 may differ only where native is non-finite
    atol, rtol = working_tolerance(native.dtype, work_dtype)
    through = f"{native.dtype} output computed through {work_dtype}" \
        if (atol, rtol) != tolerance(native.dtype) else f"{native.dtype}"
    err = torch.where(finite, (c - r).abs(), torch.zeros_like(c))
    bound = atol + rtol * r.abs() + NATIVE_ERROR_SLACK * (n - r).abs()
    if sens is not None and sens.shape == r.shape:
        bound = bound + SENSITIVITY_SLACK * torch.nan_to_num(sens.double(), nan=0.0, posinf=0.0)
    rel = err / r.abs().clamp_min(1e-30)
    max_abs = float(err.max())
    max_rel = float(torch.where(finite, rel, torch.zeros_like(rel)).max())
    bad = finite & (err > bound)
    if bool(bad.any()):
        at = _where(bad)
        return Match(
            False,
            f"{label}: {int(bad.sum())} of {cand.numel()} elements outside tolerance ({through}: atol {atol:g}, "
            f"rtol {rtol:g}); max abs err {max_abs:.3g}; first at {at}: got {c[at].item():.8g}, expected "
            f"{r[at].item():.8g}",
            max_abs, max_rel,
        )
    return Match(True, "", max_abs, max_rel)


def compare_outputs(cand: list[torch.Tensor], native: list[torch.Tensor], ref64: "Ref64 | list | None") -> Match:
    if len(cand) != len(native):
        return Match(False, f"the answer returned {len(cand)} tensor(s), the reference {len(native)}")
    worst = Match(True)
    for i, (c, n) in enumerate(zip(cand, native)):
        r = ref64[i] if ref64 is not None else None
        sens = ref64.sens[i] if isinstance(ref64, Ref64) and ref64.sens is not None else None
        work = ref64.work_dtype if isinstance(ref64, Ref64) else None
        m = compare_one(c, n, r, f"output {i}" if len(native) > 1 else "output", sens, work)
        if not m.ok:
            return m
        worst.max_abs_err = max(worst.max_abs_err, m.max_abs_err)
        worst.max_rel_err = max(worst.max_rel_err, m.max_rel_err)
    return worst
