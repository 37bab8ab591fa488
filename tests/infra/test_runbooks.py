"""Runbooks: one per situation, the four sections, linked from the README, and only real names.

The name checks keep runbooks honest: every `tiermem.*` signal, `TIERMEM_*` setting, `tiermem <command>`
and tiermem exception a runbook mentions must be one the code emits or reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra import _bicep as b

EXPECTED_RUNBOOKS = {
    "redis-out-of-memory.md",
    "redis-entra-token-expiry.md",
    "cosmos-429-hot-partitions.md",
    "blob-throttling.md",
    "connection-pool-exhaustion.md",
    "ttl-not-expiring.md",
    "rbac-denied-after-deployment.md",
    "tier-outage-degraded-mode.md",
    "region-failover-and-restore.md",
    "rotate-secrets.md",
    "erasure-request.md",
    "quota-incident.md",
}
SECTIONS = ("Symptom", "Confirm", "Mitigation", "Verification")
CLI_COMMANDS = {"doctor", "stats", "init", "sweep", "serve", "forget", "usage", "maintain"}
TIERMEM_ERRORS = {
    "TierUnavailableError",
    "ConflictError",
    "ThrottledError",
    "ValueTooLargeError",
    "CorruptValueError",
    "QuotaExceededError",
}
# Azure Storage ResponseType values (metric dimension), not tiermem exceptions.
AZURE_RESPONSE_TYPES = {
    "ServerBusyError",
    "ClientThrottlingError",
    "ClientAccountRequestThrottlingError",
    "ClientAccountBandwidthThrottlingError",
}

RUNBOOKS = sorted(p for p in b.RUNBOOKS_DIR.glob("*.md") if p.name != "README.md")


def test_every_situation_has_a_runbook() -> None:
    assert {p.name for p in RUNBOOKS} == EXPECTED_RUNBOOKS


def test_readme_links_every_runbook() -> None:
    readme = (b.RUNBOOKS_DIR / "README.md").read_text()
    links = set(re.findall(r"\]\(([^)#]+\.md)\)", readme))
    assert links == EXPECTED_RUNBOOKS


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_has_the_four_sections_in_order(path: Path) -> None:
    headings = re.findall(r"^## (.+?)\s*$", path.read_text(), re.MULTILINE)
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS), headings
    assert headings[: len(SECTIONS)] == list(SECTIONS), f"extra sections before the four: {headings}"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_confirm_section_has_commands_or_queries(path: Path) -> None:
    text = path.read_text()
    confirm = text.split("## Confirm", 1)[1].split("## Mitigation", 1)[0]
    blocks = re.findall(r"```(\w+)\n", confirm)
    assert blocks, "Confirm must show queries or commands"
    assert set(blocks) <= {"kusto", "bash", "sql"}


@pytest.mark.parametrize("path", [*RUNBOOKS, b.RUNBOOKS_DIR / "README.md"], ids=lambda p: p.name)
def test_runbook_uses_only_emitted_names(path: Path) -> None:
    text = path.read_text()
    found = re.findall(r"\b(tiermem\.[a-z_]+(?:\.[a-z_]+)*)(\.?)", text)
    signals = {name for name, dot in found if not dot}
    assert signals <= b.EMITTED_NAMES, f"not emitted by tiermem: {sorted(signals - b.EMITTED_NAMES)}"
    # `tiermem.cold.` / `tiermem.cold.*` is a prefix of span names: it must prefix a real one.
    prefixes = {name + "." for name, dot in found if dot}
    for prefix in prefixes:
        assert any(n.startswith(prefix) for n in b.EMITTED_NAMES), f"no emitted name starts with {prefix}"
    settings = set(re.findall(r"\b(?:TIERMEM_[A-Z_]+|AZURE_CLIENT_ID|APPLICATIONINSIGHTS_[A-Z_]+)\b", text))
    assert settings <= b.SETTINGS_ENV_VARS, f"unknown settings: {sorted(settings - b.SETTINGS_ENV_VARS)}"
    errors = set(re.findall(r"\b[A-Z][A-Za-z]*Error\b", text))
    unknown_errors = errors - TIERMEM_ERRORS - AZURE_RESPONSE_TYPES
    assert not unknown_errors, f"unknown exception names: {sorted(unknown_errors)}"
    code = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", text, re.DOTALL))
    commands = set(re.findall(r"(?:^|[\s`\"])tiermem ([a-z][a-z-]*)", code, re.MULTILINE))
    assert commands <= CLI_COMMANDS, f"unknown CLI commands: {sorted(commands - CLI_COMMANDS)}"


@pytest.mark.parametrize("path", [*RUNBOOKS, b.RUNBOOKS_DIR / "README.md"], ids=lambda p: p.name)
def test_runbook_links_resolve(path: Path) -> None:
    for link in re.findall(r"\]\(([^)#:]+)\)", path.read_text()):
        assert (path.parent / link).exists(), f"{path.name}: broken link {link}"


def test_name_checks_reject_invented_names(tmp_path: Path) -> None:
    """The emitted-name check must flag a plausible but invented signal."""
    assert "tiermem.cache.hits" not in b.EMITTED_NAMES
    assert "tiermem.hot.get" in b.EMITTED_NAMES and "tiermem.operations" in b.EMITTED_NAMES
    assert "TIERMEM_REDIS_POOL_SIZE" not in b.SETTINGS_ENV_VARS
