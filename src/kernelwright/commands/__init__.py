"""One module per CLI command: each exposes run(...) -> exit code. cli.py stays a thin shell."""
