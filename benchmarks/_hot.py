"""Hot-tier scenarios: get, set, mget and mset against raw redis-py, aiocache and cashews.

Rows are ``hot.*`` for the Redis hot tier and ``inproc.*`` for the in-process one. A run with Redis
measures both (the in-process rows against the peers' in-process backends, cashews ``mem://``);
without Redis the ``hot.*`` rows are n/a.

With a Redis URL every variant talks to the same server over its own connection pool; the raw
redis-py client gets exactly the pool settings ``RedisHotMemory.from_url`` uses (blocking pool of
64, 1 s timeouts, 3 retries). Without one (the embedded default) tiermem runs on
``LocalHotMemory`` and the baseline is a plain ``dict`` of already-encoded bytes, and the peers use
their in-process backends: that measures library overhead only and is labelled so.

Baselines move bytes that were encoded before the clock started (they measure the transport
alone); tiermem and the peer libraries serialize inside the measured time, as callers would.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchmarks._harness import BenchmarkError, Comparison, Row, Scenario, Target, Variant, timer
from benchmarks._payloads import small_message
from benchmarks._services import redis_address
from tiermem import LocalHotMemory, MemoryBuilder, MemoryClient

__all__ = ["REDIS_ROW_IDS", "HotBench", "hot_client", "open_hot", "raw_redis", "unavailable_rows"]

TTL = 3600
PREFIX_TIERMEM = "tmbench"
PREFIX_RAW = "rawbench"
PREFIX_AIOCACHE = "acbench"
PREFIX_CASHEWS = "cwbench"

Op = Callable[[], Awaitable[Any]]


def raw_redis(url: str) -> Any:
    """A redis-py asyncio client with the pool settings of ``RedisHotMemory.from_url``'s defaults.

    It owns its pool: close it with ``aclose(close_connection_pool=True)``.
    """
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    host, port, db = redis_address(url)
    pool = BlockingConnectionPool(
        max_connections=64,
        timeout=1.0,
        host=host,
        port=port,
        db=db,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.01), 3),
    )
    return Redis(connection_pool=pool)


def hot_client(
    redis_url: str | None, *, tracer_provider: Any = None, detailed_spans: bool = False
) -> MemoryClient:
    """A hot-only tiermem client (no hot_ttl cap, so values live as long as their own ttl)."""
    from tiermem.tiers.redis import RedisHotMemory

    builder = MemoryBuilder().with_policy(hot_ttl=None)
    if redis_url is not None:
        builder.with_hot(RedisHotMemory.from_url(redis_url, prefix=PREFIX_TIERMEM))
    else:
        builder.with_hot(LocalHotMemory(max_items=50_000, max_bytes=512 * 1024 * 1024))
    if tracer_provider is not None:
        builder.with_telemetry(tracer_provider=tracer_provider, detailed_spans=detailed_spans)
    return builder.build()


@dataclass(slots=True)
class _Peer:
    name: str
    set: Callable[[str, Any], Awaitable[Any]]
    get: Callable[[str], Awaitable[Any]]
    mget: Callable[[list[str]], Awaitable[Any]]
    mset: Callable[[list[tuple[str, Any]]], Awaitable[Any]]
    note: str = ""


@dataclass(slots=True)
class HotBench:
    """Everything the hot scenarios share; closed by the exit stack it was opened with."""

    redis_url: str | None
    client: MemoryClient
    keys: list[str]
    batch: int
    raw: Any = None  # redis-py client, or None in embedded mode
    store: dict[str, bytes] = field(default_factory=dict)  # embedded baseline: no TTL, LRU or codec
    peers: dict[str, _Peer | str] = field(default_factory=dict)  # name -> peer, or why it is n/a

    @property
    def on_redis(self) -> bool:
        return self.redis_url is not None

    def raw_key(self, key: str) -> str:
        return f"{PREFIX_RAW}:{key}"

    @property
    def prefix(self) -> str:
        """The row ids' first part: ``hot`` on Redis, ``inproc`` in-process."""
        return "hot" if self.on_redis else "inproc"

    @property
    def title(self) -> str:
        return "Redis hot" if self.on_redis else "in-process hot"


