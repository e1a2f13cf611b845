"""Hardware ceilings: measured on the GPU itself, cached per GPU model; datasheet only as a labelled fallback.

copy_gbps: a large device-to-device copy, counting bytes read plus bytes written (what a
memory-bound kernel that reads its inputs once and writes its outputs once can hope for).
matmul_tflops: a large matmul through torch, per dtype (fp32 with TF32 off: CUDA cores).

The cache is ~/.cache/kernelwright/ceilings.json (XDG_CACHE_HOME respected), keyed by the name
torch gives the GPU. Measuring runs trusted code only (no answer), in the judge's process.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

MEASURED = "measured"
FALLBACK = "datasheet (fallback)"
UNKNOWN = "unknown GPU: no ceiling"

# Datasheet figures (dense, no sparsity), matched by substring of the torch device name, first
# match wins (so "H100 PCIe" before "H100"). GB/s is the HBM bandwidth; TFLOP/s per dtype name.
# Only ever used when a measurement is impossible, and always labelled FALLBACK.
DATASHEET: list[tuple[str, float, dict[str, float]]] = [
    ("H200", 4800.0, {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}),
    ("H100 PCIe", 2000.0, {"bfloat16": 756.0, "float16": 756.0, "float32": 51.0}),
    ("H100 NVL", 3900.0, {"bfloat16": 835.0, "float16": 835.0, "float32": 60.0}),
    ("H100", 3352.0, {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}),
    ("GH200", 4000.0, {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}),
    ("B200", 8000.0, {"bfloat16": 2250.0, "float16": 2250.0, "float32": 80.0}),
    ("A100-SXM4-80GB", 2039.0, {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}),
    ("A100 80GB PCIe", 1935.0, {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}),
    ("A100", 1555.0, {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}),
    ("L40S", 864.0, {"bfloat16": 362.0, "float16": 362.0, "float32": 91.6}),
    ("L4", 300.0, {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3}),
    ("A10G", 600.0, {"bfloat16": 70.0, "float16": 70.0, "float32": 31.2}),
    ("RTX 4090", 1008.0, {"bfloat16": 165.0, "float16": 165.0, "float32": 82.6}),
]


@dataclass
class Ceilings:
    device_name: str
    copy_gbps: float | None  # bytes read + written per second / 1e9
    matmul_tflops: dict[str, float] = field(default_factory=dict)  # dtype name -> TFLOP/s
    source: str = MEASURED  # MEASURED, FALLBACK or UNKNOWN
    measured_at: str = ""
    torch_version: str = ""

    def matmul_for(self, dtype_name: str) -> float | None:
        """The matmul rate for a dtype; dtypes never measured (int, fp64 ...) have none."""
        return self.matmul_tflops.get(dtype_name)


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kernelwright" / "ceilings.json"


def datasheet(device_name: str) -> Ceilings:
    """The labelled fallback for a GPU model; UNKNOWN (no figures) when the model is not listed."""
    for key, gbps, tflops in DATASHEET:
        if key.lower() in device_name.lower():
            return Ceilings(device_name, gbps, dict(tflops), FALLBACK)
    return Ceilings(device_name, None, {}, UNKNOWN)


def load_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_cache(path: Path, ceil: Ceilings) -> None:
    """Add one measured entry; an unwritable cache is not an error (the figures are still used)."""
    data = load_cache(path)
    data[ceil.device_name] = asdict(ceil)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass


def _from_entry(device_name: str, entry: dict) -> Ceilings | None:
    try:
        c = Ceilings(
            device_name=device_name,
            copy_gbps=float(entry["copy_gbps"]),
            matmul_tflops={str(k): float(v) for k, v in dict(entry.get("matmul_tflops", {})).items()},
            source=MEASURED,
            measured_at=str(entry.get("measured_at", "")),
            torch_version=str(entry.get("torch_version", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return c if c.copy_gbps and c.copy_gbps > 0 else None


def get_ceilings(device_name: str, measure: Callable[[], Ceilings] | None, path: Path | None = None,
                 refresh: bool = False) -> Ceilings:
    """Cached measurement for this GPU model, else measure (and cache), else the datasheet fallback.

    measure: None or a callable that raises when it cannot measure; its failure is not fatal.
    """
    path = path or default_cache_path()
    if not refresh:
        entry = load_cache(path).get(device_name)
        if isinstance(entry, dict):
            cached = _from_entry(device_name, entry)
            if cached is not None:
                return cached
    if measure is not None:
        try:
            ceil = measure()
        except Exception:  # e.g. out of memory on a busy GPU: fall back, labelled
            ceil = None
        if ceil is not None and ceil.copy_gbps and ceil.copy_gbps > 0:
            ceil.source = MEASURED
            save_cache(path, ceil)
            return ceil
    return datasheet(device_name)


# -- measurement (GPU; imports torch only when called) -------------------------------------------

COPY_BYTES = 1 << 30  # 1 GiB source: far beyond L2 on any GPU
MATMUL_SIZES = {"bfloat16": 8192, "float16": 8192, "float32": 4096}


def _median_ms(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def measure(device: str = "cuda") -> Ceilings:
    """Measure copy bandwidth and matmul rates on the current GPU (about 2 s on an H100)."""
    import torch

    name = torch.cuda.get_device_name(device)
    src = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), reps=20)
    copy_gbps = 2 * COPY_BYTES / (ms * 1e-3) / 1e9  # read once + written once
    del src, dst
    tflops: dict[str, float] = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means true fp32 (threat A7)
    try:
        for dname, n in MATMUL_SIZES.items():
            dtype = getattr(torch, dname)
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            ms = _median_ms(lambda: a @ b, reps=10)
            tflops[dname] = 2 * n**3 / (ms * 1e-3) / 1e12
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.cuda.empty_cache()
    return Ceilings(
        device_name=name,
        copy_gbps=copy_gbps,
        matmul_tflops=tflops,
        source=MEASURED,
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
    )
