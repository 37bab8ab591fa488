"""An optional in-process L1 in front of the Redis hot tier, kept coherent by Redis itself.

``NearCache`` implements :class:`tiermem.HotMemory` around a :class:`RedisHotMemory`, so the engine
does not know it is there. Records read from Redis are kept in a bounded LRU; Redis tells this
process which keys changed through ``CLIENT TRACKING`` in broadcast mode on one dedicated
connection (RESP2, ``REDIRECT`` to itself, subscribed to ``__redis__:invalidate``). The design, the
staleness bound and the fallbacks are in docs/adr/0010-near-cache.md; in short:

* L1 serves a record only while the channel has confirmed, within ``max_staleness`` seconds, that
  every invalidation sent before then was processed (a ``PING`` round trip on the channel, one
  outstanding at a time). A hit never misses a write that Redis executed ``max_staleness`` seconds
  or more before it; usually it misses none older than the push latency (sub-millisecond nearby).
* A read fills L1 only if no invalidation (or other completed read) of its key arrived while it
  was in flight and the channel stayed the same connection, so a reply racing a write cannot leave
  the old value behind.
* When the channel drops, L1 is cleared and stays off until tracking is re-established; when the
  server refuses tracking, L1 stays off and one warning is logged. Redis Cluster is refused.
* Writes, deletes and swaps through this object drop their keys from L1 before and after they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tiermem._codec import CorruptBatchError, Record
from tiermem._errors import ConfigurationError, TierUnavailableError
from tiermem._lifecycle import AsyncResource, ClientState
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers.redis import RedisHotMemory

__all__ = ["CHANNEL", "CLIENT_NAME", "ENTRY_OVERHEAD", "SETUP_WAIT", "NearCache", "NearCacheStats"]

CHANNEL: Final = "__redis__:invalidate"
"""The Pub/Sub channel Redis publishes RESP2 invalidation messages on."""

CLIENT_NAME: Final = "tiermem-near-cache"
"""``CLIENT SETNAME`` of the invalidation connection (visible in ``CLIENT LIST``)."""

ENTRY_OVERHEAD: Final = 160
"""Bytes charged per entry on top of the record and key: dict slot, tuple and key object."""

SETUP_WAIT: Final = 2.0
"""Seconds :meth:`NearCache.setup` waits for the invalidation channel before returning anyway."""

_log = logging.getLogger("tiermem.near")
_RECONNECT_MIN: Final = 0.05
_RECONNECT_MAX: Final = 2.0


@dataclass(frozen=True, slots=True)
class NearCacheStats:
    """Counters and state of a :class:`NearCache` (for tests, ``doctor`` and dashboards).

    Attributes:
        serving: whether a lookup right now may be answered from L1.
        connected: whether the invalidation channel is up with tracking on.
        supported: ``False`` once the server refused tracking (L1 then stays off).
        items: entries in L1.
        bytes: bytes charged for them.
        hits: lookups answered from L1.
        misses: lookups that went to Redis.
        fills: records stored in L1 after a read.
        skipped_fills: reads whose record was not stored because it raced an invalidation.
        invalidations: keys (or whole-cache flushes) invalidated by the server.
        evictions: entries dropped to stay within ``max_items`` / ``max_bytes``.
        reconnects: times the channel was (re-)established.
    """

    serving: bool
    connected: bool
    supported: bool
    items: int
    bytes: int
    hits: int
    misses: int
    fills: int
    skipped_fills: int
    invalidations: int
    evictions: int
    reconnects: int


class _Flight:
    """Reads of one key in flight: how many, and a version bumped by every invalidation of it."""

    __slots__ = ("readers", "version")

    def __init__(self) -> None:
        self.readers = 0
        self.version = 0


class _TrackingRefused(Exception):
    """The server answered the tracking handshake with an error: L1 stays off."""


class _ChannelDead(Exception):
    """The channel stopped answering PING within its deadline."""


class NearCache(AsyncResource):
    """An in-process LRU of Redis records, invalidated by Redis ``CLIENT TRACKING`` (broadcast mode).

    Build it around a single-node :class:`RedisHotMemory` (or use
    ``MemoryBuilder().with_near_cache(...)``). No I/O happens here: the invalidation channel is
    opened by :meth:`setup` or the first read, and L1 serves nothing until it is up.

    Args:
        inner: the Redis hot tier to cache (not a cluster: tracking is per node).
        max_items: entries kept at most (LRU beyond that).
        max_bytes: bytes kept at most (records, keys and :data:`ENTRY_OVERHEAD` per entry);
            a record larger than a sixteenth of it is never cached.
        max_staleness: seconds; L1 answers only while the channel confirmed it is in step at most
            this long ago, so a hit never misses a write Redis executed this long before it.
        ping_interval: seconds between channel ``PING``s (default ``max_staleness / 5``).
        owned: close ``inner`` with this object (``False`` to keep it open).

    Raises:
        ConfigurationError: ``inner`` is a cluster, or a bound is not positive.
    """

    def __init__(
        self,
        inner: RedisHotMemory,
        *,
        max_items: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_staleness: float = 1.0,
        ping_interval: float | None = None,
        owned: bool = True,
    ) -> None:
        if not isinstance(inner, RedisHotMemory):
            raise ConfigurationError(f"NearCache wraps a RedisHotMemory, not {type(inner).__name__}")
        if inner.cluster:
            raise ConfigurationError(
                "the near cache does not support Redis Cluster: CLIENT TRACKING is per node "
                "(see docs/adr/0010-near-cache.md); drop with_near_cache() or use a single endpoint",
                tier=Tier.HOT,
            )
        if max_items < 1 or max_bytes < 1:
            raise ConfigurationError("near cache max_items and max_bytes must be >= 1", tier=Tier.HOT)
        if not max_staleness > 0:
            raise ConfigurationError("near cache max_staleness must be > 0 seconds", tier=Tier.HOT)
        interval = max_staleness / 5 if ping_interval is None else ping_interval
        if not 0 < interval <= max_staleness / 2:
            raise ConfigurationError(
                "near cache ping_interval must be > 0 and at most max_staleness / 2 "
                "(a confirmation lags up to two intervals)",
                tier=Tier.HOT,
            )
        self._inner = inner
        self._owned = owned
        self._prefix = inner.prefix
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_entry = max(1, max_bytes // 16)
        self._max_staleness = max_staleness
        self._ping_interval = interval
        # A PING unanswered this long means the connection is dead (hits stopped long before).
        self._dead_after = max(3.0, 3 * max_staleness)
        self._entries: OrderedDict[str, tuple[Record, float | None, int]] = OrderedDict()
        self._bytes = 0
        self._flights: dict[str, _Flight] = {}
        # Channel state, written only by the channel task (and _drop_all).
        self._epoch = (
            0  # bumped whenever invalidations may have been missed: fills of older epochs are refused
        )
        self._connected = False
        self._supported = True
        self._confirmed_at = float("-inf")  # monotonic time up to which every invalidation was processed
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._settled: asyncio.Event | None = None  # set once the first attempt succeeded or failed
        self._hits = self._misses = self._fills = self._skipped = 0
        self._invalidations = self._evictions = self._reconnects = 0

    # -- introspection ----------------------------------------------------------------------------

    @property
    def info(self) -> TierInfo:
        return self._inner.info

    @property
    def inner(self) -> RedisHotMemory:
        """The wrapped Redis hot tier."""
        return self._inner

    @property
    def max_staleness(self) -> float:
        """The staleness bound in seconds (see the module docstring)."""
        return self._max_staleness

    def raw_key(self, key: MemoryKey) -> str:
        """The Redis key that holds ``key``."""
        return self._inner.raw_key(key)

    def cached(self, key: MemoryKey) -> bool:
        """Whether L1 holds an entry for ``key`` now (served or not); does not touch the LRU order."""
        return self._inner.raw_key(key) in self._entries

    def stats(self) -> NearCacheStats:
        return NearCacheStats(
            serving=self._serving(),
            connected=self._connected,
            supported=self._supported,
            items=len(self._entries),
            bytes=self._bytes,
            hits=self._hits,
            misses=self._misses,
            fills=self._fills,
            skipped_fills=self._skipped,
            invalidations=self._invalidations,
            evictions=self._evictions,
            reconnects=self._reconnects,
        )

    def __repr__(self) -> str:
        return f"NearCache({self._inner!r}, max_items={self._max_items}, max_bytes={self._max_bytes})"

    async def wait_until_serving(self, *, within: float = 5.0) -> None:
        """Open the channel if needed and wait until L1 may serve (tests, benchmarks, warm-up).

        Raises:
            TierUnavailableError: tracking was refused or not confirmed within ``timeout``.
        """
        self._ensure_open("wait_until_serving")
        self._start()
        deadline = time.monotonic() + within
        while not self._serving():
            if not self._supported:
                raise TierUnavailableError(
                    "the Redis server refused CLIENT TRACKING; the near cache is off",
                    tier=Tier.HOT,
                    operation="wait_until_serving",
                )
            if time.monotonic() >= deadline:
                raise TierUnavailableError(
                    f"the near cache's invalidation channel was not confirmed within {within}s",
                    tier=Tier.HOT,
                    operation="wait_until_serving",
                )
            await asyncio.sleep(0.01)

    # -- TierStore --------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Check that Redis answers and open the invalidation channel.

        Waits up to :data:`SETUP_WAIT` seconds for tracking to be confirmed; when it is not (refused,
        or slow), L1 simply stays off meanwhile and the channel keeps trying (a warning is logged).
        """
        await self._inner.setup()
        self._start()
        settled = self._settled
        if settled is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETUP_WAIT):
                    await settled.wait()

    async def ping(self) -> None:
        await self._inner.ping()

    async def get(self, key: MemoryKey) -> Record | None:
        self._ensure_open("get")
        raw = self._inner.raw_key(key)
        entry = self._entries.get(raw)
        if entry is not None and self._serving():
            expires_at = entry[1]
            if expires_at is None or expires_at > time.time():
                self._entries.move_to_end(raw)
                self._hits += 1
                return entry[0]
            self._pop(raw)
        if self._task is None:
            self._start()
        self._misses += 1
        flight, version, epoch = self._board(raw)
        try:
            record = await self._inner.get(key)
        except BaseException:
            self._land(raw, flight)
            raise
        self._settle(raw, flight, version, epoch, record)
        return record

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        self._ensure_open("mget")
        out: list[Record | None] = [None] * len(keys)
        todo: list[int] = []
        serving = self._serving()
        now = time.time()
        for index, key in enumerate(keys):
            raw = self._inner.raw_key(key)
            entry = self._entries.get(raw) if serving else None
            if entry is not None and (entry[1] is None or entry[1] > now):
                self._entries.move_to_end(raw)
                out[index] = entry[0]
            else:
                todo.append(index)
        self._hits += len(keys) - len(todo)
        if not todo:
            return out
        if self._task is None:
            self._start()
        self._misses += len(todo)
        raws = [self._inner.raw_key(keys[i]) for i in todo]
        boarded = [self._board(raw) for raw in raws]
        try:
            records = await self._inner.mget([keys[i] for i in todo])
        except BaseException as exc:
            for raw, (flight, _, _) in zip(raws, boarded, strict=True):
                self._land(raw, flight)
            if isinstance(exc, CorruptBatchError):
                # Some records were damaged: what this cache served is readable too.
                asked = set(todo)
                served = {key: out[i] for i, key in enumerate(keys) if i not in asked}
                exc.readable = {**served, **exc.readable}
            raise
        for index, raw, (flight, version, epoch), record in zip(todo, raws, boarded, records, strict=True):
            self._settle(raw, flight, version, epoch, record)
            out[index] = record
        return out

    async def exists(self, key: MemoryKey) -> bool:
        self._ensure_open("exists")
        entry = self._entries.get(self._inner.raw_key(key))
        if entry is not None and self._serving() and (entry[1] is None or entry[1] > time.time()):
            return True
        return await self._inner.exists(key)

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        self._ensure_open("set")
        raws = [self._inner.raw_key(key)]
        self._forget(raws)
        try:
            return await self._inner.set(key, record, if_match=if_match, if_absent=if_absent)
        finally:
            self._forget(raws)

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        self._ensure_open("mset")
        raws = [self._inner.raw_key(mk) for mk, _ in items]
        self._forget(raws)
        try:
            await self._inner.mset(items, if_absent=if_absent)
        finally:
            self._forget(raws)

    async def delete(self, key: MemoryKey) -> None:
        self._ensure_open("delete")
        raws = [self._inner.raw_key(key)]
        self._forget(raws)
        try:
            await self._inner.delete(key)
        finally:
            self._forget(raws)

    async def mdelete(self, keys: Sequence[MemoryKey]) -> None:
        self._ensure_open("mdelete")
        raws = [self._inner.raw_key(mk) for mk in keys]
        self._forget(raws)
        try:
            await self._inner.mdelete(keys)
        finally:
            self._forget(raws)

    async def swap(self, items: Sequence[tuple[MemoryKey, Record | None, Record | None]]) -> list[bool]:
        """Redis' compare-and-swap; the keys are dropped from L1 like any write (a comparison made
        against a stale L1 copy simply fails in Redis, which compares with what it holds)."""
        self._ensure_open("swap")
        raws = [self._inner.raw_key(mk) for mk, _, _ in items]
        self._forget(raws)
        try:
            return await self._inner.swap(items)
        finally:
            self._forget(raws)

    async def _close(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        # redis-py's connection handshake can swallow a cancellation; the flag ends the task then.
        for _ in range(3):
            if task is None or task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=self._ping_interval * 2 + 0.1)
        if task is not None and not task.done():
            _log.warning("near cache: the invalidation channel task did not stop; leaving it")
        self._connected = False
        self._drop_all()
        if self._owned:
            await self._inner.aclose()

    # -- L1 ---------------------------------------------------------------------------------------

    def _serving(self) -> bool:
        return self._connected and time.monotonic() - self._confirmed_at <= self._max_staleness

    def _board(self, raw: str) -> tuple[_Flight, int, int]:
        """Register a read of ``raw`` before it is sent, so invalidations during it are seen."""
        flight = self._flights.get(raw)
        if flight is None:
            flight = self._flights[raw] = _Flight()
        flight.readers += 1
        return flight, flight.version, self._epoch

    def _land(self, raw: str, flight: _Flight) -> None:
        flight.readers -= 1
        if flight.readers == 0 and self._flights.get(raw) is flight:
            del self._flights[raw]

    def _settle(self, raw: str, flight: _Flight, version: int, epoch: int, record: Record | None) -> None:
        """Store what a read returned, unless anything about its key happened while it was in flight.

        A completed read also bumps the key's version: of two overlapping reads only the first to
        land may fill, and a later one that may not removes the entry, so L1 never keeps a value
        older than one this process has already returned from Redis.
        """
        allowed = flight.version == version and epoch == self._epoch and self._connected
        flight.version += 1
        self._land(raw, flight)
        if not allowed or record is None:
            if not allowed:
                self._skipped += 1
            self._pop(raw)
            return
        size = record.size + len(raw) + ENTRY_OVERHEAD
        if size > self._max_entry or record.is_expired(time.time()):
            self._pop(raw)
            return
        self._pop(raw)
        self._entries[raw] = (record, record.expires_at, size)
        self._bytes += size
        self._fills += 1
        while len(self._entries) > self._max_items or self._bytes > self._max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped
            self._evictions += 1

    def _pop(self, raw: str) -> None:
        entry = self._entries.pop(raw, None)
        if entry is not None:
            self._bytes -= entry[2]

    def _forget(self, raws: Sequence[str]) -> None:
        """Drop keys from L1 and spoil reads of them in flight (local writes, server invalidations)."""
        for raw in raws:
            self._pop(raw)
            flight = self._flights.get(raw)
            if flight is not None:
                flight.version += 1

    def _drop_all(self) -> None:
        """Forget everything and refuse every fill in flight (flush, channel loss, close)."""
        self._epoch += 1
        self._entries.clear()
        self._bytes = 0

    # -- the invalidation channel -----------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and self._supported and self._state is not ClientState.CLOSED:
            self._settled = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run_channel(), name="tiermem-near-cache")

    async def _run_channel(self) -> None:
        """Keep the channel up: connect, enable tracking, read invalidations; reconnect on failure."""
        delay = _RECONNECT_MIN
        outage_logged = False
        while not self._stopping:
            connection: Any = self._inner.dedicated_connection(client_name=CLIENT_NAME)
            try:
                await self._track(connection)
                delay = _RECONNECT_MIN
                if outage_logged:
                    _log.warning("near cache: invalidation channel re-established; L1 is on again")
                    outage_logged = False
                await self._listen(connection)
            except _TrackingRefused as exc:
                self._supported = False
                _log.warning(
                    "near cache: the Redis server refused CLIENT TRACKING (%s); L1 stays off and "
                    "every read goes to Redis (see docs/adr/0010-near-cache.md)",
                    exc,
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any channel failure turns L1 off; reads go to Redis
                if not outage_logged:
                    _log.warning(
                        "near cache: invalidation channel lost (%s: %s); L1 is off until it is back",
                        type(exc).__name__,
                        exc,
                    )
                    outage_logged = True
            finally:
                self._connected = False
                self._drop_all()
                if self._settled is not None:
                    self._settled.set()
                await connection.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)

    async def _track(self, connection: Any) -> None:
        """Connect and enable broadcast tracking redirected to this very connection (RESP2)."""
        from redis.exceptions import ResponseError

        await connection.connect()
        started = time.monotonic()
        try:
            await connection.send_command("CLIENT", "ID")
            client_id = await connection.read_response()
            await connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", f"{self._prefix}:"
            )
            await connection.read_response()
            await connection.send_command("SUBSCRIBE", CHANNEL)
            reply = await connection.read_response()
        except ResponseError as exc:
            raise _TrackingRefused(str(exc)) from exc
        if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
            raise _TrackingRefused(f"unexpected SUBSCRIBE reply {reply!r}")
        # Every write the server executes from now on is announced on this connection, so the
        # channel is "confirmed" as of the moment tracking was requested (L1 is empty here).
        self._drop_all()
        self._confirmed_at = started
        self._connected = True
        self._reconnects += 1
        if self._settled is not None:
            self._settled.set()

    async def _listen(self, connection: Any) -> None:
        """Read invalidations and PING replies; one PING outstanding at a time.

        The server flushes a write's broadcast invalidation no later than the reply to a PING it
        processes after the write; PING k+1 is sent only after PONG k arrived, so when PONG k+1
        arrives every write executed before PING k was *sent* has been processed here: that send
        time becomes the confirmation.
        """
        last_sent = self._confirmed_at  # the tracking request counts as PING 0
        outstanding: float | None = None
        next_ping = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if outstanding is None and now >= next_ping:
                outstanding = now
                await connection.send_command("PING")
            if outstanding is not None and now - outstanding > self._dead_after:
                raise _ChannelDead(f"no PING reply within {self._dead_after}s")
            wait = next_ping - now if outstanding is None else outstanding + self._dead_after - now
            message = await connection.read_response(timeout=min(max(wait, 0.001), self._ping_interval))
            if message is None:  # the read timed out: time to ping or to give up
                continue
            kind = message[0] if isinstance(message, list) and message else None
            if kind == b"message" and len(message) == 3:
                self._invalidate(message[2])
            elif kind == b"pong" and outstanding is not None:
                self._confirmed_at = last_sent
                last_sent = outstanding
                outstanding = None
                next_ping = max(time.monotonic(), last_sent + self._ping_interval)
            else:
                raise _ChannelDead(f"unexpected message on the invalidation channel: {kind!r}")

    def _invalidate(self, keys: Any) -> None:
        if keys is None:  # FLUSHDB / FLUSHALL: everything
            self._invalidations += 1
            self._drop_all()
            return
        raws = [key.decode("utf-8", "surrogateescape") for key in keys]
        self._invalidations += len(raws)
        self._forget(raws)
