"""A process that starts erasing a tenant and dies (SIGKILL) half-way through the cold tier.

Usage: python -m tests.lifecycle.erase_worker '<rig config json>' TENANT

The crash is simulated at a fixed point of the cold erase, after some objects are gone and before the
rest, so the test that runs this can check the state a real crash leaves and that a rerun finishes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from tests.lifecycle.rigs import build, embedded_stores, stand_in_stores


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kind: str) -> None:
    """Make the cold erase die after deleting part of what it should."""
    if kind in ("embedded", "hot-cold"):

        def partial_rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
            files = sorted(p for p in Path(path).rglob("*") if p.is_file())
            for p in files[: max(1, len(files) // 2)]:
                p.unlink()
            _die()

        shutil.rmtree = partial_rmtree  # type: ignore[assignment] # this process only
    else:
        from tiermem.tiers.azure_lifecycle import BlobScopeStore

        original = BlobScopeStore._delete
        calls = {"n": 0}
        one_at_a_time = asyncio.Lock()  # so no request is in flight when the process dies

        async def delete_then_die(self: BlobScopeStore, name: str) -> int:
            async with one_at_a_time:
                deleted = await original(self, name)
                calls["n"] += 1
                if calls["n"] >= 3:  # three blobs are gone; the rest of the page is not
                    _die()
            return deleted

        BlobScopeStore._delete = delete_then_die  # type: ignore[method-assign]


async def main(config: dict[str, Any], tenant: str) -> None:
    kind = config["kind"]
    if kind == "embedded":
        stores = embedded_stores(Path(config["dir"]))
    elif kind == "hot-cold":
        hot, _, cold = embedded_stores(Path(config["dir"]))
        stores = (hot, None, cold)
    else:
        stores = stand_in_stores(config)
    async with build(*stores) as memory:
        _arm(kind)
        await memory.forget(tenant=tenant)
    print("finished without crashing", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2]))