_PEERS = ("aiocache", "cashews")
REDIS_ROW_IDS: tuple[str, ...] = (
    *(f"hot.{op}.{peer}" for op in ("get", "set", "mget", "mset") for peer in ("raw", *_PEERS)),
    "hot.mget.gets",
)
"""The rows only a Redis run measures (the in-process ones are ``inproc.*``)."""


def unavailable_rows() -> list[Row]:
    """The Redis rows when there is no Redis."""
    names = {"raw": "redis-py", "gets": "sequential gets"}
    rows = []
    for row_id in REDIS_ROW_IDS:
        _, op, peer = row_id.split(".")
        label = f"Redis hot {op} vs {names.get(peer, peer)}"
        rows.append(Row(row_id, "hot", label, None, None, na_reason="needs Redis (--redis)"))
    return rows


async def _open_aiocache(redis_url: str | None, stack: AsyncExitStack) -> _Peer:
    from aiocache import RedisCache, SimpleMemoryCache

    cache: Any
    if redis_url is not None:
        host, port, db = redis_address(redis_url)
        cache = RedisCache(endpoint=host, port=port, db=db, namespace=PREFIX_AIOCACHE, pool_max_size=64)
        name = "aiocache RedisCache"
    else:
        cache = SimpleMemoryCache(namespace=PREFIX_AIOCACHE)
        name = "aiocache SimpleMemoryCache"

    async def close() -> None:
        await cache.close()

    stack.push_async_callback(close)
    return _Peer(
        name=name,
        set=lambda k, v: cache.set(k, v, ttl=TTL),
        get=cache.get,
        mget=cache.multi_get,
        mset=lambda pairs: cache.multi_set(pairs, ttl=TTL),
    )


async def _open_cashews(redis_url: str | None, stack: AsyncExitStack) -> _Peer:
    from cashews import Cache

    cache = Cache()
    if redis_url is not None:
        cache.setup(redis_url, max_connections=64)
        name = "cashews redis://"
    else:
        cache.setup("mem://", size=100_000)  # the default (1,000) would evict the loaded keys
        name = "cashews mem://"

    async def close() -> None:
        await cache.close()

    stack.push_async_callback(close)

    def key(k: str) -> str:
        return f"{PREFIX_CASHEWS}:{k}"

    async def set_(k: str, v: Any) -> Any:
        return await cache.set(key(k), v, expire=TTL)

    async def get(k: str) -> Any:
        return await cache.get(key(k))

    async def mget(keys: list[str]) -> Any:
        return await cache.get_many(*(key(k) for k in keys))

    async def mset(pairs: list[tuple[str, Any]]) -> Any:
        return await cache.set_many({key(k): v for k, v in pairs}, expire=TTL)

    return _Peer(name=name, set=set_, get=get, mget=mget, mset=mset)


