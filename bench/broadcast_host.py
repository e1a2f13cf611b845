"""Host cost of the launchers' shape broadcast: torch.broadcast_shapes against the pasted
_kw_broadcast_shapes helper (propose/search/expr.py), per call, on this machine's CPU (no GPU
involved: this is the Python a launcher runs on every forward).

    python bench/broadcast_host.py
"""
from __future__ import annotations

import platform
import sys
import timeit
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    import torch

    from kernelwright.propose.search.expr import HELPERS

    ns = {"torch": torch}
    exec(HELPERS["_kw_broadcast_shapes"], ns)
    helper = ns["_kw_broadcast_shapes"]
    print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')}; cpu {platform.processor() or platform.machine()}; "
          f"python {platform.python_version()}; torch {torch.__version__}; command: python bench/broadcast_host.py")
    print(f"{'shapes':28s} {'torch.broadcast_shapes us':>26s} {'_kw_broadcast_shapes us':>24s}")
    for a, b in (((2, 8, 16), (16,)), ((4, 2048, 2048), (2048,)), ((4, 16, 2048, 128), (2048, 128))):
        sa, sb = torch.Size(a), torch.Size(b)
        row = []
        for fn in (lambda: torch.broadcast_shapes(sa, sb), lambda: helper(sa, sb)):
            n = 20000
            row.append(min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6)
        print(f"{str(a) + ' x ' + str(b):28s} {row[0]:26.2f} {row[1]:24.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
