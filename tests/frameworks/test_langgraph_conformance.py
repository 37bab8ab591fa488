"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance) on TierMemSaver.

Run on the embedded default, on Redis + Cosmos stand-in + Azurite, and on Redis Cluster + Cosmos
stand-in + Azurite. ``passed_all()`` means every capability the suite detects passed, and the test
also requires that all eight were detected (base and extended), so none can silently drop out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from tests.frameworks.conftest import CONFIGS, MakeMemory
from tiermem.langgraph import TierMemSaver


@pytest.mark.parametrize("make_memory", CONFIGS, indirect=True)
async def test_conformance_passes_every_capability(
    make_memory: MakeMemory, request: pytest.FixtureRequest
) -> None:
    memory = make_memory()

    @checkpointer_test(name=f"TierMemSaver[{request.node.callspec.id}]")
    async def saver() -> AsyncIterator[TierMemSaver]:
        instance = TierMemSaver(memory)
        yield instance
        instance.close()

    report = await validate(saver)
    summary = report.to_dict()
    print(
        json.dumps(
            {
                "config": request.node.callspec.id,
                "level": summary["conformance_level"],
                "results": {
                    name: f"{r['tests_passed']} passed, {r['tests_failed']} failed"
                    for name, r in summary["results"].items()
                },
            }
        )
    )
    assert {name for name, r in report.results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    assert report.passed_all(), json.dumps(summary, indent=1)
    assert report.conformance_level() == "FULL"
