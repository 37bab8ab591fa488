"""``tiermem doctor`` and the probe behind ``tiermem stats``."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable
from typing import Any

from rich.table import Table

from tiermem._codec import Codec
from tiermem._errors import AuthenticationError, ConfigurationError, TierMemError
from tiermem._instrumentation import Stats
from tiermem._keys import make_key
from tiermem._protocols import Tier
from tiermem.cli._common import Exit, Options, emit
from tiermem.cli._render import console

__all__ = ["probe_stats", "run_doctor"]

_PROBE_TENANT = "tiermem-doctor"


async def _check(store: Any, per_tier: float) -> dict[str, Any]:
    """Ping, then a write/read/delete round trip on a unique probe key, each step timed."""
    mk = make_key(_PROBE_TENANT, "probe", f"probe-{secrets.token_hex(6)}")
    record, _ = Codec().encode({"probe": True}, expires_at=time.time() + 300)
    steps: dict[str, float] = {}
    result: dict[str, Any] = {"ok": False, "steps_ms": steps, "error": None}

    async def timed(step: str, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        value = await call
        steps[step] = round((time.perf_counter() - start) * 1000, 3)
        return value

    try:
        async with asyncio.timeout(per_tier):
            await timed("ping", store.ping())
            await timed("write", store.set(mk, record))
            got = await timed("read", store.get(mk))
            await timed("delete", store.delete(mk))
    except TimeoutError:
        result["error"] = f"TimeoutError: no answer within {per_tier}s"
    except TierMemError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["misconfigured"] = _misconfiguration(exc)
    else:
        if got is None or got.payload != record.payload:
            result["error"] = "read-back did not return what was written"
        else:
            result["ok"] = True
    return result


def _misconfiguration(exc: TierMemError) -> str | None:
    """What a failure says about the setup rather than the service: ``auth`` (credentials rejected),
    ``config`` (e.g. a container that was never created), or ``None`` for an outage."""
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, ConfigurationError):
        return "config"
    return None


async def run_doctor(options: Options, *, per_tier: float) -> Exit:
    from tiermem._builder import MemoryBuilder
    from tiermem._settings import resolve

    settings = options.settings()
    paths = {tier: str(path) for tier, path in resolve(settings).local_paths().items()}
    memory = MemoryBuilder.from_settings(settings).build()
    async with memory:
        report: dict[str, Any] = {}
        for tier in memory.tiers:
            store = memory.tier_store(tier)
            info = store.info if store is not None else None
            check = await _check(store, per_tier)
            check["db_system"] = info.db_system if info else None
            check["server"] = info.server_address if info else None
            check["path"] = paths.get(tier.value)
            report[tier.value] = check
    durable = Tier.WARM.value if Tier.WARM.value in report else Tier.COLD.value
    failed = [name for name, r in report.items() if not r["ok"]]
    misconfigured = {r.get("misconfigured") for r in report.values()} - {None}
    if not failed:
        verdict, code = "healthy", Exit.OK
    elif misconfigured:
        # A setup mistake is not an outage, even on hot where reads would fall through: say so
        # with the exit code of the error (5 credentials, 8 configuration such as a missing container).
        verdict, code = "misconfigured", Exit.AUTH if "auth" in misconfigured else Exit.CONFIG
    elif durable in failed or (Tier.COLD.value in failed and Tier.WARM.value in report):
        verdict, code = "failed", Exit.USAGE  # 2: a durable tier cannot be used
    else:
        verdict, code = "degraded", Exit.NOT_FOUND  # 1: hot down, reads fall through
    payload = {"verdict": verdict, "tiers": report, "local_paths": paths}

    def human() -> None:
        table = Table(title=f"tiermem doctor: {verdict.upper()}", title_justify="left")
        for col in (
            "tier",
            "service",
            "server",
            "ok",
            "ping ms",
            "write ms",
            "read ms",
            "delete ms",
            "error",
        ):
            table.add_column(col)
        for name, r in report.items():
            s = r["steps_ms"]
            table.add_row(
                name,
                str(r["db_system"]),
                str(r["server"] or "-"),
                "yes" if r["ok"] else "NO",
                *(str(s.get(step, "-")) for step in ("ping", "write", "read", "delete")),
                r["error"] or "",
            )
        out = console()
        out.print(table)
        for tier_name, path in paths.items():
            out.print(f"{tier_name} tier files: {path}")
        if not paths:
            out.print("no local files: every tier is a service")

    emit(options, payload, human)
    return code


async def probe_stats(options: Options, rounds: int = 20) -> Stats:
    """A small set/get/mget workload on probe keys so the snapshot shows this host's view of each tier."""
    from tiermem._builder import MemoryBuilder

    memory = MemoryBuilder.from_settings(options.settings()).build()
    async with memory:
        view = memory.scoped(tenant=_PROBE_TENANT, namespace=f"stats-{secrets.token_hex(4)}")
        keys = [f"k{i}" for i in range(rounds)]
        await view.mset({k: {"i": i} for i, k in enumerate(keys)}, ttl=300)
        for key in keys:
            await view.get(key)
        await view.mget(keys)
        for key in keys:
            await view.delete(key)
        return memory.stats()
