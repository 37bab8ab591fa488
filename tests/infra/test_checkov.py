"""checkov on infra/ reports zero failed checks; every skip is justified inline.

checkov pins many dependencies, so it lives in its own virtualenv and runs as a subprocess, once per
module. Where it is found, in order: $TIERMEM_CHECKOV, <repo>/.tools/checkov/bin/checkov, `checkov` on
PATH. Missing checkov fails the run under CI=true and skips it elsewhere.

Flags: `--framework bicep -o json --compact --skip-download`. Not `--quiet`: with it the JSON report
drops passed and skipped checks, and the skip justifications are asserted below. `--skip-download`
keeps checkov from calling the Prisma Cloud API (no network here; it only fetches guideline links).
PYTHONHASHSEED is pinned because checkov's Bicep variable rendering depends on set ordering: with the
seed free, the same templates have produced different results from run to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra import _bicep as b

CHECKOV_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class CheckovRun:
    """One checkov run over infra/."""

    report: dict[str, Any]
    stderr: str
    returncode: int

    @property
    def summary(self) -> dict[str, Any]:
        return self.report["summary"]  # type: ignore[no-any-return]

    def results(self, kind: str) -> list[dict[str, Any]]:
        return self.report["results"].get(kind, [])  # type: ignore[no-any-return]


def _find_checkov() -> str | None:
    configured = os.environ.get("TIERMEM_CHECKOV")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            pytest.fail(f"TIERMEM_CHECKOV={configured} is not an executable file")
        return configured
    local = b.REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("checkov")


@pytest.fixture(scope="module")
def checkov() -> CheckovRun:
    executable = _find_checkov()
    if executable is None:
        message = "checkov not found (set TIERMEM_CHECKOV, install into .tools/checkov, or put it on PATH)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PYTHONHASHSEED": "0", "LOG_LEVEL": "WARNING"}
    completed = subprocess.run(
        [
            executable,
            "--directory",
            str(b.INFRA_DIR),
            "--framework",
            "bicep",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        cwd=b.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_SECONDS,
        check=False,
    )
    # Exit code 1 means "failed checks", which the tests report in detail; anything else is a crash.
    assert completed.returncode in (0, 1), (
        f"checkov exited {completed.returncode}:\n{completed.stderr[-4000:]}"
    )
    report = json.loads(completed.stdout)
    if isinstance(report, list):  # one entry per framework when several ran
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    assert report.get("check_type") == "bicep", f"unexpected checkov report: {completed.stdout[:2000]}"
    return CheckovRun(report=report, stderr=completed.stderr, returncode=completed.returncode)


def test_checkov_reports_no_failed_checks(checkov: CheckovRun) -> None:
    failed = [
        f"{r['check_id']} {r['resource']} ({r['file_path']}:{r['file_line_range']}): {r['check_name']}"
        for r in checkov.results("failed_checks")
    ]
    assert checkov.summary["failed"] == 0, "\n".join(failed)
    assert checkov.returncode == 0


def test_checkov_parsed_every_template(checkov: CheckovRun) -> None:
    assert checkov.summary["parsing_errors"] == 0, checkov.results("parsing_errors")
    scanned = {
        r["file_path"].lstrip("/")
        for kind in ("passed_checks", "skipped_checks")
        for r in checkov.results(kind)
    }
    for expected in ("modules/cosmos.bicep", "modules/storage.bicep", "modules/keyvault.bicep"):
        assert expected in scanned


@pytest.mark.parametrize(
    "check_id",
    [
        "CKV_AZURE_140",  # Cosmos DB local authentication disabled
        "CKV_AZURE_132",  # Cosmos DB key-based metadata writes disabled
        "CKV_AZURE_3",  # storage: HTTPS only
        "CKV_AZURE_44",  # storage: latest TLS
        "CKV_AZURE_59",  # storage: no public access
        "CKV_AZURE_34",  # blob container private
        "CKV_AZURE_110",  # Key Vault purge protection
        "CKV_AZURE_42",  # Key Vault recoverable
    ],
)
def test_checkov_evaluated_the_key_controls(checkov: CheckovRun, check_id: str) -> None:
    """Zero failures only means something if checkov really evaluated (and passed) these controls."""
    passed = {r["check_id"] for r in checkov.results("passed_checks")}
    assert check_id in passed


_SKIP_COMMENT = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$", re.MULTILINE)


def _inline_skips() -> dict[tuple[str, str], str]:
    skips: dict[tuple[str, str], str] = {}
    for path in b.bicep_files():
        for match in _SKIP_COMMENT.finditer(path.read_text()):
            skips[(match.group(1), path.name)] = match.group(2).strip()
    return skips


def test_every_skip_is_justified_inline(checkov: CheckovRun) -> None:
    inline = _inline_skips()
    for (check_id, file_name), reason in inline.items():
        assert len(reason) >= 40, f"{file_name}: skip of {check_id} needs a real justification"
    reported: set[tuple[str, str]] = set()
    for result in checkov.results("skipped_checks"):
        comment = result["check_result"].get("suppress_comment", "")
        assert comment.strip() and comment != "No comment provided", result["check_id"]
        reported.add((result["check_id"], Path(result["file_path"]).name))
    # Every reported skip comes from an inline comment, and no inline comment is stale.
    assert reported == set(inline), f"reported {sorted(reported)}, inline {sorted(inline)}"
    assert checkov.summary["skipped"] == len(inline)


def test_checkov_errors_only_on_skipped_checks(checkov: CheckovRun) -> None:
    """A check that crashes is neither passed nor failed; only accept that for a check skipped inline."""
    crashed = set(re.findall(r"Failed to run check (CKV2?_[A-Z]+_\d+)", checkov.stderr))
    skipped = {check_id for check_id, _ in _inline_skips()}
    assert crashed <= skipped, f"checks that crashed without an inline skip: {sorted(crashed - skipped)}"
