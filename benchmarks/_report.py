"""The results: a rich table for people, a JSON document for CI artifacts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from benchmarks._codec import CompressionResult, ThresholdResult
from benchmarks._harness import Measured, Row, Unit, quantiles
from benchmarks._profile import ProfileResult

__all__ = ["SCHEMA", "Report", "format_bytes", "format_seconds", "format_value", "render"]

SCHEMA = "tiermem-bench/1"


@dataclass(slots=True)
class Report:
    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    compression: list[CompressionResult] = field(default_factory=list)
    threshold: list[ThresholdResult] = field(default_factory=list)
    profile: ProfileResult | None = None

    def as_dict(self) -> dict[str, Any]:
        summary = dict.fromkeys(("pass", "fail", "info", "n/a"), 0)
        for row in self.rows:
            summary[row.status] += 1
        return {
            "schema": SCHEMA,
            **self.meta,
            "summary": summary,
            "rows": [row.as_dict() for row in self.rows],
            "compression": [c.as_dict() for c in self.compression],
            "compression_threshold": [t.as_dict() for t in self.threshold],
            "profile": self.profile.as_dict() if self.profile else None,
        }


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    for unit, scale in (("ms", 1e3), ("us", 1e6)):
        value = seconds * scale
        if value >= 1:
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def format_bytes(size: float) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MiB"
    if size >= 1024:
        return f"{size / 1024:.3g} KiB"
    return f"{size:.0f} B"


def format_value(value: float, unit: Unit) -> str:
    """A median for people: a time, or a size for rows measured in bytes per item."""
    return format_seconds(value) if unit == "s" else f"{format_bytes(value)}/item"


def _value_cell(measured: Measured | None) -> str:
    if measured is None:
        return "-"
    p25, p50, p75 = quantiles(measured.samples)
    spread = (p75 - p25) / p50 * 50 if p50 > 0 else 0.0  # half the IQR, in % of the median
    return f"{format_value(p50, measured.unit)} ±{spread:.0f}%"


def _ratio_cell(row: Row) -> str:
    ratios = row.ratios
    if not ratios:
        return "-"
    p25, p50, p75 = quantiles(ratios)
    if row.target is not None and row.target.kind == "min_speedup":
        return f"{1 / p50:.0f}x faster ({1 / p75:.0f}-{1 / p25:.0f})"
    if not math.isfinite(p50):
        return "inf"
    return f"{p50:.2f}x ({p25:.2f}-{p75:.2f})"


def _status_cell(row: Row) -> Text:
    status = row.status
    if status == "n/a":
        return Text(f"n/a: {row.na_reason}", style="dim")
    if status == "info":
        return Text("info", style="dim")
    mark = status.upper() if row.confident else f"{status}?"
    return Text(mark, style="bold green" if status == "pass" else "bold red")


def results_table(report: Report) -> Table:
    meta = report.meta
    title = (
        f"tiermem benchmark: {meta['services']['mode']} services, {meta['rounds']} round(s), "
        "median per op (B rows: per stored item) ± half IQR; ratio = median of paired per-round ratios (IQR)"
    )
    table = Table(title=title, title_justify="left", show_lines=False)
    for name, justify in (
        ("scenario", "left"),
        ("tiermem", "right"),
        ("baseline", "left"),
        ("baseline value", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("result", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    group = None
    for row in report.rows:
        if row.group != group:
            if group is not None:
                table.add_section()
            group = row.group
        table.add_row(
            row.label,
            _value_cell(row.subject),
            row.baseline_name or "-",
            _value_cell(row.baseline),
            _ratio_cell(row),
            row.target.text if row.target else "-",
            _status_cell(row),
        )
    return table


def compression_tables(report: Report) -> list[Table]:
    tables = []
    if report.compression:
        table = Table(title="compression on agent data (median)", title_justify="left")
        for name in ("corpus", "size", "codec", "ratio", "compress MB/s", "decompress MB/s", "us/value"):
            table.add_column(name, justify="left" if name in ("corpus", "codec") else "right")
        for c in report.compression:
            table.add_row(
                c.corpus,
                f"{c.size / 1024:.0f} KiB",
                f"{c.algorithm}-{c.level}",
                f"{c.ratio:.2f}",
                f"{c.compress_mb_s:.0f}",
                f"{c.decompress_mb_s:.0f}",
                f"{c.compress_us:.0f}",
            )
        tables.append(table)
    if report.threshold:
        table = Table(title="gzip-1 by value size (transcript JSON)", title_justify="left")
        for name in ("size", "stored", "saved", "ratio", "compress us", "decompress us"):
            table.add_column(name, justify="right")
        for t in report.threshold:
            table.add_row(
                f"{t.size}",
                f"{t.compressed}",
                f"{t.size - t.compressed}",
                f"{t.size / t.compressed:.2f}",
                f"{t.compress_us:.1f}",
                f"{t.decompress_us:.1f}",
            )
        tables.append(table)
    return tables


def profile_tables(profile: ProfileResult) -> list[Any]:
    layers = Table(title="hot-hit get by layer (median us per get)", title_justify="left")
    layers.add_column("layer")
    layers.add_column("us/get", justify="right")
    layers.add_column("added", justify="right")
    previous = None
    for name, us in profile.layers:
        layers.add_row(name, f"{us:.1f}", "-" if previous is None else f"+{us - previous:.1f}")
        previous = us
    pieces = Table(title="CPU cost of each piece (us per call, in isolation)", title_justify="left")
    pieces.add_column("piece")
    pieces.add_column("us", justify="right")
    for name, us in profile.pieces:
        pieces.add_row(name, f"{us:.2f}")
    out: list[Any] = [layers, pieces]
    for title, rows in profile.embedded.items():
        table = Table(title=f"embedded {title}, by layer (median us per call)", title_justify="left")
        table.add_column("layer")
        table.add_column("us/call", justify="right")
        table.add_column("added", justify="right")
        previous = None
        for name, us in rows:
            table.add_row(name, f"{us:.1f}", "-" if previous is None else f"{us - previous:+.1f}")
            previous = us
        out.append(table)
    for name, text in profile.profiles.items():
        out.append(Text(f"\n-- profile: {name}", style="bold"))
        out.append(Text(text))
    return out


def render(report: Report, console: Console) -> None:
    parts: list[Any] = [results_table(report)] if report.rows else []
    parts += compression_tables(report)
    if report.profile is not None:
        parts += profile_tables(report.profile)
    console.print(Group(*parts))
    summary = report.as_dict()["summary"]
    console.print(
        f"targets: {summary['pass']} pass, {summary['fail']} fail; "
        f"{summary['info']} informational, {summary['n/a']} not measured"
    )
