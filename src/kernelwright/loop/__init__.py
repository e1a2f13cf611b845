"""The optimization loop: tree search over candidates, keep/revert by the timing judge, move-on
rules as data, a crash-safe ledger (SQLite WAL + results.tsv) and resumable runs.

    run.py     optimize_tasks(): the loop over tasks and rounds; the run directory; resume; Ctrl-C
    search.py  the tree read from ledger rows: which parents to expand, what a proposer is told
    rules.py   move-on rules (budget, max-experiments, plateau, roofline, target, cpu-correct)
    ledger.py  the one writer of ledger.sqlite and its mirror results.tsv
    live.py    the rich live view, plain lines off a terminal, the summary table
"""