async def _checked_peer(
    opener: Callable[[str | None, AsyncExitStack], Awaitable[_Peer]],
    redis_url: str | None,
    stack: AsyncExitStack,
    library: str,
) -> _Peer | str:
    """Prove a peer library works here (set, get, batch, close) on a throwaway instance, then open one.

    Returns the peer, or the reason it is n/a. Deprecation warnings it raises (redis-py 8 deprecates
    calls older libraries make) are recorded in the row's note; the run itself ignores them.
    """
    value = small_message(0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with AsyncExitStack() as probe_stack:
                probe = await opener(redis_url, probe_stack)
                await probe.set("probe", value)
                back = await probe.get("probe")
                await probe.mset([("probe", value)])
                many = await probe.mget(["probe"])
        peer = await opener(redis_url, stack)
    except ImportError as exc:
        return f"{library} is not installed ({exc.name})"
    except Exception as exc:
        return f"{library} failed against this server: {type(exc).__name__}: {str(exc)[:120]}"
    if back != value or list(many) != [value]:
        return f"{library} did not return what it stored"
    deprecated = sorted(
        {str(w.message).split(" -- ")[0] for w in caught if issubclass(w.category, DeprecationWarning)}
    )
    if deprecated:
        peer.note = "works; DeprecationWarning: " + "; ".join(deprecated)
    return peer


async def open_hot(stack: AsyncExitStack, *, redis_url: str | None, keys: int, batch: int) -> HotBench:
    """Create the tiermem client, the raw baseline and the peers, and load ``keys`` values in each."""
    client = hot_client(redis_url)
    stack.push_async_callback(client.aclose)
    for error in (await client.ping()).values():
        if error is not None:
            raise error  # unreachable or refused: the CLI maps it to its exit code
    bench = HotBench(redis_url, client, [f"k{i:05d}" for i in range(keys)], batch)
    values = {key: small_message(i) for i, key in enumerate(bench.keys)}
    await client.mset(values, ttl=TTL)
    encoded = {key: orjson.dumps(value) for key, value in values.items()}
    if redis_url is not None:
        raw = raw_redis(redis_url)
        stack.push_async_callback(raw.aclose, close_connection_pool=True)
        bench.raw = raw
        pipe = raw.pipeline(transaction=False)
        for key, data in encoded.items():
            pipe.set(bench.raw_key(key), data, ex=TTL)
        await pipe.execute()
    else:
        bench.store.update({bench.raw_key(k): v for k, v in encoded.items()})
    for library, opener in (("aiocache", _open_aiocache), ("cashews", _open_cashews)):
        peer = await _checked_peer(opener, redis_url, stack, library)
        if isinstance(peer, _Peer):
            await peer.mset(list(values.items()))
        bench.peers[library] = peer
    return bench


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise BenchmarkError(what)


# -- variants -------------------------------------------------------------------------------------


def _loop(
    op: Callable[[str], Awaitable[Any]], keys: list[str], check: str
) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        count = len(keys)
        value: Any = None
        start = timer()
        for i in range(n):
            value = await op(keys[i % count])
        elapsed = timer() - start
        _expect(value is not None, check)
        return elapsed

    return run


def _repeat(op: Op, check: Callable[[Any], bool], what: str) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        result: Any = None
        start = timer()
        for _ in range(n):
            result = await op()
        elapsed = timer() - start
        _expect(check(result), what)
        return elapsed

    return run


def _all_found(result: Any) -> bool:
    values = result.values() if isinstance(result, dict) else result
    return all(v is not None for v in values)


def _peer_rows(
    bench: HotBench,
    scenario: str,
    label: str,
    variants: list[Variant],
    comparisons: list[Comparison],
    unavailable: list[Row],
    op: Callable[[_Peer], Variant],
) -> None:
    for library in ("aiocache", "cashews"):
        peer = bench.peers[library]
        row_id = f"{scenario}.{library}"
        title = f"{label} vs {library}"
        if isinstance(peer, str):
            unavailable.append(Row(row_id, "hot", title, None, None, na_reason=peer, baseline_name=library))
            continue
        variant = op(peer)
        variants.append(variant)
        comparisons.append(
            Comparison(
                row_id,
                title,
                "tiermem",
                variant.name,
                Target("max_ratio", 1.0, "<= 1.0x (at least as fast)"),
                note=peer.note,
            )
        )


def _raw_note(bench: HotBench) -> str:
    if bench.on_redis:
        return "same Redis, same pool settings; raw bytes, no codec"
    return "embedded default: LocalHotMemory vs a plain dict of bytes (no TTL/LRU/codec); target is for Redis"


def _raw_target(bench: HotBench, target: Target) -> Target | None:
    return target if bench.on_redis else None


def get_scenario(bench: HotBench) -> Scenario:
    raw_name = "redis-py GET" if bench.on_redis else "dict.get"
    if bench.on_redis:
        raw_get: Callable[[str], Awaitable[Any]] = bench.raw.get
    else:
        data = bench.store

        async def raw_get(key: str) -> Any:
            return data.get(key)

    raw_keys = [bench.raw_key(k) for k in bench.keys]
    variants = [
        Variant("tiermem", _loop(bench.client.get, bench.keys, "tiermem hot get missed")),
        Variant(raw_name, _loop(raw_get, raw_keys, "raw GET missed")),
    ]
    prefix = bench.prefix
    label = f"{bench.title} get (hit, 300 B JSON)"
    comparisons = [
        Comparison(
            f"{prefix}.get.raw",
            f"{label} vs {raw_name}",
            "tiermem",
            raw_name,
            _raw_target(bench, Target("max_ratio", 1.15, "<= 1.15x")),
            note=_raw_note(bench),
        )
    ]
    unavailable: list[Row] = []
    _peer_rows(
        bench,
        f"{prefix}.get",
        f"{bench.title} get",
        variants,
        comparisons,
        unavailable,
        lambda peer: Variant(peer.name, _loop(peer.get, bench.keys, f"{peer.name} get missed")),
    )
    return Scenario(f"{prefix}.get", "hot", variants, comparisons, unavailable)


def set_scenario(bench: HotBench) -> Scenario:
    """One ``set`` with a ttl of a 300 B JSON value, over a pool of keys (overwrites)."""
    count = len(bench.keys)
    values = [small_message(20_000 + i) for i in range(count)]
    keys = [f"s{i:05d}" for i in range(count)]
    raw_keys = [bench.raw_key(k) for k in keys]
    client = bench.client
    raw_name = "redis-py SET EX" if bench.on_redis else "dict assignment"
    raw_set: Callable[[int], Awaitable[Any]]
    if bench.on_redis:
        raw = bench.raw
        encoded = [orjson.dumps(v) for v in values]

        def raw_set(i: int) -> Awaitable[Any]:
            return raw.set(raw_keys[i], encoded[i], ex=TTL)  # type: ignore[no-any-return]
    else:
        store = bench.store

        async def raw_set(i: int) -> Any:
            store[raw_keys[i]] = orjson.dumps(values[i])  # a dict of bytes: the serialization is the work
            return True

    def timed(op: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[float]]:
        async def run(n: int) -> float:
            start = timer()
            for i in range(n):
                await op(i % count)
            return timer() - start

        return run

    async def tiermem_set(i: int) -> Any:
        return await client.set(keys[i], values[i], ttl=TTL)

    variants = [Variant("tiermem", timed(tiermem_set)), Variant(raw_name, timed(raw_set))]
    prefix = bench.prefix
    label = f"{bench.title} set (300 B JSON, ttl)"
    comparisons = [
        Comparison(
            f"{prefix}.set.raw",
            f"{label} vs {raw_name}",
            "tiermem",
            raw_name,
            None,
            note=_raw_note(bench),
        )
    ]
    unavailable: list[Row] = []

    def peer_variant(peer: _Peer) -> Variant:
        async def op(i: int) -> Any:
            return await peer.set(keys[i], values[i])

        return Variant(peer.name, timed(op))

    _peer_rows(bench, f"{prefix}.set", f"{bench.title} set", variants, comparisons, unavailable, peer_variant)
    return Scenario(f"{prefix}.set", "hot", variants, comparisons, unavailable)


def mget_scenario(bench: HotBench) -> Scenario:
    keys = bench.keys[: bench.batch]
    size = len(keys)
    raw_keys = [bench.raw_key(k) for k in keys]
    raw_name = "redis-py MGET" if bench.on_redis else "dict comprehension"
    if bench.on_redis:
        raw = bench.raw

        async def raw_mget() -> Any:
            return await raw.mget(raw_keys)
    else:
        data = bench.store

        async def raw_mget() -> Any:
            return [data.get(k) for k in raw_keys]

    client = bench.client

    async def tiermem_mget() -> Any:
        return await client.mget(keys)

    async def tiermem_gets() -> Any:
        get = client.get
        return [await get(k) for k in keys]

    gets_name = f"tiermem {size} x get"
    variants = [
        Variant("tiermem", _repeat(tiermem_mget, _all_found, "tiermem mget missed")),
        Variant(raw_name, _repeat(raw_mget, _all_found, "raw MGET missed")),
        Variant(gets_name, _repeat(tiermem_gets, _all_found, "tiermem get missed")),
    ]
    prefix = bench.prefix
    label = f"{bench.title} mget {size}"
    comparisons = [
        Comparison(
            f"{prefix}.mget.raw",
            f"{label} vs {raw_name}",
            "tiermem",
            raw_name,
            _raw_target(bench, Target("max_ratio", 2.0, "<= 2x")),
            note=_raw_note(bench),
        ),
        Comparison(
            f"{prefix}.mget.gets",
            f"{label} vs {size} sequential tiermem gets",
            "tiermem",
            gets_name,
            Target("min_speedup", 30.0, ">= 30x faster"),
            note="speedup = 1 / ratio",
        ),
    ]
    unavailable: list[Row] = []

    def peer_variant(peer: _Peer) -> Variant:
        async def op() -> Any:
            return await peer.mget(keys)

        return Variant(peer.name, _repeat(op, _all_found, f"{peer.name} mget missed"))

    _peer_rows(bench, f"{prefix}.mget", label, variants, comparisons, unavailable, peer_variant)
    return Scenario(f"{prefix}.mget", "hot", variants, comparisons, unavailable)


def mset_scenario(bench: HotBench) -> Scenario:
    size = bench.batch
    values = [(f"w{i:05d}", small_message(10_000 + i)) for i in range(size)]
    encoded = [(bench.raw_key(k), orjson.dumps(v)) for k, v in values]
    raw_name = "redis-py pipeline SET EX" if bench.on_redis else "dict.update"
    if bench.on_redis:
        raw = bench.raw

        async def raw_mset() -> Any:
            pipe = raw.pipeline(transaction=False)
            for key, data in encoded:
                pipe.set(key, data, ex=TTL)
            return await pipe.execute()
    else:
        store = bench.store

        async def raw_mset() -> Any:
            store.update(encoded)
            return True

    client = bench.client
    mapping = dict(values)

    async def tiermem_mset() -> Any:
        await client.mset(mapping, ttl=TTL)
        return True

    variants = [
        Variant("tiermem", _repeat(tiermem_mset, bool, "tiermem mset failed")),
        Variant(raw_name, _repeat(raw_mset, bool, "raw pipeline failed")),
    ]
    prefix = bench.prefix
    label = f"{bench.title} mset {size} (hot-only client)"
    comparisons = [
        Comparison(
            f"{prefix}.mset.raw",
            f"{label} vs {raw_name}",
            "tiermem",
            raw_name,
            _raw_target(bench, Target("max_ratio", 1.3, "<= 1.3x")),
            note=_raw_note(bench) + ("; non-transactional pipeline" if bench.on_redis else ""),
        )
    ]
    unavailable: list[Row] = []

    def peer_variant(peer: _Peer) -> Variant:
        async def op() -> Any:
            await peer.mset(values)
            return True

        return Variant(peer.name, _repeat(op, bool, f"{peer.name} mset failed"))

    _peer_rows(
        bench,
        f"{prefix}.mset",
        f"{bench.title} mset {size}",
        variants,
        comparisons,
        unavailable,
        peer_variant,
    )
    return Scenario(f"{prefix}.mset", "hot", variants, comparisons, unavailable)
