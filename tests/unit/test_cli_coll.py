"""``tiermem coll ...`` in-process: list/get/put/del/drop with human and --json output, typed exit codes."""

from __future__ import annotations

import json
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


def test_put_list_get_del_drop(run: Any) -> None:
    for step in range(1, 6):
        args = ["coll", "put", "thread-42", f"c|{step:05d}", json.dumps({"step": step})]
        assert run(*args, "--attrs", json.dumps({"step": step})).exit_code == Exit.OK
    put = run("--json", "coll", "put", "thread-42", "note", "hello", "--raw", "--if-absent")
    assert _json(put)["stored"] is True and _json(put)["etag"]
    assert run("coll", "put", "thread-42", "note", "again", "--raw", "--if-absent").exit_code == Exit.CONFLICT

    listed = _json(run("--json", "coll", "list", "thread-42", "--prefix", "c|", "--reverse", "--limit", "2"))
    assert [i["key"] for i in listed["items"]] == ["c|00005", "c|00004"]
    filtered = run("coll", "list", "thread-42", "--where", '{"step": {"$lt": 3}}')
    assert [line.split("\t")[0] for line in filtered.output.splitlines()] == ["c|00001", "c|00002"]
    assert _json(run("--json", "coll", "list")) == {"collections": ["thread-42"]}

    got = _json(run("--json", "coll", "get", "thread-42", "c|00003"))
    assert (got["value"], got["attrs"]) == ({"step": 3}, {"step": 3})
    assert run("coll", "get", "thread-42", "note").output.strip() == "hello"
    assert run("coll", "del", "thread-42", "note", "nope").exit_code == Exit.OK
    assert run("--json", "coll", "get", "thread-42", "note").exit_code == Exit.NOT_FOUND

    assert _json(run("coll", "drop", "thread-42", "--json")) == {"collection": "thread-42", "dropped": 5}
    assert _json(run("--json", "coll", "list")) == {"collections": []}


def test_bad_input_is_a_typed_error(run: Any) -> None:
    assert run("coll", "put", "c", "k", "1", "--attrs", '{"a b": 1}').exit_code == Exit.INVALID_INPUT
    assert run("coll", "list", "c", "--where", '{"x": {"$regex": "a"}}').exit_code == Exit.INVALID_INPUT
    assert run("coll", "list", "c", "--where", "{").exit_code == Exit.USAGE
