"""kernelwright: writes, verifies and tunes GPU kernels for PyTorch models.

Nothing here touches CUDA at import time; heavy modules load lazily.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["optimize", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import kernelwright` stays cheap and CPU-safe.
    if name == "optimize":
        from .api import optimize

        return optimize
    raise AttributeError(name)
