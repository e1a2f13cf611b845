"""What a user sees while the loop runs: a rich live panel on a terminal, plain lines elsewhere (CI,
logs, pipes), and a summary table at the end."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


class LiveView:
    def __init__(self, console: Console | None, device: str) -> None:
        self.console = console or Console(stderr=True)
        self.device = device
        self.tty = self.console.is_terminal
        self.live: Live | None = None
        self.started = time.monotonic()
        self.session_rows = 0
        self.task = ""
        self.done = 0
        self.cap: int | None = None
        self.best: float | None = None
        self.kept = 0
        self.last = ""

    # ---- lifecycle -----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        # Plain text: no markup (error messages hold brackets), one unwrapped line per event (greppable).
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def start_task(self, name: str, done: int, cap: int | None, budget_s: float, best: float | None, kept: int) -> None:
        self.task, self.done, self.cap, self.best, self.kept, self.last = name, done, cap, best, kept, ""
        cap_text = "no cap" if cap is None else f"{cap} experiments"
        self.note(f"task {name}: budget {budget_s:.0f} s, {cap_text}, {done} done before")
        if self.tty and self.live is None:
            self.live = Live(self._panel(), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def on_row(self, row: dict[str, Any], best: float | None, kept: int) -> None:
        self.done += 1
        self.session_rows += 1
        self.best, self.kept = best, kept
        verdict = row["verdict"] if not row.get("decision") else f"{row['verdict']}/{row['decision']}"
        where = f" at {row['stage']}" if row["verdict"] != "accepted" and row.get("stage") else ""
        speed = f" {_x(row.get('speedup_eager'))}" if row.get("speedup_eager") is not None else ""
        self.last = f"#{row['id']} {row.get('label') or row.get('proposer')}: {verdict}{where}{speed}"
        if self.live is not None:
            self.live.update(self._panel())
        else:
            err = f" ({' '.join(str(row.get('error') or '').split())[:120]})" if row["verdict"] != "accepted" else ""
            self.note(
                f"exp {row['id']} task={self.task} {self._progress()} verdict={verdict}{where}{speed}{err} "
                f"best={self._best()} exp/h={self.rate():.0f}"
            )

    def end_task(self, name: str, reason: str) -> None:
        self.stop()
        self.note(f"task {name}: moved on ({reason})")

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # ---- figures -------------------------------------------------------------------------------
    def rate(self) -> float:
        hours = (time.monotonic() - self.started) / 3600
        return self.session_rows / hours if hours > 0 else 0.0

    def _progress(self) -> str:
        return f"{self.done}/{self.cap}" if self.cap is not None else f"{self.done}"

    def _best(self) -> str:
        if self.device == "cpu":
            return "untimed (kept)" if self.kept else "-"
        return _x(self.best)

    def _panel(self) -> Table:
        t = Table(title=f"kernelwright optimize ({self.device})", show_header=False, expand=False)
        t.add_column(style="bold")
        t.add_column()
        left = "-" if self.cap is None else str(max(0, self.cap - self.done))
        for k, v in (
            ("task", self.task),
            ("experiments", f"{self.done} done, {left} left"),
            ("best speedup", self._best()),
            ("last verdict", self.last or "-"),
            ("experiments/hour", f"{self.rate():.0f}"),
        ):
            t.add_row(k, Text(v))
        return t

    def summary(self, outcomes: dict[str, Any]) -> None:
        self.stop()
        t = Table(title="optimization summary")
        for col in ("task", "experiments", "accepted", "best speedup", "best answer", "stopped because"):
            t.add_column(col)
        for o in outcomes.values():
            best = ("untimed" if o.best_path else "-") if self.device == "cpu" else _x(o.best_speedup)
            where = f"kernels/{o.best_path.name}" if o.best_path else "-"  # inside the run directory
            t.add_row(o.name, str(o.experiments), str(o.accepted), best, Text(where),
                      Text(o.stop_reason.split(":")[0]))
        self.console.print(t)
