"""Time to a clear error (issue 13, items 18-19): refused and hung endpoints, rejected credentials,
missing containers, against real local services and real loopback sockets (ADR 0017).

A port with nothing listening is a refused endpoint; a listening socket that nobody accepts from
is a hung one (the kernel completes the handshake, nothing ever answers). No test measures
wall-clock time: each checks what the error is and how many attempts reached the socket (a retry
shows up as one more connection, or as the deadline's TimeoutError instead of the refusal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from pydantic import SecretStr

from tests.records import k, rec
from tests.services._process import ServiceUnavailableError, free_port
from tests.services.fixtures import BlobService, CosmosService, service_missing
from tests.services.redis import RedisServer
from tiermem import (
    AuthenticationError,
    ConfigurationError,
    MemoryBuilder,
    NotProvisionedError,
    Tier,
    TierUnavailableError,
)
from tiermem._breaker import CircuitState
from tiermem.cli import cli
from tiermem.cli._common import Exit
from tiermem.tiers.blob import BlobColdMemory
from tiermem.tiers.cosmos import CosmosWarmMemory
from tiermem.tiers.redis import RedisHotMemory
from tiermem.tiers.sqlite import SqliteWarmMemory

pytestmark = [pytest.mark.timeout(120)]

# The documented, public Azurite development key.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_string(port: int) -> str:
    """An Azurite-style connection string for a loopback port (nothing needs to listen there)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening loopback socket nobody accepts from: a hung endpoint, until a test accepts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


# -- a refused Blob port fails at once; server failures keep the SDK's retries -------------------------


@pytest.mark.blob
async def test_refused_blob_port_fails_without_retry_backoff() -> None:
    # A retry would first sleep ten minutes: the tier deadline (5 s) would then end the call with a
    # TimeoutError instead of the refusal.
    store = BlobColdMemory(connection_string=azurite_string(free_port()), retry_backoff=600)
    memory = MemoryBuilder().with_cold(store).with_resilience(Tier.COLD, timeout=5).build()
    async with memory:
        for call in (store.get(k("a")), store.ping(), store.set(k("a"), rec(1))):
            with pytest.raises(TierUnavailableError) as info:
                await asyncio.wait_for(call, 60)
            assert "connection refused" in str(info.value)
            assert not any(isinstance(e, TimeoutError) for e in causes(info.value))
        with pytest.raises(TierUnavailableError) as through:
            await memory.set("archived", "x", tier=Tier.COLD)  # through the guard and its deadline
        assert through.value.tier is Tier.COLD
        assert "connection refused" in str(through.value)


@pytest.mark.blob
async def test_dropped_blob_connections_are_still_retried(listener: socket.socket) -> None:
    # Accepted, then closed without an answer (a reset, not a refusal): the SDK retries it, and
    # every attempt is one more accepted connection.
    attempts = 0

    async def drop_connections() -> None:
        nonlocal attempts
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.close()
            attempts += 1

    async def attempts_with(retry_total: int) -> int:
        nonlocal attempts
        attempts = 0
        store = BlobColdMemory(
            connection_string=azurite_string(listener.getsockname()[1]),
            retry_total=retry_total,
            retry_backoff=0.01,
            retry_backoff_base=0.01,
        )
        async with store:
            with pytest.raises(TierUnavailableError) as info:
                await store.get(k("a"))
        assert "connection refused" not in str(info.value)
        return attempts

    dropper = asyncio.ensure_future(drop_connections())
    try:
        once = await attempts_with(0)
        assert once >= 1
        assert await attempts_with(2) == 3 * once  # the first attempt and both retries
    finally:
        dropper.cancel()


