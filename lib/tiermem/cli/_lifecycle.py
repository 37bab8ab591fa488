"""``tiermem forget | usage | maintain``: erasure, usage reports and retention from the command line.

Each command builds the client from settings (plus the global options), like the data commands, and
maps errors to the typed exit codes (:class:`tiermem.cli._common.Exit`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from tiermem._builder import MemoryBuilder
from tiermem._protocols import Tier
from tiermem.cli._common import Options, emit, output_options, progress, run_async
from tiermem.lifecycle import DAY, ForgetReport, Retention, RetentionPolicy, UsageReport

__all__ = ["forget", "maintain", "usage"]

_BAR_WIDTH = 30


@click.command()
@output_options
@click.option("--tenant", "tenant", required=True, metavar="NAME", help="The tenant to erase.")
@click.option("--namespace", "namespace", metavar="NAME", help="Erase only this namespace of the tenant.")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; delete nothing.")
@click.option("--yes", is_flag=True, help="Confirm the erasure (required unless --dry-run).")
@click.pass_obj
@run_async
async def forget(options: Options, tenant: str, namespace: str | None, dry_run: bool, yes: bool) -> None:
    """Erase a tenant (or one namespace) from every tier: items, collections, sessions, large values,
    hot copies and markers. Safe to rerun: a rerun finishes an interrupted erasure."""
    if not yes and not dry_run:
        raise click.UsageError("refusing to erase without --yes (or use --dry-run to count first)")
    async with MemoryBuilder.from_settings(options.settings()).build() as memory:
        with progress(options, f"{'counting' if dry_run else 'erasing'} tenant {tenant}..."):
            report = await memory.forget(tenant=tenant, namespace=namespace, dry_run=dry_run)
    emit(options, report.as_dict(), lambda: _print_forget(report))


def _print_forget(report: ForgetReport) -> None:
    scope = report.tenant if report.namespace is None else f"{report.tenant}/{report.namespace}"
    verb = "would erase" if report.dry_run else "erased"
    per_tier = ", ".join(f"{tier.value} {n}" for tier, n in report.deleted.items())
    click.echo(f"{verb} {report.total} object(s) of {scope}: {per_tier}")


@click.command()
@output_options
@click.option("--tenant", "tenant", metavar="NAME", help="Report one tenant (default: every tenant).")
@click.option("--namespace", "namespace", metavar="NAME", help="Report one namespace.")
@click.pass_obj
@run_async
async def usage(options: Options, tenant: str | None, namespace: str | None) -> None:
    """Items and bytes per tenant, namespace and tier, collections, oldest and newest write."""
    async with MemoryBuilder.from_settings(options.settings()).build() as memory:
        with progress(options, "listing every tier..."):
            report = await memory.usage(tenant=tenant, namespace=namespace)
    emit(options, report.as_dict(), lambda: _print_usage(report))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def usage_table(report: UsageReport) -> Any:
    """The usage report as a rich table, with a bar of each scope's stored bytes."""
    from rich.table import Table

    table = Table(title="tiermem usage", title_justify="left")
    for col in (
        "tenant",
        "namespace",
        "hot",
        "warm",
        "cold",
        "colls",
        "oldest write",
        "newest write",
        "stored",
    ):
        table.add_column(col, justify="left" if col in ("tenant", "namespace", "stored") else "right")
    biggest = max((s.stored_bytes for s in report.scopes), default=0) or 1
    for s in report.scopes:
        cells = []
        for tier in (Tier.HOT, Tier.WARM, Tier.COLD):
            used = s.tiers.get(tier)
            cells.append("-" if used is None else f"{used.items:,} / {_size(used.bytes)}")
        bar = "█" * max(1 if s.stored_bytes else 0, round(_BAR_WIDTH * s.stored_bytes / biggest))
        table.add_row(
            s.tenant,
            s.namespace,
            *cells,
            str(s.collections),
            _when(s.oldest_write),
            _when(s.newest_write),
            f"{bar} {_size(s.stored_bytes)}",
        )
    tenants = sorted({s.tenant for s in report.scopes})
    totals = [
        f"{t}: {report.tenant_totals(t)[0]:,} items, {_size(report.tenant_totals(t)[1])}" for t in tenants
    ]
    table.caption = "items / bytes per tier; stored = warm + cold · " + " · ".join(totals)
    table.caption_justify = "left"
    return table


def _print_usage(report: UsageReport) -> None:
    from tiermem.cli._render import console

    if not report.scopes:
        click.echo("no data")
        return
    console().print(usage_table(report))


@click.command()
@output_options
@click.option("--archive-after-days", type=float, help="Move values idle this long to cold (else settings).")
@click.option("--expire-after-days", type=float, help="Delete values idle this long (else settings).")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.pass_obj
@run_async
async def maintain(
    options: Options,
    archive_after_days: float | None,
    expire_after_days: float | None,
    dry_run: bool,
) -> None:
    """Apply retention (archive idle values to cold, expire old ones), sweep expired cold objects and
    reconcile quota counters. Idempotent; safe while the service writes. Run daily by the infra job."""
    retention = None
    if archive_after_days is not None or expire_after_days is not None:
        retention = RetentionPolicy(
            Retention(
                archive_after=None if archive_after_days is None else archive_after_days * DAY,
                expire_after=None if expire_after_days is None else expire_after_days * DAY,
            )
        )
    async with MemoryBuilder.from_settings(options.settings()).build() as memory:
        with progress(options, "applying retention..."):
            report = await memory.maintain(retention=retention, dry_run=dry_run)
    data = report.as_dict()
    emit(
        options,
        data,
        lambda: click.echo(
            f"{'would archive' if dry_run else 'archived'} {report.archived} "
            f"({_size(report.archived_bytes)}), "
            f"{'would expire' if dry_run else 'expired'} {report.expired} ({_size(report.expired_bytes)}), "
            f"skipped {report.skipped} changed meanwhile, swept {report.swept} expired cold object(s); "
            f"scanned {report.scanned}"
        ),
    )
