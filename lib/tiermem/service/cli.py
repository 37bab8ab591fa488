"""``tiermem serve``: run the HTTP service with uvicorn.

Registered in the CLI group with ``cli.add_command(serve)``; also runnable on its own as
``python -m tiermem.service.cli`` (then only the environment configures the tiers).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import sys
from typing import Any, NoReturn

import click
import pydantic

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._errors import TierMemError
from tiermem.cli._common import Exit, Options, error_exit_code

__all__ = ["is_loopback_host", "serve"]


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the port on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _fail(options: Options, exc: BaseException, code: Exit) -> NoReturn:
    if options.json:
        click.echo(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    else:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    sys.exit(int(code))


def _start_monitor() -> Any:
    """Azure Monitor export when APPLICATIONINSIGHTS_CONNECTION_STRING is set; the service runs without it."""
    try:
        from tiermem.telemetry import configure_azure_monitor

        return configure_azure_monitor(service_name="tiermem-service")
    except ImportError as exc:
        click.echo(f"warning: telemetry export is off: {exc}", err=True)
        return None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(["entra", "none"]),
    help="Entra ID bearer tokens, or none (local development, loopback only). Default: TIERMEM_AUTH_MODE.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request line (URLs contain keys, so it is off by default).",
)
@click.pass_context
def serve(
    ctx: click.Context, /, host: str, port: int, auth_mode: str | None, log_level: str, access_log: bool
) -> None:
    """Run the HTTP service (FastAPI + uvicorn) over the tiers configured by the environment."""
    options = (
        ctx.obj if isinstance(ctx.obj, Options) else Options(json_output=False, debug=False, overrides={})
    )
    try:
        import uvicorn

        from tiermem.service._app import create_app
        from tiermem.service._settings import ServiceSettings
    except ImportError as exc:
        missing = ImportError(f"tiermem serve needs its extra: pip install 'tiermem[service]' ({exc})")
        _fail(options, missing, Exit.CONFIG)
    try:
        overrides: dict[str, Any] = {"auth_mode": auth_mode} if auth_mode else {}
        settings = ServiceSettings(**overrides)
    except pydantic.ValidationError as exc:
        _fail(options, exc, Exit.CONFIG)
    if settings.auth_mode == "none" and not is_loopback_host(host):
        raise click.UsageError(
            f"refusing to bind to {host!r} with --auth none: without authentication every caller is "
            f"tenant {settings.tenant!r}, so this mode serves loopback only (127.0.0.1, ::1, localhost). "
            "Use --auth entra to listen on other addresses."
        )
    # Exporters first, so the client built next reports through them; shut down with the app.
    monitor = _start_monitor()
    memory: MemoryClient | None = None
    try:
        memory = MemoryBuilder.from_settings(options.settings()).build()
        app = create_app(
            memory,
            settings=settings,
            owns_memory=True,
            setup_embedded=True,
            on_shutdown=monitor.shutdown if monitor is not None else None,
        )
    except (TierMemError, ImportError) as exc:
        if memory is not None:
            asyncio.run(memory.aclose())
        if monitor is not None:
            monitor.shutdown()
        if options.debug:
            raise
        _fail(options, exc, error_exit_code(exc) if isinstance(exc, TierMemError) else Exit.CONFIG)
    # uvicorn's logging, plus the tiermem loggers on the same handler (they have none of their own).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["tiermem"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=log_config,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shut down gracefully, then re-raised the Ctrl+C it captured; that is a clean stop.
        # (SIGTERM is re-raised too, so the process ends by that signal, as process managers expect.)
        return
    except SystemExit as exc:
        # uvicorn exits with its own status 3 when startup fails (bind error, lifespan failure); 3 is
        # INVALID_INPUT in this CLI, so report it as the CLI's generic failure instead.
        if exc.code in (None, 0):
            return
        server.started = False
    if not server.started:
        click.echo("error: the service did not start (see the log above)", err=True)
        sys.exit(int(Exit.ERROR))


def main() -> None:
    """``python -m tiermem.service.cli``: the command without the CLI group."""
    serve(prog_name="tiermem serve")


if __name__ == "__main__":  # pragma: no cover
    main()
