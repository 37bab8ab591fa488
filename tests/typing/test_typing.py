"""``mypy --strict`` on user code: wrong builder arguments and misspelt tier methods are caught."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]
USER_CODE = Path(__file__).with_name("user_code.py")
_EXPECTED = re.compile(r"#\s*error:\s*([\w-]+)")
_REPORTED = re.compile(r"^[^:]+:(\d+): error: .*\[([\w-]+)\]$")


def test_mypy_flags_exactly_the_marked_lines() -> None:
    expected = {
        (number, match.group(1))
        for number, line in enumerate(USER_CODE.read_text().splitlines(), start=1)
        if (match := _EXPECTED.search(line))
    }
    assert len(expected) == 8
    stdout, stderr, _ = api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--show-error-codes",
            "--no-pretty",
            str(USER_CODE),
        ]
    )
    reported = {
        (int(match.group(1)), match.group(2))
        for line in stdout.splitlines()
        if (match := _REPORTED.match(line.strip()))
    }
    assert reported == expected, stdout + stderr
