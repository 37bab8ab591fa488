"""``tiermem demo``: a scripted agent session that narrates what each tier does.

Runs on the embedded tiers in a throwaway directory unless Azure/Redis settings (or CLI flags)
point elsewhere; then it works in a unique namespace and deletes what it wrote.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from rich.table import Table

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._keys import make_key
from tiermem._protocols import Tier
from tiermem.cli._common import Exit, Options
from tiermem.cli._render import console, stats_table

__all__ = ["run_demo"]


def _calls(memory: MemoryClient) -> Counter[str]:
    """Tier calls so far, as 'tier.op' -> count (from the client's own stats)."""
    out: Counter[str] = Counter()
    for tier, data in memory.stats().tiers.items():
        for op, lat in data["latency"].items():
            out[f"{tier}.{op}"] = lat["count"]
    return out


def _delta(before: Counter[str], after: Counter[str]) -> str:
    diff = after - before
    return ", ".join(f"{name} x{n}" for name, n in sorted(diff.items())) or "none"


class _Narrator:
    def __init__(self, memory: MemoryClient, json_output: bool) -> None:
        self.memory = memory
        self.rows: list[dict[str, Any]] = []
        self.json = json_output
        self.table = Table(title="tiermem demo: an agent's session", title_justify="left", show_lines=False)
        for col in ("#", "what the agent does", "result", "tier calls"):
            self.table.add_column(col, overflow="fold")

    def step(self, action: str, result: str, before: Counter[str]) -> None:
        calls = _delta(before, _calls(self.memory))
        self.rows.append(
            {"step": len(self.rows) + 1, "action": action, "result": result, "tier_calls": calls}
        )
        self.table.add_row(str(len(self.rows)), action, result, calls)


async def run_demo(options: Options, *, keep: bool) -> Exit:
    settings = options.settings()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    embedded = not (settings.redis_url or settings.uses_azure or settings.blob_connection_string)
    if embedded and "local_dir" not in options.overrides:
        tmp = tempfile.TemporaryDirectory(prefix="tiermem-demo-")
        settings = options.settings(local_dir=Path(tmp.name))
    namespace = f"demo-{secrets.token_hex(4)}"
    try:
        memory = MemoryBuilder.from_settings(settings).with_policy(warm_max_bytes=256 * 1024).build()
        async with memory:
            if not embedded:
                await memory.setup()
            await _session(memory.scoped(tenant="acme", namespace=namespace), memory, options, keep=keep)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return Exit.OK


async def _session(agent: MemoryClient, root: MemoryClient, options: Options, *, keep: bool) -> None:
    n = _Narrator(root, options.json)
    tiers = " + ".join(
        f"{t.value}={root.tier_store(t).info.db_system}"  # type: ignore[union-attr]
        for t in root.tiers
    )
    hot: Any = root.tier_store(Tier.HOT)

    b = _calls(root)
    await agent.set("profile:42", {"name": "Ada", "plan": "pro", "locale": "en-GB"}, ttl=3600)
    n.step("remember the user's profile (ttl 1 h)", "written to the durable tier, hot invalidated", b)

    b = _calls(root)
    entry = await agent.get_entry("profile:42")
    n.step(
        "read the profile", f"served by {entry.tier.value.upper() if entry else 'nobody'}, cached in hot", b
    )
    b = _calls(root)
    entry = await agent.get_entry("profile:42")
    n.step("read the profile again", f"served by {entry.tier.value.upper() if entry else 'nobody'}", b)

    if hot is not None:
        await hot.mdelete([make_key(agent.tenant, agent.namespace, "profile:42")])
    b = _calls(root)
    entry = await agent.get_entry("profile:42")
    n.step(
        "read it after the hot cache lost it",
        f"served by {entry.tier.value.upper() if entry else '-'}, promoted",
        b,
    )
    b = _calls(root)
    entry = await agent.get_entry("profile:42")
    n.step("read it again", f"served by {entry.tier.value.upper() if entry else '-'}", b)

    transcript = "\n".join(
        f"turn {i}: user asked about invoice {1000 + i}; agent explained the late fee policy."
        for i in range(600)
    )
    before_stats = root.stats()
    b = _calls(root)
    await agent.set("transcript:today", transcript)
    after_stats = root.stats()
    raw = after_stats.bytes_in - before_stats.bytes_in
    stored = after_stats.bytes_out - before_stats.bytes_out
    saving = (
        f"gzip {raw:,} -> {stored:,} bytes ({1 - stored / raw:.0%} saved)" if raw else "stored uncompressed"
    )
    n.step("save today's transcript (~47 KB of text)", saving, b)

    b = _calls(root)
    await agent.set("session:2025-01", {"turns": 412, "summary": "billing questions"}, tier=Tier.COLD)
    n.step("archive last year's session (tier=COLD)", "value in cold, pointer in warm, hot invalidated", b)
    b = _calls(root)
    entry = await agent.get_entry("session:2025-01")
    n.step(
        "look up the archived session", f"served by {entry.tier.value.upper() if entry else '-'}, promoted", b
    )

    attachment = os.urandom(400 * 1024)
    b = _calls(root)
    await agent.set("attachment:scan.pdf", attachment, ttl=600)
    n.step("store a 400 KiB binary attachment", "above warm_max_bytes: cold holds it, warm a pointer", b)
    b = _calls(root)
    got = await agent.get("attachment:scan.pdf")
    n.step("read the attachment back", "bytes identical" if got == attachment else "MISMATCH", b)

    facts = {
        f"fact:{i}": {"text": f"user fact {i}", "confidence": round(0.5 + i / 200, 3)} for i in range(100)
    }
    b = _calls(root)
    await agent.mset(facts, ttl=3600)
    n.step("remember 100 facts in one batch (mset)", "validated first, one batch per tier", b)

    if hot is not None:
        await hot.mdelete([make_key(agent.tenant, agent.namespace, f"fact:{i}") for i in range(0, 100, 2)])
    b = _calls(root)
    values = await agent.mget([f"fact:{i}" for i in range(100)] + ["fact:missing"])
    found = sum(v is not None for v in values.values())
    n.step("recall 101 facts, half evicted from hot (mget)", f"{found} found, 1 missing, misses promoted", b)

    b = _calls(root)
    await agent.set("scratchpad", {"thinking": "..."}, ttl=1, tier=Tier.HOT)
    await asyncio.sleep(1.1)
    gone = await agent.get("scratchpad") is None
    n.step("scribble on a 1-second scratchpad (tier=HOT)", "expired on time" if gone else "STILL THERE", b)

    b = _calls(root)
    await agent.delete("profile:42")
    profile = await agent.get("profile:42")
    n.step("forget the profile (delete)", "gone from every tier" if profile is None else "STILL THERE", b)

    other = root.scoped(tenant="globex", namespace=agent.namespace)
    b = _calls(root)
    leaked = await other.get("transcript:today")
    n.step(
        "tenant 'globex' asks for acme's transcript",
        "nothing: tenants are isolated" if leaked is None else "LEAK",
        b,
    )

    if not keep:
        written = ["transcript:today", "session:2025-01", "attachment:scan.pdf", *facts]
        await asyncio.gather(*(agent.delete(key) for key in written))

    stats = root.stats()
    if options.json:
        import json

        import click

        click.echo(json.dumps({"tiers": tiers, "steps": n.rows, "stats": stats.as_dict()}, default=str))
        return
    out = console()
    out.print(
        f"[bold]tiers:[/bold] {tiers}   [bold]tenant:[/bold] acme   [bold]namespace:[/bold] {agent.namespace}"
    )
    out.print(n.table)
    out.print(stats_table(stats))
