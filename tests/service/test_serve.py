"""``tiermem serve``: option checks in-process, and a real uvicorn process smoke of every route (sockets)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.service.conftest import AUDIENCE, READ, TENANT_A, TENANT_B, IdentityProvider
from tests.services._process import LOOPBACK, free_port, repo_root
from tiermem.cli import cli
from tiermem.cli._common import Exit, Options
from tiermem.cli._serve import is_loopback_host, serve

STARTUP_DEADLINE = 30.0


def _options(tmp_path: Path) -> Options:
    return Options(json_output=False, debug=False, overrides={"local_dir": tmp_path})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TIERMEM_") or name == "APPLICATIONINSIGHTS_CONNECTION_STRING":
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "example.com", "host.local"]
)
@pytest.mark.usefixtures("clean_env")
def test_auth_none_refuses_non_loopback_addresses(tmp_path: Path, host: str) -> None:
    result = CliRunner().invoke(serve, ["--auth", "none", "--host", host], obj=_options(tmp_path))
    assert result.exit_code == 2, result.output
    assert "refusing to bind" in result.output
    assert "--auth none" in result.output
    assert not (tmp_path / "warm.db").exists()  # nothing was built, nothing was bound


@pytest.mark.usefixtures("clean_env")
def test_auth_none_from_the_environment_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERMEM_AUTH_MODE", "none")
    result = CliRunner().invoke(serve, ["--host", "0.0.0.0"], obj=_options(tmp_path))
    assert result.exit_code == 2
    assert "refusing to bind" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.usefixtures("clean_env")
def test_entra_mode_without_settings_exits_with_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--host", "0.0.0.0", "--port", "1"], obj=_options(tmp_path))
    assert result.exit_code == int(Exit.CONFIG), result.output
    assert "TIERMEM_AUTH_TENANT_ID" in result.output


@pytest.mark.usefixtures("clean_env")
def test_invalid_service_settings_exit_with_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERMEM_SERVICE_MAX_BODY_BYTES", "lots")
    result = CliRunner().invoke(serve, ["--auth", "none"], obj=_options(tmp_path))
    assert result.exit_code == int(Exit.CONFIG)


def test_serve_is_a_click_command_for_the_group() -> None:
    assert serve.name == "serve"
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--auth", "--log-level", "--access-log"):
        assert option in result.output
    assert cli.name == "cli"  # the group the lead registers it in: cli.add_command(serve)


# -- a real process -----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    local_dir: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _argv(args: list[str]) -> list[str]:
    if "serve" in cli.commands:  # registered by the CLI group: run it the way users will
        return [sys.executable, "-m", "tiermem", *args]
    return [sys.executable, "-m", "tests.service._serve_main", *args]


@dataclass
class _Launch:
    env: Mapping[str, str]
    args: list[str]


def _start(tmp_path: Path, launch: _Launch) -> Iterator[Server]:
    port = free_port()
    local_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERMEM_")}
    env.update(launch.env)
    argv = _argv(
        ["--local-dir", str(local_dir), "serve", "--host", LOOPBACK, "--port", str(port), *launch.args]
    )
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://{LOOPBACK}:{port}", process, log, local_dir)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if process.poll() is not None:
                pytest.fail(f"tiermem serve exited with {process.returncode}:\n{server.log_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"tiermem serve did not answer /healthz in {STARTUP_DEADLINE}s:\n{server.log_text()}"
                )
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def entra_server(tmp_path: Path, idp: IdentityProvider) -> Iterator[Server]:
    env = {
        "TIERMEM_AUTH_MODE": "entra",
        "TIERMEM_AUTH_TENANT_ID": "organizations",
        "TIERMEM_AUTH_ALLOWED_TENANTS": f"{TENANT_A},{TENANT_B}",
        "TIERMEM_AUTH_AUDIENCE": AUDIENCE,
        "TIERMEM_AUTH_OPENID_CONFIG_URL": idp.openid_config_url(),
        "TIERMEM_SERVICE_MAX_BODY_BYTES": "65536",
    }
    yield from _start(tmp_path, _Launch(env, []))


def test_every_route_over_real_sockets(entra_server: Server, idp: IdentityProvider) -> None:
    a = idp.auth(TENANT_A)
    b = idp.auth(TENANT_B)
    with httpx.Client(base_url=entra_server.url, timeout=10.0) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert set(ready.json()["tiers"]) == {"hot", "warm", "cold"}
        doc = http.get("/openapi.json").json()
        assert "/v1/memory/{namespace}:mget" in doc["paths"]

        # Auth over the wire.
        unauthenticated = http.get("/v1/memory/ns/k")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
        bad = http.get("/v1/memory/ns/k", headers={"Authorization": "Bearer x.y.z"})
        assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert (
            http.put("/v1/memory/ns/k", json={"value": 1}, headers=idp.auth(roles=[READ])).status_code == 403
        )

        # Memory routes.
        put = http.put("/v1/memory/ns/a/b%20c", json={"value": {"n": 1}, "ttl": 600}, headers=a)
        assert put.status_code == 200
        assert put.json()["key"] == "a/b c"
        etag = put.headers["etag"]
        got = http.get("/v1/memory/ns/a/b%20c", params={"consistent": "true"}, headers=a)
        assert got.json()["value"] == {"n": 1}
        assert got.headers["etag"] == etag
        assert (
            http.put("/v1/memory/ns/a/b%20c", json={"value": 2}, headers={**a, "If-Match": etag}).status_code
            == 200
        )
        assert (
            http.put("/v1/memory/ns/a/b%20c", json={"value": 3}, headers={**a, "If-Match": etag}).status_code
            == 412
        )
        assert http.head("/v1/memory/ns/a/b%20c", headers=a).status_code == 200
        assert http.get("/v1/memory/ns/a/b%20c", headers=b).status_code == 404  # another tenant
        mset = http.post("/v1/memory/ns:mset", json={"items": {"x": 1, "y": b"z".hex()}}, headers=a)
        assert mset.json() == {"stored": 2}
        mget = http.post("/v1/memory/ns:mget", json={"keys": ["x", "y", "a/b c", "none"]}, headers=a)
        assert mget.json()["values"] == {"x": 1, "y": "7a", "a/b c": 2, "none": None}
        raw = base64.b64encode(b"\x00\x01").decode()
        assert (
            http.put("/v1/memory/ns/bin", json={"value": raw, "encoding": "base64"}, headers=a).status_code
            == 200
        )
        assert http.get("/v1/memory/ns/bin", headers=a).json()["encoding"] == "base64"
        assert http.delete("/v1/memory/ns/x", headers=a).status_code == 204
        assert http.get("/v1/memory/ns/x", headers=a).status_code == 404
        assert http.get("/v1/memory/ns/%00", headers=a).status_code == 400
        assert http.get("/v1/memory/ns/a%0Ab", headers=a).status_code == 400
        assert http.get("/v1/memory/ns/" + "k" * 513, headers=a).status_code == 400

        # Body limits: declared and streamed (chunked, no Content-Length).
        big = b'{"value": "' + b"x" * 70_000 + b'"}'
        too_big = http.put(
            "/v1/memory/ns/big", content=big, headers={**a, "Content-Type": "application/json"}
        )
        assert too_big.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b'{"value": "'
            for _ in range(100):
                yield b"x" * 1024
            yield b'"}'

        streamed = http.put(
            "/v1/memory/ns/big", content=chunks(), headers={**a, "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert http.get("/v1/memory/ns/big", headers=a).status_code == 404

        # Session routes.
        for i in range(3):
            appended = http.post("/v1/sessions/chat:1/turns", json={"role": "user", "n": i}, headers=a)
            assert appended.status_code == 201
            assert appended.json()["index"] == i
        turns = http.get("/v1/sessions/chat:1/turns", params={"limit": 2}, headers=a)
        assert [t["n"] for t in turns.json()["turns"]] == [1, 2]
        assert http.get("/v1/sessions/chat:1", headers=a).json()["turn_count"] == 3
        assert http.get("/v1/sessions/chat:1", headers=b).status_code == 404
        assert http.post("/v1/sessions/chat:1:archive", headers=a).json()["archived"] is True
        assert http.delete("/v1/sessions/chat:1", headers=a).status_code == 204
        assert http.get("/v1/sessions/chat:1", headers=a).status_code == 404

        stats = http.get("/v1/stats", headers=a)
        assert stats.status_code == 200
        assert stats.json()["tiers"]["warm"]["writes"] > 0

    # A clean shutdown: SIGINT, exit 0, and the lifespan closed the memory it owned.
    entra_server.process.send_signal(signal.SIGINT)
    assert entra_server.process.wait(timeout=15) == 0
    log = entra_server.log_text()
    assert "tiermem service stopped (memory closed)" in log
    assert "Traceback" not in log
    assert (entra_server.local_dir / "warm.db").exists()  # the embedded tiers were set up under --local-dir


def test_auth_none_serves_loopback_without_a_token(tmp_path: Path) -> None:
    env = {"TIERMEM_TENANT": "dev-tenant"}
    for server in _start(tmp_path, _Launch(env, ["--auth", "none"])):
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            assert http.put("/v1/memory/ns/k", json={"value": "local"}).status_code == 200
            assert http.get("/v1/memory/ns/k").json()["value"] == "local"
            assert "securitySchemes" not in http.get("/openapi.json").json().get("components", {})
        server.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after a graceful shutdown: the process ends by that signal.
        assert server.process.wait(timeout=15) == -signal.SIGTERM
        assert "tiermem service stopped (memory closed)" in server.log_text()
    # The value was written to the tenant from TIERMEM_TENANT, in the embedded warm tier.
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "warm.db") as db:
        tenants = {row[0] for row in db.execute("SELECT tenant FROM tiermem_items")}
    assert tenants == {"dev-tenant"}


def test_a_port_in_use_fails_to_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERMEM_")}
        argv = _argv(["--local-dir", str(tmp_path), "serve", "--auth", "none", "--port", str(port)])
        result = subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == int(Exit.ERROR), result.stderr
    assert b"Traceback" not in result.stderr
    assert b"did not start" in result.stderr


def test_a_failing_startup_exits_with_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the embedded tiers cannot live under a file")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERMEM_")}
    argv = _argv(["--local-dir", str(blocker), "serve", "--auth", "none", "--port", str(free_port())])
    result = subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == int(Exit.ERROR), result.stderr
    assert b"did not start" in result.stderr