@pytest.mark.blob
async def test_hung_blob_endpoint_errors_at_the_cold_deadline(listener: socket.socket) -> None:
    # Defaults of the adapter (60 s read timeout, 3 retries: minutes); the client's cold deadline
    # ends the call, with the tier named.
    store = BlobColdMemory(connection_string=azurite_string(listener.getsockname()[1]))
    memory = MemoryBuilder().with_cold(store).with_resilience(Tier.COLD, timeout=0.5).build()
    async with memory:
        with pytest.raises(TierUnavailableError) as info:
            await asyncio.wait_for(memory.set("archived", "x", tier=Tier.COLD), 60)
    assert info.value.tier is Tier.COLD and "timed out after 0.5" in str(info.value)


# -- rejected Redis credentials: typed, ERROR once per open circuit, reads fall through ----------------


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start(extra_args=("--requirepass", "right-password"))
    except ServiceUnavailableError as exc:
        service_missing(f"redis-server is unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


def failed_auths(server: RedisServer) -> int:
    with redis.Redis(host=server.host, port=server.port, password="right-password") as admin:
        stats = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{cmd}", {}).get("failed_calls", 0)) for cmd in ("hello", "auth"))


@pytest.mark.redis
async def test_wrong_redis_password_logs_one_error_per_open_circuit(
    password_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hot = RedisHotMemory.from_url(password_redis.url, password=SecretStr("wrong-password"))
    memory = (
        MemoryBuilder()
        .with_hot(hot)
        .with_warm(SqliteWarmMemory(tmp_path / "warm.db"))
        .with_resilience(Tier.HOT, reset_timeout=0.3)
        .build()
    )
    async with memory:
        before = failed_auths(password_redis)
        with caplog.at_level(logging.DEBUG, logger="tiermem"):
            await memory.set("k", {"v": 1})  # durable first; the hot invalidation meets the bad password
            for _ in range(20):
                assert await memory.get("k") == {"v": 1}  # hot is a cache: reads come from warm
            assert memory.circuit_state(Tier.HOT) is CircuitState.OPEN
            first_period = failed_auths(password_redis) - before
            await asyncio.sleep(0.4)  # the circuit half-opens: one probe meets the password again
            for _ in range(5):
                assert await memory.get("k") == {"v": 1}
        records = [r for r in caplog.records if r.name.startswith("tiermem")]
        errors = [r for r in records if r.levelno >= logging.ERROR]
        assert len(errors) == 2, [r.getMessage() for r in errors]  # one per open period
        assert all("rejected the credentials" in r.getMessage() for r in errors)
        warnings = [r for r in records if r.levelno == logging.WARNING]
        assert not [r for r in warnings if "AuthenticationError" in r.getMessage()]
        assert first_period == 1  # the open circuit spares Redis the other 20 attempts
    # Without a durable tier the error reaches the caller, typed.
    async with RedisHotMemory.from_url(password_redis.url, password=SecretStr("wrong")) as alone:
        with pytest.raises(AuthenticationError) as info:
            await alone.get(k("a"))
        assert info.value.tier is Tier.HOT


# -- a missing container or database: NotProvisionedError naming `tiermem init` -------------------------


@pytest.mark.blob
async def test_missing_blob_container_is_not_provisioned(azurite: BlobService) -> None:
    store = BlobColdMemory(
        container=f"t-{uuid.uuid4().hex[:20]}", connection_string=azurite.connection_string
    )
    memory = MemoryBuilder().with_cold(store).build()
    async with memory:
        for _ in range(8):  # more than the breaker's failure threshold
            with pytest.raises(NotProvisionedError) as info:
                await memory.set("archived", "x", tier=Tier.COLD)
            assert isinstance(info.value, ConfigurationError)
            assert "tiermem init" in str(info.value) and info.value.tier is Tier.COLD
        assert memory.circuit_state(Tier.COLD) is CircuitState.CLOSED  # a setup mistake, not an outage
        await memory.setup()
        await memory.set("archived", "x", tier=Tier.COLD)
        assert await memory.get("archived") == "x"


@pytest.mark.cosmos
async def test_missing_cosmos_database_or_container_is_not_provisioned(cosmos_server: CosmosService) -> None:
    database = f"missing-{uuid.uuid4().hex[:12]}"
    store = CosmosWarmMemory(cosmos_server.endpoint, database, "memory", key=SecretStr(cosmos_server.key))
    memory = MemoryBuilder().with_warm(store).build()
    async with memory:
        for call in (memory.get("k"), memory.set("k", 1)):
            with pytest.raises(NotProvisionedError) as info:
                await call
            assert "tiermem init" in str(info.value) and info.value.tier is Tier.WARM
        assert memory.circuit_state(Tier.WARM) is CircuitState.CLOSED
        await memory.setup()
        await memory.set("k", 1)
        assert await memory.get("k") == 1
    other = CosmosWarmMemory(cosmos_server.endpoint, database, "other", key=SecretStr(cosmos_server.key))
    async with other:
        with pytest.raises(NotProvisionedError, match="container 'other'"):
            await other.get(k("a"))


# -- the CLI says it: exit codes from docs/cli.md, the hint in the message ------------------------------


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in list(os.environ):
        if var.startswith("TIERMEM_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            cli, ["--local-dir", str(tmp_path / "mem"), *args], catch_exceptions=False, env=env
        )

    return invoke


def last_json(result: Result) -> Any:
    return json.loads(result.output.strip().splitlines()[-1])


@pytest.mark.blob
def test_doctor_reports_a_refused_blob_port_not_a_timeout(run: Any) -> None:
    env = {"TIERMEM_BLOB_CONNECTION_STRING": azurite_string(free_port())}
    result = run("--json", "doctor", "--timeout", "5", env=env)
    assert result.exit_code == Exit.USAGE  # 2: failed, a durable tier cannot be used
    cold = last_json(result)["tiers"]["cold"]
    assert cold["error"].startswith("TierUnavailableError") and "connection refused" in cold["error"]


@pytest.mark.redis
def test_doctor_and_get_with_a_wrong_redis_password(run: Any, password_redis: RedisServer) -> None:
    env = {"TIERMEM_REDIS_URL": password_redis.url, "TIERMEM_REDIS_PASSWORD": "wrong-password"}
    doctor = run("--json", "doctor", "--timeout", "5", env=env)
    assert doctor.exit_code == Exit.AUTH
    report = last_json(doctor)
    assert report["verdict"] == "misconfigured" and report["tiers"]["hot"]["misconfigured"] == "auth"
    assert report["tiers"]["warm"]["ok"] is True
    assert run("set", "k", "1", env=env).exit_code == Exit.OK
    got = run("get", "k", env=env)
    assert got.exit_code == Exit.OK and "1" in got.stdout  # the value, from warm
    assert "rejected the credentials" in got.stderr and "configuration error" in got.stderr


@pytest.mark.blob
def test_missing_container_exits_8_with_the_init_hint(run: Any, azurite: BlobService) -> None:
    env = {
        "TIERMEM_BLOB_CONNECTION_STRING": azurite.connection_string,
        "TIERMEM_BLOB_CONTAINER": f"t-{uuid.uuid4().hex[:20]}",
    }
    doctor = run("--json", "doctor", "--timeout", "5", env=env)
    assert doctor.exit_code == Exit.CONFIG
    report = last_json(doctor)
    assert report["verdict"] == "misconfigured" and "tiermem init" in report["tiers"]["cold"]["error"]
    result = run("set", "k", "1", "--tier", "cold", env=env)
    assert result.exit_code == Exit.CONFIG
    assert "NotProvisionedError" in result.stderr and "tiermem init" in result.stderr
    as_json = run("--json", "set", "k", "1", "--tier", "cold", env=env)
    assert last_json(as_json)["error"]["code"] == "configuration_error"
    assert run("init", env=env).exit_code == Exit.OK
    assert run("set", "k", "1", "--tier", "cold", env=env).exit_code == Exit.OK
