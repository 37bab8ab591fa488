"""Shared CLI plumbing: exit codes, error mapping, settings overrides, output helpers."""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import sys
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import click

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

__all__ = ["Exit", "Options", "emit", "error_exit_code", "progress", "run_async"]

_T = TypeVar("_T")


class Exit(enum.IntEnum):
    """Process exit codes: scripts can tell a miss from an outage from bad input."""

    OK = 0
    NOT_FOUND = 1  # get/exists on a missing key; doctor: degraded
    USAGE = 2  # click's own usage errors; doctor: failed
    INVALID_INPUT = 3
    CONFLICT = 4
    AUTH = 5
    UNAVAILABLE = 6
    CORRUPT = 7
    CONFIG = 8
    ERROR = 9
    QUOTA = 10  # a tenant quota refused the write


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

    def __init__(self, *, json_output: bool, debug: bool, overrides: dict[str, Any]) -> None:
        self.json = json_output
        self.debug = debug
        self.overrides = {k: v for k, v in overrides.items() if v is not None}

    def settings(self, **extra: Any) -> MemorySettings:
        return MemorySettings(**{**self.overrides, **extra})


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
            code = error_exit_code(exc) if isinstance(exc, TierMemError) else Exit.CONFIG
            if options.json:
                click.echo(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
            else:
                click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(int(code))

    return wrapper


def progress(options: Options, message: str) -> AbstractContextManager[Any]:
    """A spinner on a terminal for operations that can take a while; nothing with ``--json``."""
    if options.json:
        return nullcontext()
    from tiermem.cli._render import console

    return console().status(message, spinner="dots")
