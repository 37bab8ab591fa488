"""The CLI in-process (click's CliRunner): exit codes, --json output, one-line errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tiermem import InvalidKeyError
from tiermem.cli import cli
from tiermem.cli._common import Exit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in list(os.environ):
        if var.startswith("TIERMEM_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)  # no ./.env from the checkout
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:  # noqa: A002 - CliRunner's name
        return runner.invoke(
            cli, ["--local-dir", str(tmp_path / "mem"), *args], catch_exceptions=False, input=input
        )

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
    error = _json(result)["error"]
    assert error["code"] == "invalid_input" and error["type"] == "InvalidKeyError"


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


# -- issue 13 items 13-15: settings mistakes are exit 8 with one line (JSON under --json) -------------


def test_a_misspelt_variable_fails_with_a_suggestion(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_COSMOS_ENDPIONT", "https://acct.documents.azure.com:443/")
    result = run("--json", "doctor")
    assert result.exit_code == Exit.CONFIG
    error = _json(result)["error"]
    assert error["code"] == "configuration_error"
    assert "did you mean TIERMEM_COSMOS_ENDPOINT?" in error["message"]
    human = run("get", "k")
    assert human.exit_code == Exit.CONFIG and "Traceback" not in human.output
    assert "error: ConfigurationError: unknown setting TIERMEM_COSMOS_ENDPIONT" in human.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIERMEM_HOT_TTL", "5m"),
        ("TIERMEM_REDIS_AUTH", "managed-identity"),
        ("TIERMEM_BLOB_ACCOUNT_URL", "http://acct.blob.core.windows.net"),
    ],
)
def test_bad_values_exit_8_with_json(
    run: Any, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    for args in (("--json", "get", "k"), ("--json", "doctor"), ("--json", "stats"), ("--json", "demo")):
        result = run(*args)
        assert result.exit_code == Exit.CONFIG, (args, result.output)
        assert _json(result)["error"]["message"].startswith(f"{name}: "), args


def test_require_azure_refuses_the_embedded_default(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_REQUIRE_AZURE", "true")
    result = run("--json", "doctor")
    assert result.exit_code == Exit.CONFIG
    assert "refusing to fall back to embedded tiers" in _json(result)["error"]["message"]


def test_doctor_prints_its_local_paths(run: Any, tmp_path: Path) -> None:
    report = _json(run("--json", "doctor"))
    expected = {"warm": str(tmp_path / "mem" / "warm.db"), "cold": str(tmp_path / "mem" / "cold")}
    assert report["local_paths"] == expected
    assert report["tiers"]["warm"]["path"] == expected["warm"]
    human = run("doctor").output
    assert f"warm tier files: {expected['warm']}" in human and f"cold tier files: {expected['cold']}" in human


def test_env_file_option_and_dotenv(run: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "acme.env"
    env_file.write_text("TIERMEM_TENANT=acme\n", encoding="utf-8")
    assert run("--env-file", str(env_file), "set", "k", "1").exit_code == Exit.OK
    assert run("get", "k").exit_code == Exit.NOT_FOUND  # tenant 'default'
    assert run("--tenant", "acme", "get", "k").exit_code == Exit.OK
    (tmp_path / ".env").write_text("TIERMEM_TENANT=acme\n", encoding="utf-8")  # ./.env, read by default
    assert run("get", "k").exit_code == Exit.OK
    (tmp_path / ".env").write_text("TIERMEM_TENANTT=acme\n", encoding="utf-8")
    assert run("get", "k").exit_code == Exit.CONFIG


def test_the_example_env_file_sourced_by_a_shell_runs_doctor(tmp_path: Path) -> None:
    """``set -a; . ./.env.example; set +a; tiermem doctor`` on a fresh clone (a real shell and process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERMEM_")}
    script = f'set -a; . "{REPO / ".env.example"}"; set +a; exec "{sys.executable}" -m tiermem --json doctor'
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["verdict"] == "healthy"
    assert report["local_paths"]["warm"] == str(tmp_path / ".tiermem" / "warm.db")


# -- issue 13 item 19: the CLI's rough edges ------------------------------------------------------------


def test_options_after_the_subcommand(run: Any) -> None:
    assert run("set", "k", '{"a": 1}', "--json").output.strip().startswith("{")
    got = run("get", "k", "--json")
    assert _json(got) == {"key": "k", "found": True, "value": {"a": 1}, "tier": "warm"}
    error = run("set", "", "1", "--json")
    assert error.exit_code == Exit.INVALID_INPUT and _json(error)["error"]["code"] == "invalid_input"
    with pytest.raises(InvalidKeyError):
        CliRunner().invoke(cli, ["set", "", "1", "--debug"], catch_exceptions=False)


def test_version(run: Any) -> None:
    result = run("--version")
    assert result.exit_code == Exit.OK
    assert re.fullmatch(r"tiermem, version \d+\.\d+\.\d+\S*", result.output.strip())


def test_set_reads_the_value_from_stdin(run: Any) -> None:
    assert run("set", "doc", "-", input='{"pages": [1, 2]}\n').exit_code == Exit.OK
    assert _json(run("--json", "get", "doc"))["value"] == {"pages": [1, 2]}
    assert run("set", "--raw", "note", "-", input="line one\nline two\n").exit_code == Exit.OK
    assert _json(run("--json", "get", "note"))["value"] == "line one\nline two\n"


def test_del_reports_how_many_keys_existed(run: Any) -> None:
    run("mset", "a=1", "b=2")
    result = run("--json", "del", "a", "b", "never")
    assert _json(result) == {"deleted": ["a", "b", "never"], "existed": ["a", "b"], "count": 2}
    assert run("del", "a", "never").output.strip() == "deleted 0 key(s) (2 did not exist)"


def test_tables_are_not_folded_when_piped(run: Any) -> None:
    dead = f"redis://127.0.0.1:{_dead_port()}/0"
    error = _json(run("--json", "--redis", dead, "doctor", "--timeout", "5"))["tiers"]["hot"]["error"]
    human = run("--redis", dead, "doctor", "--timeout", "5").output
    assert error in human  # one row, one line: not cut to 80 columns
    assert max(len(line) for line in human.splitlines()) > 80


def test_json_errors_have_the_http_api_shape(run: Any) -> None:
    from tiermem.service._errors import translate
    from tiermem.service._models import ErrorBody

    result = run("--json", "set", "", "1")
    document = _json(result)
    assert set(document) == {"error"}
    body = ErrorBody.model_validate(document)
    assert body.error.code == translate(InvalidKeyError("x")).code == "invalid_input"
    assert document["error"]["type"] == "InvalidKeyError" and document["error"]["exit_code"] == 3


def test_every_exit_code_is_documented() -> None:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in Exit:
        assert re.search(rf"^\| {code.value} \| `{code.name}` \| \S", text, re.MULTILINE), code


def test_bench_outside_a_checkout_says_what_to_do(
    run: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tiermem.cli import _bench

    for name in [n for n in sys.modules if n.startswith("benchmarks.")]:  # loaded by other tests
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # not importable, as from a wheel
    monkeypatch.setattr(_bench, "checkout_root", lambda: tmp_path)
    result = run("bench", "--quick")
    assert result.exit_code == Exit.CONFIG
    assert "not part of the installed package" in result.output
    assert "pip install -e '.[dev]' && tiermem bench --quick" in result.output


# -- issue 13 item 18 (CLI part): a long wait shows what the command waits for -----------------------


async def test_a_slow_command_shows_a_spinner_and_a_quick_one_does_not() -> None:
    import asyncio
    import io

    from rich.console import Console

    from tiermem.cli._common import Options, waiting

    def terminal() -> tuple[Console, io.StringIO]:
        out = io.StringIO()
        return Console(file=out, force_terminal=True, width=100), out

    options = Options(json_output=False, debug=False, overrides={})
    slow, slow_out = terminal()
    async with waiting(options, "waiting for the tiers", delay=0.01, console=slow):
        await asyncio.sleep(0.3)
    assert "waiting for the tiers" in slow_out.getvalue()
    quick, quick_out = terminal()
    async with waiting(options, "waiting for the tiers", delay=5, console=quick):
        pass
    assert "waiting for the tiers" not in quick_out.getvalue()
    silent, silent_out = terminal()
    async with waiting(Options(json_output=True, debug=False, overrides={}), "x", delay=0, console=silent):
        await asyncio.sleep(0.05)
    assert silent_out.getvalue() == ""
