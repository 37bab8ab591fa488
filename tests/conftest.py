"""Test-suite wiring: real service fixtures, and the ``azure_live`` opt-in."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.services.fixtures"]

# The Azure Monitor exporter also runs its own usage exporters (statsbeat to Microsoft, "customer
# sdkstats" to the test's loopback ingestion server). The latter outlives the server and, at exit,
# ended every run with "Retrying due to server request error". The tests assert what tiermem exports,
# not the exporter's self-reporting, so both are off for the whole run.
os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
os.environ.setdefault("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need real Azure run only with TIERMEM_AZURE_LIVE=1 (see docs/testing.md)."""
    if os.environ.get("TIERMEM_AZURE_LIVE") == "1":
        return
    skip = pytest.mark.skip(
        reason="needs a real Azure subscription: set TIERMEM_AZURE_LIVE=1 (docs/testing.md)"
    )
    for item in items:
        if "azure_live" in item.keywords:
            item.add_marker(skip)
