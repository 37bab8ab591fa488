"""The ``tiermem`` command line: demo, data commands, operations (init, sweep, doctor, stats, bench, serve).

Human tables by default, ``--json`` for scripts, typed exit codes (see :class:`Exit`), and
errors as one line unless ``--debug``. Tested in-process with click's ``CliRunner``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

try:
    import click
except ImportError as exc:  # pragma: no cover - the console script needs the extra
    raise ImportError("the tiermem CLI needs click and rich: pip install 'tiermem[cli]'") from exc

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._protocols import Tier
from tiermem.cli._common import (
    Exit,
    Options,
    emit,
    log_to_stderr,
    output_options,
    progress,
    run_async,
    waiting,
)
from tiermem.cli._render import console, stats_table

__all__ = ["cli", "main"]


def _client(options: Options, **extra: Any) -> MemoryClient:
    return MemoryBuilder.from_settings(options.settings(**extra)).build()


def _parse_value(raw: str, as_json: bool) -> Any:
    if not as_json:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from exc


_WAITING: Final = "waiting for the tiers (a slow endpoint gives up at its deadline)..."


class _LazyGroup(click.Group):
    """Subcommands whose modules load only when used (``serve`` needs the service extra)."""

    _lazy: Final = MappingProxyType(
        {
            "serve": "tiermem.cli._serve:serve",
            "bench": "tiermem.cli._bench:bench",
            "coll": "tiermem.cli._coll:coll",
            "forget": "tiermem.cli._lifecycle:forget",
            "usage": "tiermem.cli._lifecycle:usage",
            "maintain": "tiermem.cli._lifecycle:maintain",
        }
    )

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self._lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tiermem", prog_name="tiermem")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read settings from this file instead of ./.env (the environment still wins).",
)
@click.option(
    "--redis", "redis_url", metavar="URL", help="Redis URL (else TIERMEM_REDIS_URL, else in-process)."
)
@click.option("--redis-cluster", is_flag=True, default=None, help="Use the Redis Cluster protocol.")
@click.option("--cosmos", "cosmos_endpoint", metavar="URL", help="Cosmos DB endpoint (else SQLite).")
@click.option("--cosmos-key", metavar="KEY", help="Cosmos key: local emulators only.")
@click.option("--cosmos-database", metavar="NAME")
@click.option("--cosmos-container", metavar="NAME")
@click.option("--blob", "blob_account_url", metavar="URL", help="Blob account URL (else local files).")
@click.option("--blob-connection-string", metavar="CS", help="Azurite connection string (local only).")
@click.option("--blob-container", metavar="NAME")
@click.option("--local-dir", type=click.Path(path_type=Path), help="Directory for the embedded tiers.")
@click.option("--tenant", metavar="NAME", help="Tenant scope (default: 'default').")
@click.option("--namespace", "-n", metavar="NAME", help="Namespace scope (default: 'default').")
@click.pass_context
def cli(
    ctx: click.Context, /, json_output: bool, debug: bool, env_file: Path | None, **overrides: Any
) -> None:
    """tiermem: hot (Redis) / warm (Cosmos DB) / cold (Blob) memory for agents, embedded by default.

    Settings come from TIERMEM_* environment variables and ./.env (docs/configuration.md); the
    options below override them. Exit codes: docs/cli.md.
    """
    if overrides.get("redis_cluster") is False:
        overrides["redis_cluster"] = None
    ctx.obj = Options(json_output=json_output, debug=debug, overrides=overrides, env_file=env_file)
    if ctx.invoked_subcommand != "serve":  # serve logs through uvicorn's handlers
        log_to_stderr(ctx)


@cli.command()
@output_options
@click.argument("key")
@click.pass_obj
@run_async
async def get(options: Options, key: str) -> None:
    """Print the value of KEY (exit 1 if it is missing)."""
    async with _client(options) as memory, waiting(options, _WAITING):
        entry = await memory.get_entry(key)
    if entry is None:
        emit(options, {"key": key, "found": False}, lambda: click.echo(f"(missing) {key}", err=True))
        sys.exit(int(Exit.NOT_FOUND))
    value = entry.value
    emit(
        options,
        {"key": key, "found": True, "value": value, "tier": entry.tier.value},
        lambda: click.echo(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)),
    )


@cli.command(name="set")
@output_options
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=float, help="Seconds until the value expires.")
@click.option("--tier", type=click.Choice([t.value for t in Tier]), help="Pin to one tier.")
@click.option("--raw", is_flag=True, help="Store VALUE as a string instead of parsing it as JSON.")
@click.pass_obj
@run_async
async def set_(
    options: Options, key: str, value: str, ttl: float | None, tier: str | None, raw: bool
) -> None:
    """Store VALUE (JSON unless --raw) under KEY; VALUE '-' reads it from stdin (bytes kept as read)."""
    if value == "-":
        value = sys.stdin.read()
    parsed = _parse_value(value, not raw)
    async with _client(options) as memory, waiting(options, _WAITING):
        etag = await memory.set(key, parsed, ttl=ttl, tier=Tier(tier) if tier else None)
    emit(options, {"key": key, "stored": True, "etag": etag}, lambda: click.echo(f"stored {key}"))


@cli.command(name="del")
@output_options
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
@run_async
async def delete(options: Options, keys: tuple[str, ...]) -> None:
    """Delete KEYS from every tier (missing keys are fine); reports how many existed."""
    existed: list[str] = []
    async with _client(options) as memory, waiting(options, _WAITING):
        for key in keys:
            # Checked just before the delete: a concurrent writer can change it in between.
            if await memory.exists(key):
                existed.append(key)
            await memory.delete(key)
    missing = len(keys) - len(existed)
    emit(
        options,
        {"deleted": list(keys), "existed": existed, "count": len(existed)},
        lambda: click.echo(
            f"deleted {len(existed)} key(s)" + (f" ({missing} did not exist)" if missing else "")
        ),
    )


@cli.command()
@output_options
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
@run_async
async def mget(options: Options, keys: tuple[str, ...]) -> None:
    """Print many values (one round trip per tier)."""
    async with _client(options) as memory, waiting(options, _WAITING):
        values = await memory.mget(list(keys))

    def human() -> None:
        for key, value in values.items():
            shown = "(missing)" if value is None else json.dumps(value, ensure_ascii=False, default=str)
            click.echo(f"{key}\t{shown}")

    emit(options, values, human)


@cli.command()
@output_options
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=JSON...")
@click.option("--ttl", type=float)
@click.option("--raw", is_flag=True, help="Values are strings, not JSON.")
@click.pass_obj
@run_async
async def mset(options: Options, pairs: tuple[str, ...], ttl: float | None, raw: bool) -> None:
    """Store many KEY=VALUE pairs in one batch (validated before anything is written)."""
    items: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        items[key] = _parse_value(value, not raw)
    async with _client(options) as memory, waiting(options, _WAITING):
        await memory.mset(items, ttl=ttl)
    emit(options, {"stored": list(items)}, lambda: click.echo(f"stored {len(items)} key(s)"))


@cli.command()
@output_options
@click.pass_obj
@run_async
async def init(options: Options) -> None:
    """Create what each configured tier needs (Cosmos database/container, Blob container). Idempotent."""
    async with _client(options) as memory:
        with progress(options, "creating databases and containers..."):
            await memory.setup()
        tiers = [t.value for t in memory.tiers]
    emit(options, {"initialized": tiers}, lambda: click.echo(f"initialized: {', '.join(tiers)}"))


@cli.command()
@output_options
@click.pass_obj
@run_async
async def sweep(options: Options) -> None:
    """Delete expired objects from the cold tier (Blob has no native TTL)."""
    async with _client(options) as memory:
        cold: Any = memory.tier_store(Tier.COLD)
        with progress(options, "sweeping expired objects from the cold tier..."):
            removed = 0 if cold is None else await cold.sweep()
    emit(options, {"removed": removed}, lambda: click.echo(f"removed {removed} expired object(s)"))


@cli.command()
@output_options
@click.pass_obj
def stats(options: Options) -> None:
    """Run a short probe workload and print the per-tier snapshot (hit rate, p50/p95/p99, circuits).

    Stats live in a client process; for a running service use ``GET /v1/stats``.
    """
    from tiermem.cli._doctor import probe_stats

    with progress(options, "probing the tiers..."):
        snapshot = run_async(probe_stats)(options)
    emit(options, snapshot.as_dict(), lambda: console().print(stats_table(snapshot)))


@cli.command()
@output_options
@click.option("--keep", is_flag=True, help="Keep the demo data (default: clean up).")
@click.pass_obj
def demo(options: Options, keep: bool) -> None:
    """A short scripted agent session that shows the tiers at work (embedded tiers by default)."""
    from tiermem.cli._demo import run_demo

    code = run_async(run_demo)(options, keep=keep)
    sys.exit(int(code))


@cli.command()
@output_options
@click.option(
    "--timeout", "per_tier", type=float, default=10.0, show_default=True, help="Seconds per tier check."
)
@click.pass_obj
def doctor(options: Options, per_tier: float) -> None:
    """Check every tier: connectivity, auth, write/read/delete round trip, latency.

    Exit 0 healthy, 1 degraded, 2 failed, 5 credentials rejected, 8 misconfigured (run `tiermem init`).
    """
    from tiermem.cli._doctor import run_doctor

    with progress(options, "checking every tier..."):
        code = run_async(run_doctor)(options, per_tier=per_tier)
    sys.exit(int(code))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tiermem")
