"""Rich rendering for human output (tables); JSON output never goes through here."""

from __future__ import annotations

import sys
from typing import Final

from rich.console import Console
from rich.table import Table

from tiermem._instrumentation import Stats

__all__ = ["console", "ms", "stats_table"]


PIPE_WIDTH: Final = 400
"""Columns for output that is not a terminal: tables are never folded to 80 columns in a pipe."""


def console() -> Console:
    """A console on the current stdout: the terminal's width, or :data:`PIPE_WIDTH` when piped."""
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def stats_table(stats: Stats) -> Table:
    """Per tier: hit rate, request counts, p50/p95/p99 of reads and writes, errors, circuit state."""
    table = Table(title="tiermem stats (read latency in ms)", title_justify="left")
    for col in ("tier", "hit%", "hits", "miss", "writes", "errs", "p50", "p95", "p99", "circuit"):
        table.add_column(col, justify="left" if col in ("tier", "circuit") else "right", no_wrap=True)
    for name in ("hot", "warm", "cold"):
        tier = stats.tiers.get(name)
        if tier is None:
            continue
        rate = tier["hit_rate"]
        reads = tier["latency"].get("get") or tier["latency"].get("mget") or {}
        table.add_row(
            name,
            "-" if rate is None else f"{rate:.0%}",
            str(tier["hits"]),
            str(tier["misses"]),
            str(tier["writes"]),
            str(tier["errors"]),
            ms(reads.get("p50_ms")),
            ms(reads.get("p95_ms")),
            ms(reads.get("p99_ms")),
            str(tier["circuit"]),
        )
    saved = stats.bytes_in - stats.bytes_out
    table.caption = (
        f"promotions {stats.promotions} · fall-throughs {stats.fallthroughs} · "
        f"compression {stats.bytes_in:,} -> {stats.bytes_out:,} bytes (saved {saved:,}) · "
        f"dirty keys {stats.dirty_keys}"
    )
    table.caption_justify = "left"
    return table
