"""``tiermem serve``: run the HTTP service with uvicorn.

The command lives with the CLI (``tiermem.service`` is a library that never imports the CLI); the
group loads it on first use, so the CLI works without the service extra.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import sys
from typing import TYPE_CHECKING, Any

import click

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._errors import TierMemError
from tiermem.cli._common import Exit, Options, error_exit_code, fail, output_options

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from tiermem.service._settings import ServiceSettings

__all__ = ["is_loopback_host", "serve", "uvicorn_config"]


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the port on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _start_monitor(settings: ServiceSettings, client_id: str | None) -> tuple[Any, Any]:
    """Azure Monitor export when APPLICATIONINSIGHTS_CONNECTION_STRING is set; the service runs without it.

    Returns the handle (or ``None``) and the credential made for Entra ingestion (or ``None``),
    which the caller closes at shutdown.
    """
    try:
        from tiermem.telemetry import configure_azure_monitor

        credential = None
        if settings.monitor_entra:
            from tiermem._settings import make_credential

            credential = make_credential(client_id, sync=True)
        handle = configure_azure_monitor(service_name="tiermem-service", credential=credential)
    except ImportError as exc:
        click.echo(f"warning: telemetry export is off: {exc}", err=True)
        return None, None
    return handle, credential


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
@output_options
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
        fail(options, missing, Exit.CONFIG)
    try:
        overrides: dict[str, Any] = {"auth_mode": auth_mode} if auth_mode else {}
        settings = ServiceSettings(**overrides, **options.env_file_argument())
    except TierMemError as exc:
        fail(options, exc, error_exit_code(exc))
    if settings.auth_mode == "none" and not is_loopback_host(host):
        raise click.UsageError(
            f"refusing to bind to {host!r} with --auth none: without authentication every caller is "
            f"tenant {settings.tenant!r}, so this mode serves loopback only (127.0.0.1, ::1, localhost). "
            "Use --auth entra to listen on other addresses."
        )
    # Exporters first, so the client built next reports through them; shut down with the app.
    memory: MemoryClient | None = None
    monitor: Any = None
    monitor_credential: Any = None

    def stop_monitor() -> None:
        if monitor is not None:
            monitor.shutdown()
        if monitor_credential is not None:
            monitor_credential.close()

    try:
        memory_settings = options.settings()
        monitor, monitor_credential = _start_monitor(settings, memory_settings.azure_client_id)

        memory = MemoryBuilder.from_settings(memory_settings).build()
        app = create_app(
            memory,
            settings=settings,
            owns_memory=True,
            setup_embedded=True,
            on_shutdown=stop_monitor,
        )
    except (TierMemError, ImportError) as exc:
        if memory is not None:
            asyncio.run(memory.aclose())
        stop_monitor()
        if options.debug:
            raise
        fail(options, exc, error_exit_code(exc) if isinstance(exc, TierMemError) else Exit.CONFIG)
    config = uvicorn_config(app, settings, host=host, port=port, log_level=log_level, access_log=access_log)
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


def uvicorn_config(
    app: ASGIApp, settings: ServiceSettings, *, host: str, port: int, log_level: str, access_log: bool
) -> uvicorn.Config:
    """The uvicorn configuration ``serve`` runs: the limits that bound slow or greedy clients.

    uvicorn has no timeout for reading request headers: ``limit_concurrency`` bounds how many
    connections (slow ones included) the process holds, ``max_header_bytes`` how much one may send
    before its headers end, and ``keep_alive_timeout`` how long an idle connection stays open. In
    Azure the Container Apps ingress (Envoy) bounds slow headers in front of it (docs/security.md).
    """
    import uvicorn

    # uvicorn's logging, plus the tiermem loggers on the same handler (they have none of their own).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["tiermem"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=log_config,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        timeout_graceful_shutdown=30,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]  # float works
        h11_max_incomplete_event_size=settings.max_header_bytes,
        backlog=settings.backlog,
    )
