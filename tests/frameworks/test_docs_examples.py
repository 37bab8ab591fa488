"""The examples in docs/langgraph.md and docs/agent-framework.md run as written.

Each ```python block runs in a fresh process in an empty directory. A ``print(...)  # expected``
line must print exactly ``expected``. Blocks that build the client from settings run once on the
embedded default and once with the ``TIERMEM_*`` settings pointing at Redis, the Cosmos DB stand-in
and Azurite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_EXPECT = re.compile(r"^\s*print\(.*\)\s+# (.+)$", re.MULTILINE)


def _blocks() -> list[Any]:
    params = []
    for doc in ("langgraph.md", "agent-framework.md"):
        for i, code in enumerate(_BLOCK.findall((DOCS / doc).read_text(encoding="utf-8"))):
            params.append(pytest.param(code, id=f"{doc}#{i + 1}"))
    return params


def _run(code: str, cwd: Path, env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERMEM_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=clean | env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for expected in _EXPECT.findall(code):
        assert expected in lines, f"expected a line {expected!r}, got {lines}"


@pytest.mark.parametrize("code", _blocks())
def test_example_runs_as_written_on_the_embedded_default(code: str, tmp_path: Path) -> None:
    assert "asyncio.run(main())" in code
    _run(code, tmp_path, {"TIERMEM_LOCAL_DIR": str(tmp_path / ".tiermem")})


@pytest.mark.redis
@pytest.mark.cosmos
@pytest.mark.blob
@pytest.mark.parametrize("code", [p for p in _blocks() if "from_settings" in p.values[0]])
def test_settings_examples_run_on_the_azure_stand_ins(
    code: str, tmp_path: Path, redis_server: Any, cosmos_server: Any, azurite: Any
) -> None:
    env = {
        "TIERMEM_REDIS_URL": redis_server.url,
        "TIERMEM_COSMOS_ENDPOINT": cosmos_server.endpoint,
        "TIERMEM_COSMOS_KEY": cosmos_server.key,
        "TIERMEM_COSMOS_DATABASE": f"docs-{uuid.uuid4().hex[:8]}",
        "TIERMEM_BLOB_CONNECTION_STRING": azurite.connection_string,
        "TIERMEM_BLOB_CONTAINER": f"docs-{uuid.uuid4().hex[:8]}",
    }
    _run(code, tmp_path, env)
