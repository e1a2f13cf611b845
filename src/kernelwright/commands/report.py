"""`kernelwright report DIR`: (re)write DIR/report.html from what the run left on disk."""
from __future__ import annotations

from pathlib import Path

from ..errors import KernelwrightError, UsageError
from ._common import console, print_error


def run(run_dir: Path) -> int:
    from ..report.html import write_report

    try:
        if not (Path(run_dir) / "pipeline.json").exists() and not (Path(run_dir) / "ledger.sqlite").exists():
            raise UsageError(f"{run_dir} is not a run directory (no pipeline.json or ledger.sqlite)",
                             "Pass the --out directory of a `kernelwright optimize` run.")
        path = write_report(Path(run_dir))
    except KernelwrightError as exc:
        return print_error(exc, json_out=False)
    console.print(f"report: {path}", highlight=False)
    return 0
