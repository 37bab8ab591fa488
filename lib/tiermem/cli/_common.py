"""Shared CLI plumbing: exit codes, error mapping, settings overrides, output helpers."""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from tiermem._error_shape import error_body, error_code
from tiermem._errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    InvalidInputError,
    QuotaExceededError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._settings import MemorySettings

__all__ = [
    "Exit",
    "Options",
    "emit",
    "error_exit_code",
    "fail",
    "log_to_stderr",
    "output_options",
    "progress",
    "run_async",
    "waiting",
]

_T = TypeVar("_T")


class Exit(enum.IntEnum):
    """Process exit codes: scripts can tell a miss from an outage from bad input (docs/cli.md)."""

    OK = 0
    NOT_FOUND = 1  # get/exists on a missing key; doctor: degraded
    USAGE = 2  # click's own usage errors; doctor: failed
    INVALID_INPUT = 3
    CONFLICT = 4
    AUTH = 5
    UNAVAILABLE = 6
    CORRUPT = 7
    CONFIG = 8  # settings, missing extras, a service that cannot start with these settings
    ERROR = 9  # anything else: an unexpected tier error, a service that failed to start
    QUOTA = 10  # a tenant's quota refused the write


def error_exit_code(exc: BaseException) -> Exit:
    """Map a tiermem error to its exit code (most specific first)."""
    for kind, code in (
        (QuotaExceededError, Exit.QUOTA),
        (InvalidInputError, Exit.INVALID_INPUT),
        (ConflictError, Exit.CONFLICT),
        (AuthenticationError, Exit.AUTH),
        (TierUnavailableError, Exit.UNAVAILABLE),
        (CorruptValueError, Exit.CORRUPT),
        (ConfigurationError, Exit.CONFIG),
    ):
        if isinstance(exc, kind):
            return code
    return Exit.ERROR


class Options:
    """Global CLI options: overrides on top of the environment's ``MemorySettings``."""

    def __init__(
        self,
        *,
        json_output: bool,
        debug: bool,
        overrides: dict[str, Any],
        env_file: Path | None = None,
    ) -> None:
        self.json = json_output
        self.debug = debug
        self.env_file = env_file
        self.overrides = {k: v for k, v in overrides.items() if v is not None}

    def env_file_argument(self) -> dict[str, Any]:
        """``_env_file=`` for a settings class when ``--env-file`` was given (else its ``.env`` default)."""
        return {} if self.env_file is None else {"_env_file": self.env_file}

    def settings(self, **extra: Any) -> MemorySettings:
        """The environment (and ``.env``/``--env-file``) under the command-line overrides.

        Raises:
            ConfigurationError: an unknown ``TIERMEM_*`` name or a bad value (the message names it).
        """
        return MemorySettings(**{**self.overrides, **extra}, **self.env_file_argument())


class _StderrLog(logging.Handler):
    """tiermem's warnings and errors as lines on the command's stderr, marked like its own errors
    (``error: the hot tier rejected the credentials ...``): a fall-through is never silent."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)
        except (OSError, ValueError):  # a closed stderr must not break the command
            self.handleError(record)


def log_to_stderr(ctx: click.Context) -> None:
    """Show tiermem's WARNING and ERROR log lines on stderr while this command runs."""
    logger = logging.getLogger("tiermem")
    handler = _StderrLog(logging.WARNING)
    logger.addHandler(handler)
    ctx.call_on_close(lambda: logger.removeHandler(handler))


def _set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    options = ctx.find_object(Options)
    if value and options is not None and param.name is not None:
        setattr(options, param.name, True)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` and ``--debug`` after the subcommand too (``tiermem get k --json``)."""
    for name in ("debug", "json"):
        command = click.option(
            f"--{name}",
            name,
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_flag,
            help="Same as the global option.",
        )(command)
    return command


def fail(options: Options, exc: BaseException, code: Exit) -> NoReturn:
    """One error line (``--json``: the HTTP API's error shape) and the typed exit code."""
    if options.json:
        body = error_body(error_code(exc), str(exc), type=type(exc).__name__, exit_code=int(code))
        click.echo(json.dumps(body))
    else:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    sys.exit(int(code))


def emit(options: Options, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON with ``--json``, else run the human renderer."""
    if options.json:
        click.echo(json.dumps(data, default=_json_default, ensure_ascii=False))
    else:
        human()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return {"$bytes_hex": obj.hex()}
    if isinstance(obj, enum.Enum):
        return obj.value
    return str(obj)


def run_async(fn: Callable[..., Coroutine[Any, Any, _T]]) -> Callable[..., _T]:
    """Run an async command; tiermem errors become one clear line and a typed exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        ctx = click.get_current_context()
        options: Options = ctx.obj
        try:
            return asyncio.run(fn(*args, **kwargs))
        except (TierMemError, ImportError) as exc:
            if options.debug:
                raise
            fail(options, exc, error_exit_code(exc) if isinstance(exc, TierMemError) else Exit.CONFIG)

    return wrapper


def progress(options: Options, message: str) -> AbstractContextManager[Any]:
    """A spinner on a terminal for operations that can take a while; nothing with ``--json``."""
    if options.json:
        return nullcontext()
    from tiermem.cli._render import console

    return console().status(message, spinner="dots")


@asynccontextmanager
async def waiting(
    options: Options, message: str, *, delay: float = 1.0, console: Any = None
) -> AsyncIterator[None]:
    """A spinner that appears only if the block takes longer than ``delay`` seconds (a slow tier).

    Quick commands print nothing extra; a hung endpoint shows what the command waits for instead of
    a silent terminal. Nothing with ``--json`` or when stdout is not a terminal (rich draws no live
    display there).
    """
    if options.json:
        yield
        return
    if console is None:
        from tiermem.cli._render import console as make_console

        console = make_console()
    status = console.status(message, spinner="dots")
    timer = asyncio.get_running_loop().call_later(delay, status.start)
    try:
        yield
    finally:
        timer.cancel()
        status.stop()
