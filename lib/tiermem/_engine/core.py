"""``Engine``: what a client and its scoped views share: tiers, policy, codec, telemetry, lifecycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from tiermem._codec import Codec
from tiermem._config import DEFAULT_TIER_OPTIONS, Policy, TierOptions
from tiermem._engine.epoch import HotEpoch
from tiermem._engine.guard import Guard, HotGuard, Lifecycle
from tiermem._engine.hot import HotCache
from tiermem._engine.large import LargeValues
from tiermem._engine.reads import Reads
from tiermem._engine.writes import Layout, Writes
from tiermem._instrumentation import Telemetry
from tiermem._lifecycle import ClientState, Closable
from tiermem._protocols import ColdMemory, HotMemory, TierStore, WarmMemory
from tiermem._types import Clock, Tier
from tiermem.lifecycle._governance import Governance

__all__ = ["Engine"]

_S = TypeVar("_S", bound=TierStore)


class Engine:
    """The tiers behind their guards, and the read and write paths over them."""

    def __init__(
        self,
        *,
        hot: HotMemory | None,
        warm: WarmMemory | None,
        cold: ColdMemory | None,
        policy: Policy,
        tier_options: Mapping[Tier, TierOptions],
        owned: Sequence[Closable],
        clock: Clock,
        telemetry: Telemetry,
        governance: Governance | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.telemetry = telemetry
        self.life = Lifecycle()
        self.codec = Codec(
            compress_min_bytes=policy.compress_min_bytes,
            compress_level=policy.compress_level,
            max_value_bytes=policy.max_value_bytes,
        )
        hot_guard = (
            None
            if hot is None
            else HotGuard(
                Tier.HOT,
                hot,
                tier_options.get(Tier.HOT, DEFAULT_TIER_OPTIONS[Tier.HOT]),
                self.telemetry,
                self.life,
            )
        )
        warm_guard = self._guard(Tier.WARM, warm, tier_options)
        cold_guard = self._guard(Tier.COLD, cold, tier_options)
        durable: Guard[TierStore] | None = warm_guard if warm_guard is not None else cold_guard
        self.guards: list[Guard[TierStore]] = [
            g for g in (hot_guard, warm_guard, cold_guard) if g is not None
        ]
        self.layout = Layout(hot is not None, warm is not None, cold is not None)
        self.owned = list(owned)
        self.epoch = HotEpoch(durable, interval=policy.coherence_interval)
        self.hot = HotCache(
            hot_guard,
            self.epoch,
            durable=durable is not None,
            policy=policy,
            codec=self.codec,
            clock=clock,
            telemetry=telemetry,
        )
        large = LargeValues(warm_guard, cold_guard)
        self.reads = Reads(self.hot, durable, large, codec=self.codec, clock=clock, telemetry=telemetry)
        self.writes = Writes(self.hot, warm_guard, durable, large, codec=self.codec, telemetry=telemetry)
        self.governance = (governance or Governance(record_keys=policy.record_keys)).bind(self)
        self.governance.reconciler = self._reconcile
        self.writes.governance = self.governance
        self.writes.clock = clock
        telemetry.register_gauges(self)

    def _guard(self, tier: Tier, store: _S | None, options: Mapping[Tier, TierOptions]) -> Guard[_S] | None:
        if store is None:
            return None
        return Guard(tier, store, options.get(tier, DEFAULT_TIER_OPTIONS[tier]), self.telemetry, self.life)

    @property
    def closed(self) -> bool:
        return self.life.state is ClientState.CLOSED

    def guard(self, tier: Tier) -> Guard[TierStore] | None:
        for guard in self.guards:
            if guard.tier is tier:
                return guard
        return None

    async def _reconcile(self, tenant: str) -> None:
        from tiermem.lifecycle._usage import reconcile

        await reconcile(self, tenant)

    # -- observability callbacks -------------------------------------------------------------------

    def gauge_circuits(self) -> dict[str, int]:
        """Breaker states for the ``tiermem.circuit.state`` gauge (nothing once closed)."""
        if self.closed:
            return {}
        return {g.tier.value: int(g.breaker.state) for g in self.guards}

    def gauge_dirty(self) -> int:
        return 0 if self.closed else len(self.hot.dirty)

    def circuits(self) -> dict[str, str]:
        return {g.tier.value: g.breaker.state.name.lower().replace("_", "-") for g in self.guards}

    async def aclose(self) -> None:
        """Close what the client owns, tiers first, then the credentials they used; raise the first error."""
        if self.closed:
            return
        await self.hot.aclose()  # background invalidations and epoch reads end before the tiers close
        self.life.state = ClientState.CLOSED
        errors: list[BaseException] = []
        for resource in reversed(self.owned):
            try:
                await resource.aclose()
            except Exception as exc:  # noqa: BLE001 - close everything we own, then re-raise the first
                errors.append(exc)
        if errors:
            raise errors[0]
