"""What the command-line tools print besides their results: progress lines and markdown tables
(the benches and the Auto calibration share them)."""
from __future__ import annotations

import sys


def log(msg: str) -> None:
    """A progress line, at once, on stderr: a tool's stdout is its report."""
    print(msg, file=sys.stderr, flush=True)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
