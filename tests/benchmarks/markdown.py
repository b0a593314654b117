"""Reading the Markdown tables the benchmarks print."""
from __future__ import annotations


def cells(line: str) -> list[str]:
    """The cells of one Markdown table row."""
    return [cell.strip() for cell in line.strip("|").split("|")]
