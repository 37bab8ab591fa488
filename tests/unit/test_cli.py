"""The CLI in-process (click's CliRunner): exit codes, --json output, one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tiermem.cli import cli
from tiermem.cli._common import Exit


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in (
        "TIERMEM_REDIS_URL",
        "TIERMEM_COSMOS_ENDPOINT",
        "TIERMEM_BLOB_ACCOUNT_URL",
        "TIERMEM_KEY_VAULT_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--local-dir", str(tmp_path / "mem"), *args], catch_exceptions=False)

    return invoke


def _json(result: Result) -> Any:
    return json.loads(result.output.strip().splitlines()[-1])


def test_set_get_del_round_trip(run: Any) -> None:
    assert run("set", "profile:42", '{"name": "Ada"}').exit_code == Exit.OK
    got = run("--json", "get", "profile:42")
    assert got.exit_code == Exit.OK
    assert _json(got) == {"key": "profile:42", "found": True, "value": {"name": "Ada"}, "tier": "warm"}
    assert run("get", "profile:42").output.strip() == '{"name": "Ada"}'
    assert run("del", "profile:42").exit_code == Exit.OK
    missing = run("--json", "get", "profile:42")
    assert missing.exit_code == Exit.NOT_FOUND
    assert _json(missing) == {"key": "profile:42", "found": False}


def test_raw_strings_ttl_and_tiers(run: Any) -> None:
    assert run("set", "--raw", "--ttl", "60", "note", "not json {").exit_code == Exit.OK
    assert run("get", "note").output.strip() == "not json {"
    assert run("set", "--tier", "cold", "archive", '"old"').exit_code == Exit.OK
    assert _json(run("--json", "get", "archive"))["tier"] == "cold"


def test_mset_mget_json(run: Any) -> None:
    assert run("mset", "a=1", "b=[1,2]", 'c="x"').exit_code == Exit.OK
    result = run("--json", "mget", "a", "b", "c", "missing")
    assert _json(result) == {"a": 1, "b": [1, 2], "c": "x", "missing": None}
    human = run("mget", "a", "missing")
    assert "a\t1" in human.output and "missing\t(missing)" in human.output


def test_tenant_and_namespace_scope(run: Any) -> None:
    assert run("--tenant", "acme", "set", "k", "1").exit_code == Exit.OK
    assert run("--tenant", "globex", "get", "k").exit_code == Exit.NOT_FOUND
    assert run("--tenant", "acme", "--namespace", "other", "get", "k").exit_code == Exit.NOT_FOUND
    assert run("--tenant", "acme", "get", "k").exit_code == Exit.OK


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("set", "", "1"), Exit.INVALID_INPUT),
        (("set", "k", "1", "--ttl", "-1"), Exit.INVALID_INPUT),
        (("--tenant", "a/b", "get", "k"), Exit.INVALID_INPUT),
        (("set", "bad\x01key", "1"), Exit.INVALID_INPUT),
        (("set", "k", "{not json"), Exit.USAGE),
        (("mset", "no-equals-sign"), Exit.USAGE),
    ],
)
def test_errors_are_one_line_with_typed_exit_codes(run: Any, args: tuple[str, ...], code: Exit) -> None:
    result = run(*args)
    assert result.exit_code == code
    assert "Traceback" not in result.output


def test_error_as_json(run: Any) -> None:
    result = run("--json", "set", "", "1")
    assert result.exit_code == Exit.INVALID_INPUT
    assert _json(result)["error"] == "InvalidKeyError"


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "--local-dir", str(tmp_path), "set", "", "1"])
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "InvalidKeyError"


def test_init_sweep_stats_doctor(run: Any) -> None:
    assert _json(run("--json", "init"))["initialized"] == ["hot", "warm", "cold"]
    assert run("set", "--ttl", "0.01", "--tier", "cold", "old", "1").exit_code == Exit.OK
    import time

    deadline = time.monotonic() + 5
    removed = 0
    while removed == 0 and time.monotonic() < deadline:
        removed = _json(run("--json", "sweep"))["removed"]
    assert removed == 1
    stats = _json(run("--json", "stats"))
    assert stats["tiers"]["hot"]["hits"] > 0 and stats["tiers"]["warm"]["writes"] > 0
    doctor = run("--json", "doctor")
    assert doctor.exit_code == Exit.OK
    report = _json(doctor)
    assert report["verdict"] == "healthy"
    assert set(report["tiers"]) == {"hot", "warm", "cold"} and all(t["ok"] for t in report["tiers"].values())
    assert "HEALTHY" in run("doctor").output


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_doctor_degraded_when_hot_is_down(run: Any) -> None:
    result = run("--json", "--redis", f"redis://127.0.0.1:{_dead_port()}/0", "doctor", "--timeout", "5")
    assert result.exit_code == Exit.NOT_FOUND  # 1 = degraded: reads fall through to warm
    report = _json(result)
    assert report["verdict"] == "degraded"
    assert report["tiers"]["hot"]["ok"] is False and "TierUnavailableError" in report["tiers"]["hot"]["error"]
    assert report["tiers"]["warm"]["ok"] is True


def test_demo_runs_and_reports(run: Any) -> None:
    result = run("--json", "demo")
    assert result.exit_code == Exit.OK
    report = _json(result)
    results = {step["action"]: step["result"] for step in report["steps"]}
    assert results["read the profile"] == "served by WARM, cached in hot"
    assert results["read the profile again"] == "served by HOT"
    assert results["read it after the hot cache lost it"] == "served by WARM, promoted"
    assert results["look up the archived session"] == "served by COLD, promoted"
    assert results["read the attachment back"] == "bytes identical"
    assert results["forget the profile (delete)"] == "gone from every tier"
    assert "LEAK" not in json.dumps(report) and "MISMATCH" not in json.dumps(report)
    assert report["stats"]["promotions"] > 0
    human = run("demo")
    assert human.exit_code == Exit.OK and "tiermem stats" in human.output
