"""``MemoryClient``: one API over up to three tiers, with the policy the tiers do not own.

A thin facade: it scopes keys to a tenant and namespace, validates input, opens the public span and
delegates to the engine (``tiermem._engine``): ``reads`` for the read path (hot -> durable -> cold via
pointer, promotion with create-only writes) and ``writes`` for the write path (durable tier first,
then hot; a call that returns has reached the durable tier). See docs/architecture.md and ADR 0003
for ordering and its limits across processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tiermem._breaker import CircuitState
from tiermem._config import DEFAULT_TIER_OPTIONS, Policy, TierOptions
from tiermem._engine.budget import DecodeBudget
from tiermem._engine.core import Engine
from tiermem._engine.hot import ABSENT, MISS
from tiermem._engine.writes import Write, plan
from tiermem._errors import ClientClosedError, InvalidInputError, InvalidScopeError, TierMemError
from tiermem._instrumentation import _NO_SPAN, Stats
from tiermem._keys import validate_key, validate_scope, validate_ttl, validate_user_scope
from tiermem._protocols import TierStore
from tiermem._types import Clock, Entry, MemoryKey, Tier, Value

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from tiermem._collection import Collection
    from tiermem.lifecycle import ForgetReport, MaintainReport, RetentionPolicy, UsageReport

__all__ = [
    "DEFAULT_TIER_OPTIONS",
    "Entry",
    "MemoryClient",
    "Policy",
    "TierOptions",
    "client_clock",
    "internal_view",
]

_KEY_CACHE_SIZE: Final = 1024
"""Validated keys a view remembers before it starts over (bounds its memory, not correctness)."""


class MemoryClient:
    """Three-tier memory behind one small async API. Build it with :class:`tiermem.MemoryBuilder`.

    Keys are scoped by tenant and namespace; :meth:`scoped` returns a view with the same API
    that can only reach its own scope. The client owns the tiers given to the builder and
    closes them in :meth:`aclose`; credentials injected into adapters stay open.
    """

    def __init__(
        self,
        core: Engine,
        *,
        tenant: str,
        namespace: str,
        root: bool = True,
        tenant_locked: bool = False,
        internal: bool = False,
    ) -> None:
        check = validate_scope if internal else validate_user_scope
        self._core = core
        self._tenant = check(tenant, "tenant")
        self._namespace = check(namespace, "namespace")
        self._root = root
        self._tenant_locked = tenant_locked
        self._internal = internal
        self._keys: dict[str, MemoryKey] = {}  # validated keys of this view (see _key)

    # -- scope --------------------------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def policy(self) -> Policy:
        return self._core.policy

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The configured tiers, fastest first."""
        return tuple(g.tier for g in self._core.guards)

    @property
    def tenant_locked(self) -> bool:
        """Whether views of this client may only change namespace, never tenant."""
        return self._tenant_locked

    def scoped(
        self, *, tenant: str | None = None, namespace: str | None = None, lock_tenant: bool = False
    ) -> MemoryClient:
        """A view limited to one tenant/namespace. Closing a view does not close the client.

        Args:
            lock_tenant: the view (and every view made from it) can never switch tenant; hand such a
                view to agents and request handlers so they cannot reach other tenants.

        Raises:
            InvalidScopeError: bad tenant/namespace, a reserved one (starting with ``_``, or the
                ``sessions`` namespace), or a tenant change on a tenant-locked view.
        """
        if self._tenant_locked and tenant is not None and tenant != self._tenant:
            raise InvalidScopeError("this memory view is locked to its tenant", operation="scoped")
        return MemoryClient(
            self._core,
            tenant=self._tenant if tenant is None else tenant,
            namespace=self._namespace if namespace is None else namespace,
            root=False,
            tenant_locked=self._tenant_locked or lock_tenant,
            internal=self._internal and tenant is None and namespace is None,
        )

    def _key(self, key: str) -> MemoryKey:
        # Tenant and namespace were validated when this view was made; only the key is new. Keys
        # validated before are remembered (a bounded map), so a repeated key costs one dict lookup.
        if type(key) is str:
            mk = self._keys.get(key)
            if mk is not None:
                return mk
        mk = MemoryKey(self._tenant, self._namespace, validate_key(key))
        if len(self._keys) >= _KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[mk.key] = mk
        return mk

    def _span(self, name: str, nkeys: int, key: str | None = None) -> AbstractContextManager[Span | None]:
        telemetry = self._core.telemetry
        if not telemetry.tracing:
            return _NO_SPAN
        attrs: dict[str, Any] = {"tiermem.tenant": self._tenant, "tiermem.namespace": self._namespace}
        if nkeys != 1:
            attrs["tiermem.keys"] = nkeys
        if key is not None:
            attrs["tiermem.key"] = telemetry.key_attr(key)
        return telemetry.span(name, attrs)

    # -- reads --------------------------------------------------------------------------------------

    async def get(self, key: str, default: Value = None) -> Value:
        """The value, or ``default`` on a miss. Cascades hot -> warm -> cold and promotes.

        Raises:
            InvalidInputError: the key is invalid (nothing was read).
            TierUnavailableError: the durable tier could not be reached.
            CorruptValueError: the stored value failed its integrity check.
        """
        mk = self._key(key)
        core = self._core
        if not core.telemetry.tracing:  # no span to fill: an in-process hot hit needs no await
            found = core.reads.cached(mk)
            if found is ABSENT:
                return default
            if found is not MISS:
                return found
            entry = await core.reads.get(mk)
            return default if entry is None else entry.value
        with self._span("tiermem.get", 1, key) as span:
            entry = await core.reads.get(mk)
            if span is not None:
                if entry is None:
                    span.set_attribute("tiermem.hit", False)
                else:  # one call: each one takes the span's lock
                    span.set_attributes({"tiermem.hit": True, "tiermem.tier": entry.tier.value})
        return default if entry is None else entry.value

    async def get_entry(self, key: str, *, consistent: bool = False) -> Entry | None:
        """Value plus the tier it came from and the durable ETag.

        Args:
            consistent: skip hot and read the durable tier, so the ETag is current (for ``if_match``).
        """
        mk = self._key(key)
        with self._span("tiermem.get", 1, key):
            return await self._core.reads.get(mk, use_hot=not consistent, promote=not consistent)

    async def exists(self, key: str) -> bool:
        """Whether a live value exists (tombstones and expired values count as absent)."""
        mk = self._key(key)
        with self._span("tiermem.exists", 1, key):
            return await self._core.reads.exists(mk)

    async def mget(self, keys: Sequence[str], *, max_bytes: int | None = None) -> dict[str, Value]:
        """Many values in one round trip per tier; misses map to ``None``; keys keep input order.

        Hot ``MGET`` -> durable batch read (Cosmos ReadMany) for the misses -> cold for pointers,
        then every promotion in one hot batch.

        Args:
            keys: the keys to read.
            max_bytes: a smaller budget than ``Policy.mget_max_bytes`` for this call's decoded values.

        Raises:
            ResultTooLargeError: the values add up to more than the budget (counted before each is
                inflated or downloaded); read fewer keys per call.
        """
        if isinstance(keys, str):
            raise InvalidInputError("mget takes a sequence of keys, not one string")
        budget = self._core.policy.mget_max_bytes
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
                raise InvalidInputError("max_bytes must be a positive int", operation="mget")
            budget = min(budget, max_bytes)
        # Every key is validated before anything is read; duplicates collapse on the key itself
        # (one tenant and namespace), so no key tuple is built or hashed twice.
        out: dict[str, Value] = dict.fromkeys(map(validate_key, keys))
        if not out:
            return out
        tenant, namespace = self._tenant, self._namespace
        mks = [MemoryKey(tenant, namespace, key) for key in out]
        with self._span("tiermem.mget", len(mks)) as span:
            promoted = await self._core.reads.get_many(mks, out, span, DecodeBudget(budget))
            if span is not None:
                span.set_attribute("tiermem.promoted", promoted)
        return out

    # -- writes -------------------------------------------------------------------------------------

    async def set(
        self,
        key: str,
        value: Value,
        *,
        ttl: float | None = None,
        tier: Tier | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        """Store a value. Returns once the durable tier has it; returns the durable ETag if any.

        Args:
            ttl: seconds until the value expires on every tier; ``None`` keeps it until deleted.
            tier: pin to one tier with no write-through (``HOT`` needs a ttl; ``COLD`` for archives).
            if_match: only write if the durable item still has this ETag (see :meth:`get_entry`).
            if_absent: only write if no live value exists (create-only; an expired value does not count).

        Raises:
            InvalidInputError: bad key, value or ttl; ``ValueTooLargeError`` when no tier can hold it.
            ConflictError: ``if_match`` did not match, or ``if_absent`` and the key exists.
            TierUnavailableError: the durable tier could not be reached; nothing is reported written.
        """
        mk = self._key(key)
        ttl_s = validate_ttl(ttl)
        core = self._core
        writes = core.writes
        with self._span("tiermem.set", 1, key) as span:
            now = core.clock()
            record = writes.encode(value, None if ttl_s is None else now + ttl_s, mk)
            write = plan(
                mk, record, tier, ttl_s, core.layout, core.policy, if_match=if_match, if_absent=if_absent
            )
            if span is not None:
                span.set_attribute("tiermem.bytes", record.size)
                span.set_attribute("tiermem.compressed", record.compressed)
            return await writes.write(write, now, if_match, if_absent)

    async def mset(
        self,
        items: Mapping[str, Value] | Sequence[tuple[str, Value]],
        *,
        ttl: float | None = None,
        tier: Tier | None = None,
    ) -> None:
        """Store many values. Every item is validated before anything is written.

        Not atomic across keys (Cosmos has no cross-partition transaction).

        Raises:
            InvalidInputError: some item is invalid; nothing was written.
            BatchWriteError: some durable writes failed; ``written`` and ``failed`` say which.
        """
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        ttl_s = validate_ttl(ttl)
        core = self._core
        writes = core.writes
        with self._span("tiermem.mset", len(pairs)) as span:
            now = core.clock()
            expires_at = None if ttl_s is None else now + ttl_s
            planned: dict[MemoryKey, Write] = {}
            encode, layout, policy = writes.encode, core.layout, core.policy
            tenant, namespace = self._tenant, self._namespace
            for key, value in pairs:  # validate, encode and plan each item in one pass
                mk = MemoryKey(tenant, namespace, validate_key(key))
                planned[mk] = plan(mk, encode(value, expires_at, mk), tier, ttl_s, layout, policy)
            if not planned:
                return
            if span is not None:
                span.set_attribute("tiermem.bytes", sum(w.record.size for w in planned.values()))
            await writes.write_many(list(planned.values()), now)

    async def delete(self, key: str) -> None:
        """Remove the key from every tier. Idempotent: deleting a missing key succeeds.

        A short hot tombstone goes first, so a read racing this delete cannot promote the old value.
        """
        mk = self._key(key)
        with self._span("tiermem.delete", 1, key):
            await self._core.writes.delete(mk, self._core.clock())

    # -- lifecycle and operations ---------------------------------------------------------------------

    async def setup(self) -> None:
        """Create what every tier needs (database, container, table). Idempotent."""
        for guard in self._core.guards:
            await guard.setup()

    async def ping(self) -> dict[Tier, BaseException | None]:
        """Ask every tier to answer; map each tier to ``None`` (fine) or the error it raised."""
        results: dict[Tier, BaseException | None] = {}
        for guard in self._core.guards:
            try:
                await guard.ping()
                results[guard.tier] = None
            except TierMemError as exc:
                results[guard.tier] = exc
        return results

    def stats(self) -> Stats:
        """A snapshot: hit rate and latency percentiles per tier, promotions, errors, breaker states."""
        core = self._core
        return core.telemetry.snapshot(circuits=core.circuits(), dirty_keys=len(core.hot.dirty))

    def tier_store(self, tier: Tier) -> TierStore | None:
        """The adapter behind a tier (for operations such as ``sweep`` and ``purge``).

        Raises:
            InvalidScopeError: this view is tenant-locked: a tier store reaches every tenant's data.
        """
        if self._tenant_locked:
            raise InvalidScopeError(
                "a tenant-locked view cannot hand out tier stores: they reach every tenant",
                tier=tier,
                operation="tier_store",
            )
        guard = self._core.guard(tier)
        return None if guard is None else guard.store

    def circuit_state(self, tier: Tier) -> CircuitState | None:
        guard = self._core.guard(tier)
        return None if guard is None else guard.breaker.state

    @property
    def closed(self) -> bool:
        return self._core.closed

    async def aclose(self) -> None:
        """Close the tiers this client owns. Idempotent; closing a scoped view does nothing."""
        if self._root:
            await self._core.aclose()

    async def __aenter__(self) -> Self:
        if self.closed:
            raise ClientClosedError("MemoryClient is closed", operation="__aenter__")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- collections and listing (tiermem._collection; docs/adr/0012) ---------------------------------

    def collection(self, name: str) -> Collection:
        """A named, ordered set of items in this view's tenant and namespace (no I/O).

        Raises:
            InvalidKeyError: the name is empty, longer than 128 UTF-8 bytes or holds control characters.
            ConfigurationError: the durable tier cannot hold collections.
        """
        from tiermem._collection import Collection, Scope, backend_for, validate_name

        scope = Scope(self._tenant, self._namespace, validate_name(name))
        return Collection(backend_for(self._core), scope)

    def collections(self, *, prefix: str = "") -> AsyncIterator[str]:
        """Names of this namespace's collections that hold items (a cross-partition query on Cosmos)."""
        from tiermem._collection._listing import collection_names

        return collection_names(self._core, self._tenant, self._namespace, prefix)

    def keys(self, *, prefix: str = "") -> AsyncIterator[str]:
        """Every stored key-value key of this namespace starting with ``prefix``, in no promised order
        (an admin call: cross-partition on Cosmos; expired keys not yet swept are included)."""
        from tiermem._collection._listing import kv_keys

        return kv_keys(self._core, self._tenant, self._namespace, prefix)

    # -- data lifecycle and governance (tiermem.lifecycle; docs/adr/0014) -----------------------------

    async def forget(
        self, *, tenant: str | None = None, namespace: str | None = None, dry_run: bool = False
    ) -> ForgetReport:
        """Erase a scope from every tier: key-value items, collection items, sessions, large values and
        their old versions, hot copies, tombstones and fences. Idempotent and resumable (rerun after a
        crash to finish). With no arguments, erases this view's namespace; ``tenant=`` alone erases a
        whole tenant; ``dry_run`` only counts.

        Raises:
            InvalidScopeError: a bad tenant/namespace, or another tenant on a tenant-locked view.
        """
        from tiermem.lifecycle._erasure import forget_scope

        scope_tenant: str = self._tenant if tenant is None else validate_scope(tenant, "tenant")
        scope_ns = namespace if tenant is not None or namespace is not None else self._namespace
        if self._tenant_locked and scope_tenant != self._tenant:
            raise InvalidScopeError("this memory view is locked to its tenant", operation="forget")
        return await forget_scope(self._core, scope_tenant, scope_ns, dry_run=dry_run)

    async def usage(self, *, tenant: str | None = None, namespace: str | None = None) -> UsageReport:
        """Items and bytes per tier, collections and oldest/newest write, per tenant and namespace, read
        from paged raw listings of every tier (an admin call: cross-partition on Cosmos). ``tenant=None``
        on a root client reports every tenant; a tenant-locked view reports its own tenant only."""
        from tiermem.lifecycle._usage import compute_usage

        if self._tenant_locked and tenant not in (None, self._tenant):
            raise InvalidScopeError("this memory view is locked to its tenant", operation="usage")
        scope = self._tenant if self._tenant_locked or (not self._root and tenant is None) else tenant
        return await compute_usage(self._core, scope, namespace)

    async def maintain(
        self,
        *,
        retention: RetentionPolicy | None = None,
        now: float | None = None,
        dry_run: bool = False,
        sweep: bool = True,
        orphan_grace: float = 3600.0,
    ) -> MaintainReport:
        """Apply retention (``archive_after``: warm -> cold behind a pointer; ``expire_after``: delete),
        sweep expired cold objects and reconcile quota counters. Safe beside live writers: every change
        is conditional on the ETag it listed. A tenant-locked view maintains its own tenant only.

        Args:
            retention: the rules (default: the client's, from the builder or settings).
            now: the time to judge ages and expiry by (default: the client's clock).
            sweep: also delete cold objects whose expiry has passed (``tiermem sweep``).
            orphan_grace: delete cold versions no warm pointer names once they are this old (real clock).
        """
        from tiermem.lifecycle._maintain import run_maintenance

        core = self._core
        return await run_maintenance(
            core,
            retention=retention if retention is not None else core.governance.retention,
            tenant=self._tenant if self._tenant_locked else None,
            now=core.clock() if now is None else now,
            dry_run=dry_run,
            sweep=sweep and not self._tenant_locked,
            orphan_grace=orphan_grace,
        )

    async def reconcile_quotas(self, *, tenant: str | None = None) -> bool:
        """Recount a tenant's usage into its quota counters (default: this view's tenant); ``False`` if
        another reconcile of that tenant is running."""
        from tiermem.lifecycle._usage import reconcile

        if self._tenant_locked and tenant not in (None, self._tenant):
            raise InvalidScopeError("this memory view is locked to its tenant", operation="reconcile_quotas")
        name = self._tenant if tenant is None else validate_scope(tenant, "tenant")
        return await reconcile(self._core, name)


def internal_view(memory: MemoryClient, namespace: str) -> MemoryClient:
    """A view of ``memory`` in ``namespace`` even if it is reserved: for tiermem's own structures only.

    ``ConversationStore`` keeps its heads and chunks in the reserved ``sessions`` namespace this
    way, where plain ``scoped`` views (and so the HTTP memory routes) cannot write. A function of this
    private module, not a method, so it is no part of the client's public surface.
    """
    return MemoryClient(
        memory._core,
        tenant=memory.tenant,
        namespace=namespace,
        root=False,
        tenant_locked=memory.tenant_locked,
        internal=True,
    )


def client_clock(memory: MemoryClient) -> Clock:
    """The wall clock ``memory`` judges expiry by (``MemoryBuilder.with_clock``; ``time.time`` by default)."""
    return memory._core.clock
