"""The run's append-only ledger: DIR/ledger.sqlite (WAL) and its mirror DIR/results.tsv.

One row per experiment, written by `Ledger.record` (the only writer) the moment the loop has
decided on it: the SQLite insert commits first (the ledger is the truth), then the same row is
appended to results.tsv and fsynced. A SIGKILL between the two leaves the TSV one row short;
`Ledger.open` rebuilds the TSV from the ledger whenever the two disagree, so after any restart
they match row for row. Ids come from SQLite (INTEGER PRIMARY KEY AUTOINCREMENT) and are never
reused. Candidate sources live beside it, by hash: DIR/sources/<hash>.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

# (column, SQLite type, what it holds). The order is the TSV's column order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "INTEGER", "experiment id, global to the run, never reused"),
    ("task", "TEXT", "task name"),
    ("parent", "INTEGER", "id of the node expanded to get this candidate; empty for the root"),
    ("proposer", "TEXT", "proposer name"),
    ("label", "TEXT", "proposer's short name for the candidate"),
    ("source_hash", "TEXT", "sha256[:16] of the answer text; the file is sources/<hash>.py"),
    ("verdict", "TEXT", "accepted | rejected | error (the proposer failed: no candidate to judge)"),
    ("decision", "TEXT", "kept | reverted | flagged | invalid | time-error | untimed (cpu) | '' (not accepted)"),
    ("stage", "TEXT", "last correctness stage reached (the failing one when rejected)"),
    ("device", "TEXT", "cpu or cuda"),
    ("timing_mode", "TEXT", "how the answer was timed (events, cuda-graph ...)"),
    ("median_ms", "REAL", "answer's median time"),
    ("p20_ms", "REAL", "spread: 20th percentile"),
    ("p80_ms", "REAL", "spread: 80th percentile"),
    ("min_ms", "REAL", ""),
    ("max_ms", "REAL", ""),
    ("speedup_eager", "REAL", "eager median / answer median"),
    ("speedup_compile", "REAL", "torch.compile (default) median / answer median"),
    ("speedup_max_autotune", "REAL", "torch.compile max-autotune median / answer median"),
    ("speedup_liger", "REAL", "Liger-Kernel median / answer median, where installed"),
    ("gbps", "REAL", "bytes that must move / median time"),
    ("tflops", "REAL", "FLOPs / median time"),
    ("pct_ceiling", "REAL", "fraction of the measured ceiling, 0..1"),
    ("bound", "TEXT", "memory | compute"),
    ("keep_gain", "REAL", "side-by-side gain over the incumbent (keep/revert)"),
    ("keep_noise", "REAL", "A/A noise the gain had to beat"),
    ("check_s", "REAL", "seconds the correctness check took"),
    ("time_s", "REAL", "seconds the timing took"),
    ("wall_s", "REAL", "seconds from proposal to decision"),
    ("task_elapsed_s", "REAL", "wall time spent on this task so far, over all sessions"),
    ("tokens", "INTEGER", "LLM tokens spent on this candidate, when the proposer says"),
    ("cost", "REAL", "LLM cost in USD, when the proposer says"),
    ("error", "TEXT", "rejection reason or proposer error"),
    ("timing_json", "TEXT", "the whole timing report (baselines with spreads, ceiling source ...)"),
    ("meta_json", "TEXT", "the candidate's meta (family, config ...)"),
    ("finished_at", "TEXT", "UTC time the row was written"),
)
NAMES = tuple(c[0] for c in COLUMNS)
_TSV_TEXT_LIMIT = 300  # long error texts are cut in the TSV (the ledger keeps them whole)


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _tsv_cell(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if name.endswith("_json"):
        return text.replace("\t", " ").replace("\n", " ")
    text = " ".join(text.split())  # tabs and newlines would break the row
    return text if len(text) <= _TSV_TEXT_LIMIT else text[: _TSV_TEXT_LIMIT - 3] + "..."


def tsv_line(row: dict[str, Any]) -> str:
    return "\t".join(_tsv_cell(row.get(n), n) for n in NAMES) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Ledger:
    """DIR/ledger.sqlite + DIR/results.tsv + DIR/sources/. Single writer: the loop's main thread."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.db_path = self.run_dir / "ledger.sqlite"
        self.tsv_path = self.run_dir / "results.tsv"
        self.sources = self.run_dir / "sources"

    @classmethod
    def open(cls, run_dir: Path) -> "Ledger":
        led = cls(run_dir)
        led.sources.mkdir(parents=True, exist_ok=True)
        led.db = sqlite3.connect(led.db_path, isolation_level=None)  # explicit BEGIN/COMMIT below
        led.db.row_factory = sqlite3.Row
        led.db.execute("PRAGMA journal_mode=WAL")
        led.db.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut too
        cols = ", ".join(
            f"{n} {t} PRIMARY KEY AUTOINCREMENT" if n == "id" else f"{n} {t}" for n, t, _ in COLUMNS
        )
        led.db.execute(f"CREATE TABLE IF NOT EXISTS experiments ({cols})")
        have = {r[1] for r in led.db.execute("PRAGMA table_info(experiments)")}
        for n, t, _ in COLUMNS:  # a ledger from an older version gains new columns, never loses any
            if n not in have:
                led.db.execute(f"ALTER TABLE experiments ADD COLUMN {n} {t}")
        led.repair_tsv()
        return led

    def close(self) -> None:
        self.db.close()

    # ---- writing: the one code path that records an experiment -------------------------------
    def save_source(self, source: str) -> tuple[str, Path]:
        h = source_hash(source)
        path = self.sources / f"{h}.py"
        if not path.exists():
            _atomic_write(path, source)
        return h, path

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        """Commit one experiment to SQLite, then mirror it to results.tsv; returns the stored row."""
        unknown = set(row) - set(NAMES)
        if unknown:
            raise KeyError(f"not ledger columns: {sorted(unknown)}")
        row = {k: v for k, v in row.items() if k != "id"}
        names = list(row)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(
                f"INSERT INTO experiments ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
            rid = int(cur.lastrowid)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        # Mirror the row as SQLite stored it (its types, its id), so a rebuilt TSV is byte-identical.
        full = dict(self.db.execute("SELECT * FROM experiments WHERE id = ?", (rid,)).fetchone())
        if not self.tsv_path.exists():
            _atomic_write(self.tsv_path, self._header())
        with open(self.tsv_path, "a") as f:
            f.write(tsv_line(full))
            f.flush()
            os.fsync(f.fileno())
        return full

    # ---- reading -----------------------------------------------------------------------------
    def rows(self, task: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM experiments" + (" WHERE task = ?" if task is not None else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(q, () if task is None else (task,))]

    def count(self, task: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM experiments" + (" WHERE task = ?" if task is not None else "")
        return int(self.db.execute(q, () if task is None else (task,)).fetchone()[0])

    def source(self, h: str | None) -> str:
        if not h:
            return ""
        p = self.sources / f"{h}.py"
        return p.read_text() if p.exists() else ""

    # ---- the mirror --------------------------------------------------------------------------
    def _header(self) -> str:
        return "\t".join(NAMES) + "\n"

    def expected_tsv(self) -> str:
        return self._header() + "".join(tsv_line(r) for r in self.rows())

    def repair_tsv(self) -> bool:
        """Rewrite results.tsv from the ledger when they disagree; True when it had to."""
        want = self.expected_tsv()
        try:
            have = self.tsv_path.read_text()
        except FileNotFoundError:
            have = None
        if have == want:
            return False
        _atomic_write(self.tsv_path, want)
        return have is not None


def read_tsv(path: Path) -> list[dict[str, str]]:
    """results.tsv as a list of {column: text}; for tests and the report."""
    lines = Path(path).read_text().splitlines()
    if not lines:
        return []
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, default=str, sort_keys=True)
