"""``tiermem bench``: run the benchmark suite (``benchmarks/`` in a source checkout).

The suite is not part of the wheel: it lives beside ``lib/`` and is imported when the command runs,
from the current directory or from the checkout this package was installed from (editable
installs). From a wheel the command says exactly what to do instead (:data:`NOT_IN_WHEEL`).
``python -m benchmarks`` runs the same command.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Final, NoReturn

import click

from tiermem._errors import TierMemError
from tiermem.cli._common import Exit, Options, error_exit_code

__all__ = ["bench"]

GROUPS: Final = (
    "hot",
    "embedded",
    "warm",
    "cold",
    "collections",
    "codec",
    "compression",
    "tracing",
    "langgraph",
)

# option name -> (environment variable, key in the tiermem group's overrides)
_SOURCES: Final = {
    "redis_url": ("TIERMEM_REDIS_URL", "redis_url"),
    "cosmos_endpoint": ("TIERMEM_COSMOS_ENDPOINT", "cosmos_endpoint"),
    "cosmos_key": ("TIERMEM_COSMOS_KEY", "cosmos_key"),
    "blob_connection_string": ("TIERMEM_BLOB_CONNECTION_STRING", "blob_connection_string"),
}


NOT_IN_WHEEL: Final = (
    "tiermem bench needs the benchmark suite (benchmarks/), which lives in the tiermem source "
    "repository and is not part of the installed package. In a clone of the repository run: "
    "pip install -e '.[dev]' && tiermem bench --quick"
)


def checkout_root() -> Path:
    """The directory that would hold ``benchmarks/`` if this package is an editable source checkout."""
    return Path(__file__).resolve().parents[3]


class _Unavailable(Exception):
    """The benchmarks package (or something it needs) cannot be imported here."""


def _fail(ctx: click.Context, message: str, code: Exit) -> NoReturn:
    """One line on stderr and a typed exit code, as the other commands do."""
    click.echo(f"error: {message}", err=True)
    ctx.exit(int(code))
    raise AssertionError("unreachable")  # ctx.exit raises


def _load(module: str) -> Any:
    """Import ``benchmarks.<module>``; fall back to the checkout that holds this package."""
    try:
        return importlib.import_module(f"benchmarks.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", f"benchmarks.{module}"):
            raise _Unavailable(f"the benchmarks need {exc.name}: pip install -e '.[dev]'") from exc
    root = checkout_root()
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise _Unavailable(NOT_IN_WHEEL)
    sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{module}")


def _resolve(ctx: click.Context, name: str, given: str | None) -> str | None:
    """The option, else the ``tiermem`` group's option of the same meaning, else the environment."""
    if given:
        return given
    env, override = _SOURCES[name]
    options = ctx.find_object(Options)
    if options is not None:
        value = options.overrides.get(override)
        if value:
            return str(value)
    return os.environ.get(env) or None


@click.command(name="bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="Tiny sizes and one round: a smoke run of a few seconds.")
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    help="Measured rounds per scenario (default 15; 1 with --quick).",
)
@click.option(
    "--json",
    "json_path",
    metavar="PATH",
    help="Write the results as JSON to PATH (for CI artifacts); '-' prints JSON instead of the table.",
)
@click.option(
    "--markdown",
    "markdown_path",
    metavar="PATH",
    help="Write the README's performance table to PATH (replacing the block between its markers, or "
    "creating the file); '-' prints it instead of the table.",
)
@click.option("--redis", "redis_url", metavar="URL", help="Redis to measure [env TIERMEM_REDIS_URL].")
@click.option(
    "--cosmos",
    "cosmos_endpoint",
    metavar="ENDPOINT",
    help="Cosmos DB endpoint [env TIERMEM_COSMOS_ENDPOINT].",
)
@click.option("--cosmos-key", metavar="KEY", help="Cosmos DB account key [env TIERMEM_COSMOS_KEY].")
@click.option(
    "--blob-connection-string",
    metavar="CS",
    help="Blob Storage connection string [env TIERMEM_BLOB_CONNECTION_STRING].",
)
@click.option(
    "--start-services",
    is_flag=True,
    help="Start local redis-server, the Cosmos DB stand-in and Azurite (tests/services) for the run.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(GROUPS),
    help="Run only these scenario groups (repeatable).",
)
@click.option("--profile", is_flag=True, help="Also show where tiermem's time goes on the hot path.")
@click.pass_context
def bench(
    ctx: click.Context,
    /,
    quick: bool,
    rounds: int | None,
    json_path: str | None,
    markdown_path: str | None,
    redis_url: str | None,
    cosmos_endpoint: str | None,
    cosmos_key: str | None,
    blob_connection_string: str | None,
    start_services: bool,
    only: tuple[str, ...],
    profile: bool,
) -> None:
    """Measure tiermem against raw redis-py, Cosmos DB, Blob and sqlite3 calls, aiocache, cashews, diskcache.

    Without endpoints it runs on the embedded default (in-process hot tier against a dict);
    --start-services starts local stand-ins. Targets are reported, never enforced: exit 0 unless
    the run itself fails.
    """
    given = {
        "redis_url": redis_url,
        "cosmos_endpoint": cosmos_endpoint,
        "cosmos_key": cosmos_key,
        "blob_connection_string": blob_connection_string,
    }
    resolved = {name: _resolve(ctx, name, value) for name, value in given.items()}
    if start_services and any(given.values()):
        raise click.UsageError("--start-services starts its own services; do not give endpoints as well")
    if start_services:
        resolved = dict.fromkeys(resolved)
    options = ctx.find_object(Options)
    json_stdout = json_path == "-" or (json_path is None and options is not None and options.json)

    try:
        harness, run, services, report_module, markdown = (
            _load(name) for name in ("_harness", "_run", "_services", "_report", "_markdown")
        )
    except _Unavailable as exc:
        _fail(ctx, str(exc), Exit.CONFIG)
    config = run.BenchConfig(
        rounds=rounds,
        quick=quick,
        endpoints=services.Endpoints(**resolved),
        start_services=start_services,
        only=only,
        profile=profile,
    )
    from rich.console import Console

    try:
        report = run.run(config, console=Console(stderr=True))
    except harness.BenchmarkError as exc:
        _fail(ctx, str(exc), Exit.ERROR)
    except TierMemError as exc:
        _fail(ctx, f"{type(exc).__name__}: {exc}", error_exit_code(exc))
    document = report.as_dict()
    if json_path not in (None, "-"):
        Path(str(json_path)).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if markdown_path not in (None, "-"):
        try:
            markdown.write_markdown(report, Path(str(markdown_path)))
        except harness.BenchmarkError as exc:
            _fail(ctx, str(exc), Exit.ERROR)
    if json_stdout:
        click.echo(json.dumps(document, indent=2))
    elif markdown_path == "-":
        click.echo(markdown.markdown_table(report), nl=False)
    else:
        # A pipe or a file gets a wide table rather than one folded to 80 columns.
        wide = None if sys.stdout.isatty() else 200
        report_module.render(report, Console(highlight=False, width=wide))
