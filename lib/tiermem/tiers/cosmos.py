"""Warm tier on Azure Cosmos DB for NoSQL (``pip install 'tiermem[cosmos]'``).

One item per logical key, in a container with partition key path ``/pk``::

    {"id": cosmos_id(key), "pk": <same as id>, "tenant": ..., "ns": ...,
     "v": <base64 of Record.to_bytes()>, "exp": <expires_at or null>, "ttl": <seconds left, when exp is set>}

``id == pk`` gives 1-RU point reads and one logical partition per key (no 20 GB partition ceiling);
``tenant``/``ns`` are fields so a tenant can be listed and purged with a parameterized query.
Native TTL needs the container's ``defaultTtl = -1`` (Bicep and :meth:`CosmosWarmMemory.setup` set it);
the client checks expiry on every record anyway, so correctness never waits for Cosmos to delete.

Retries for 429/408/503 and connection errors are the SDK's own (configured from the constructor);
this adapter adds no second retry loop. Every SDK exception is translated in :func:`_translate`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Unpack

from tiermem._codec import Record
from tiermem._errors import (
    AuthenticationError,
    BatchWriteError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    NotProvisionedError,
    ThrottledError,
    TierError,
    TierMemError,
    TierUnavailableError,
    ValueTooLargeError,
)
from tiermem._instrumentation import logger
from tiermem._keys import MAX_KEY_BYTES, cosmos_id, parse_cosmos_id, validate_scope
from tiermem._lifecycle import ClientState
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers._azure import SDK_FAILURES, TRANSPORT_FAILURES
from tiermem.tiers._base import TierAdapter, brief, check_options, for_each, require_extra, retag_corrupt
from tiermem.tiers._cosmos_client import CosmosOptions, connection

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

    from tiermem.tiers.azure_lifecycle import CosmosScopeStore
    from tiermem.tiers.cosmos_collections import CosmosCollectionStore

__all__ = ["CosmosOptions", "CosmosWarmMemory"]

_IMPORT_ERROR: ImportError | None = None
try:
    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient
    from azure.cosmos.exceptions import CosmosClientTimeoutError, CosmosHttpResponseError

    from tiermem.tiers._azure import ClientAuthenticationError, MatchConditions
except ImportError as missing:  # pragma: no cover - exercised by the no-extras test in a subprocess
    _IMPORT_ERROR = missing


PARTITION_KEY_PATH: Final = "/pk"

# --- Size budget of one item. Cosmos caps an item at 2 MB (the UTF-8 length of its JSON, system
# properties included). Everything but "v" is bounded: id and pk are at most 64 + 1 + 64 + 1 +
# base64url(512 bytes) = 813 ASCII characters each, tenant and ns 64 each; field names, exp, ttl
# and the system properties (_rid, _self, _etag, _attachments, _ts) fit in 512 bytes. On top of
# that we keep 2 KiB of headroom. Base64 turns 3 record bytes into 4 characters.
_ITEM_LIMIT: Final = 2 * 1024 * 1024
_MAX_ID_CHARS: Final = 64 + 1 + 64 + 1 + math.ceil(MAX_KEY_BYTES * 4 / 3)
_FIXED_OVERHEAD: Final = 2 * _MAX_ID_CHARS + 2 * 64 + 512
_HEADROOM: Final = 2 * 1024
MAX_RECORD_BYTES: Final = (_ITEM_LIMIT - _FIXED_OVERHEAD - _HEADROOM) // 4 * 3

_MAX_TTL: Final = 2**31 - 1  # Cosmos ttl is a positive int32 (seconds)
# ReadMany: the SDK turns each chunk into one parameterized query per partition-key range. Chunks are
# bounded by count and by the characters of the (id, pk) parameters, so worst-case 813-char ids
# still make a modest request body.
_READ_MANY_MAX_ITEMS: Final = 256
_READ_MANY_MAX_CHARS: Final = 96 * 1024
_PURGE_PAGE: Final = 500  # ids fetched per purge round
_SCAN_PAGE: Final = 1000  # ids per scan page
_SUBSTATUS_OWNER_MISSING: Final = 1003  # 404 because the database or container is gone, not the item

# Index every field but the base64 payload (indexing a 2 MB string would cost RUs on every write).
_INDEXING_POLICY: Final[dict[str, Any]] = {
    "indexingMode": "consistent",
    "automatic": True,
    "includedPaths": [{"path": "/*"}],
    "excludedPaths": [{"path": "/v/?"}, {"path": '/"_etag"/?'}],
}

_SETUP_FORBIDDEN_HINT: Final = (
    "creating the database or container was refused (403). With Entra ID data-plane RBAC, databases "
    "and containers are control-plane resources the app identity cannot create: deploy them with "
    "Bicep (infra/modules/cosmos.bicep: partition key /pk, defaultTtl -1), then setup() only verifies them"
)


def _service_message(exc: CosmosHttpResponseError) -> str:
    """The service's own message (first line, bounded), from the JSON error body when there is one."""
    raw: Any = exc.http_error_message
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw.strip():
        return ""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    text = str(body.get("message") or "") if isinstance(body, dict) else raw
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def _translate(
    exc: BaseException,
    *,
    operation: str,
    key: MemoryKey | None,
    resource: str,
    size: int | None = None,
) -> TierMemError:
    """The one place where SDK and transport exceptions become tiermem errors."""
    k = key.key if key is not None else None
    if isinstance(exc, ClientAuthenticationError):
        return AuthenticationError(
            f"cosmos: the credential could not get a token or was rejected: {brief(exc)}",
            tier=Tier.WARM,
            operation=operation,
            key=k,
        )
    if isinstance(exc, CosmosHttpResponseError):
        status = exc.status_code
        message = _service_message(exc)
        detail = f"cosmos {status}" + (f"/{exc.sub_status}" if exc.sub_status else "")
        detail += f": {message}" if message else ""
        if status in (409, 412):
            why = "key already exists" if status == 409 else "etag does not match"
            return ConflictError(f"{why} ({detail})", tier=Tier.WARM, operation=operation, key=k)
        if status == 429:
            return ThrottledError(
                f"throttled after the SDK's retries ({detail}); raise RU/s or retry_total",
                tier=Tier.WARM,
                operation=operation,
                key=k,
            )
        if status in (401, 403):
            what = _SETUP_FORBIDDEN_HINT if operation == "setup" and status == 403 else "access denied"
            return AuthenticationError(f"{what} ({detail})", tier=Tier.WARM, operation=operation, key=k)
        if status in (408, 503):
            return TierUnavailableError(detail, tier=Tier.WARM, operation=operation, key=k)
        if status == 413:
            return ValueTooLargeError(
                f"item is larger than Cosmos DB accepts ({detail})",
                size=size or 0,
                limit=MAX_RECORD_BYTES,
                tier=Tier.WARM,
                operation=operation,
                key=k,
            )
        if status == 404:  # an item's 404 is a miss before it gets here (see _is_miss)
            return NotProvisionedError(
                f"{resource} does not exist: run `tiermem init` (or MemoryClient.setup()) to create "
                f"it, or deploy it with Bicep ({detail})",
                tier=Tier.WARM,
                operation=operation,
                key=k,
            )
        return TierError(detail, tier=Tier.WARM, operation=operation, key=k)
    if isinstance(exc, (CosmosClientTimeoutError, *TRANSPORT_FAILURES)):
        reason = f"cosmos unreachable: {type(exc).__name__}: {brief(exc)}"
        return TierUnavailableError(reason, tier=Tier.WARM, operation=operation, key=k)
    reason = f"cosmos: {type(exc).__name__}: {brief(exc)}"
    return TierError(reason, tier=Tier.WARM, operation=operation, key=k)


def _ttl_seconds(expires_at: float, now: float) -> int:
    # Ceil, so Cosmos never deletes before the expiry; at least 1 (ttl 0 is invalid), already-expired
    # records included: the client treats them as expired anyway.
    return max(1, min(_MAX_TTL, math.ceil(expires_at - now)))


def _etag_of(result: Any) -> str | None:
    headers = result.get_response_headers()
    etag = headers.get("etag") or result.get("_etag")
    return str(etag) if etag is not None else None


def _expired(item: Mapping[str, Any], now: float) -> bool:
    exp = item.get("exp")
    return isinstance(exp, int | float) and not isinstance(exp, bool) and exp <= now


class CosmosWarmMemory(TierAdapter):
    """Durable warm tier on Azure Cosmos DB for NoSQL (async SDK, gateway mode).

    Give exactly one of ``credential`` (Entra ID, the production choice), ``key`` (account key:
    emulators and stand-ins only) or ``client`` (an entered ``azure.cosmos.aio.CosmosClient`` shared
    between containers of one account). The adapter creates its ``CosmosClient`` lazily on first use
    and closes only a client it created; an injected client or credential is never closed.

    Args:
        endpoint: account URL (``https://<account>.documents.azure.com:443/``); plain ``http`` only for
            loopback, where endpoint discovery is off (every request goes to this URL). With ``client``
            it must be the client's endpoint (used for telemetry).
        database: database name.
        container: container name (partition key ``/pk``, ``defaultTtl -1``).
        credential: an ``AsyncTokenCredential`` (``DefaultAzureCredential``, ``ManagedIdentityCredential``).
        key: the account key, a ``str`` or ``pydantic.SecretStr`` (kept as one); never logged, never in
            ``repr``.
        client: an ``azure.cosmos.aio.CosmosClient`` you already hold, entered (``async with``) by you,
            e.g. to share one client (one connection pool, one session token) between containers of
            an account. Its own options (retries, timeouts, consistency) apply; it is never closed here.
        max_concurrency: most requests in flight for one ``mset``, ``mget`` or ``purge``.
        retry_total: SDK retry attempts for throttling (429) and connection errors (>= 1; default 5).
        retry_backoff_max: seconds: the SDK's cap on cumulative throttling waits and on one
            connection-retry backoff (default 10).
        retry_fixed_interval: seconds between throttling retries; ``None`` honours the server's
            ``x-ms-retry-after-ms``.
        connection_timeout: seconds to establish a connection (default 5).
        read_timeout: seconds to wait for a response on an open connection (default 10).
        connection_verify: TLS verification override; ``False`` is accepted for loopback endpoints only
            (``azure-cosmos`` already skips verification for ``localhost``/``127.0.0.1``).
        consistency_level: request consistency (``"Session"``, ``"Eventual"``...); ``None`` = the account's.
        preferred_locations: regions in order of preference for reads.
        clock: wall-clock source (Unix seconds) for expiry checks and ``ttl``.

    Raises:
        ImportError: ``azure-cosmos`` is not installed.
        ConfigurationError: the arguments cannot work (the message says what to change).
    """

    tier = Tier.WARM
    failures = SDK_FAILURES

    def __init__(
        self, endpoint: str, database: str, container: str, **options: Unpack[CosmosOptions]
    ) -> None:
        require_extra(_IMPORT_ERROR, "CosmosWarmMemory", "azure-cosmos and aiohttp", "cosmos")
        check_options(options, CosmosOptions.__optional_keys__, type(self).__name__)
        conn = connection(endpoint, database, container, options)
        self.endpoint = endpoint
        self.database = database
        self.container = container
        self._credential = conn.credential
        self._key = conn.key
        self._client: CosmosClient | None = conn.client
        self._owns_client = conn.client is None
        self._client_options = conn.client_options
        self._max_concurrency = conn.max_concurrency
        self._clock = options.get("clock", time.time)
        self._proxy: ContainerProxy | None = None
        self._open_lock = asyncio.Lock()
        self._resource = f"database {database!r} / container {container!r}"
        self._info = TierInfo(
            db_system="cosmosdb", server_address=conn.host, max_record_bytes=MAX_RECORD_BYTES, native_ttl=True
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, database={self.database!r}, "
            f"container={self.container!r})"
        )

    # -- SDK failures: the only place they are translated ------------------------------------------

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierMemError:
        return _translate(exc, operation=operation, key=key, resource=self._resource, size=size)

    def _is_miss(self, exc: BaseException) -> bool:
        """A 404 that means "no such item" (not "no such database/container")."""
        return (
            isinstance(exc, CosmosHttpResponseError)
            and exc.status_code == 404
            and exc.sub_status != _SUBSTATUS_OWNER_MISSING
        )

    # -- client and container, created on first use ----------------------------------------------

    async def _open_client(self, operation: str) -> CosmosClient:
        """The CosmosClient; creates and enters ours on first use. Call with ``_open_lock`` held."""
        if self._client is not None:
            return self._client
        credential: Any = self._credential
        if self._key is not None:
            credential = self._key.get_secret_value()
        client = CosmosClient(self.endpoint, credential, **self._client_options)
        try:
            # Entering reads the account (regions, consistency) and sets up session tokens, which
            # Session consistency needs for read-your-writes.
            await self._sdk(operation, None, client.__aenter__)
        except BaseException:
            await _discard(client)
            raise
        if self._state is ClientState.CLOSED:  # aclose() ran while we were connecting
            await _discard(client)
            raise ClientClosedError(f"{type(self).__name__} is closed", operation=operation)
        self._client = client
        return client

    async def _container(self, operation: str) -> ContainerProxy:
        proxy = self._proxy
        if proxy is not None:
            return proxy
        async with self._open_lock:
            if self._proxy is None:
                client = await self._open_client(operation)
                candidate = client.get_database_client(self.database).get_container_client(self.container)
                # One read on first use: the SDK needs the container properties anyway (and caches
                # them), and it separates "container missing" (an error) from "item missing" (a miss).
                await self._sdk(operation, None, candidate.read)
                self._proxy = candidate
            return self._proxy

    # -- items -------------------------------------------------------------------------------------

    def _item(self, key: MemoryKey, record: Record, operation: str) -> tuple[dict[str, Any], int]:
        data = record.to_bytes()
        if len(data) > MAX_RECORD_BYTES:
            raise ValueTooLargeError(
                f"record is {len(data)} bytes; a Cosmos DB item holds at most {MAX_RECORD_BYTES} "
                "(2 MB after base64)",
                size=len(data),
                limit=MAX_RECORD_BYTES,
                tier=Tier.WARM,
                operation=operation,
                key=key.key,
            )
        item_id = cosmos_id(key)
        item: dict[str, Any] = {
            "id": item_id,
            "pk": item_id,
            "tenant": key.tenant,
            "ns": key.namespace,
            "v": base64.b64encode(data).decode("ascii"),
            "exp": record.expires_at,
        }
        if record.expires_at is not None:
            item["ttl"] = _ttl_seconds(record.expires_at, self._clock())
        return item, len(data)

    @staticmethod
    def _record(item: Mapping[str, Any], operation: str, key: MemoryKey) -> Record:
        etag = item.get("_etag")
        try:
            data = base64.b64decode(item["v"], validate=True)
            return Record.from_bytes(data, etag=str(etag) if etag is not None else None)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise CorruptValueError(
                f"item field 'v' is missing or not base64 ({type(exc).__name__})",
                tier=Tier.WARM,
                operation=operation,
                key=key.key,
            ) from exc
        except CorruptValueError as exc:
            raise retag_corrupt(exc, Tier.WARM, operation, key) from exc

    # -- TierStore ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the database and container (``/pk``, ``defaultTtl -1``) if missing; idempotent.

        Raises:
            AuthenticationError: creation is not allowed (Entra ID data-plane RBAC): deploy them with Bicep.
            ConfigurationError: the container exists with another partition key.
        """
        self._ensure_open("setup")
        async with self._open_lock:
            client = await self._open_client("setup")
            create_database = client.create_database_if_not_exists
            database = await self._sdk("setup", None, lambda: create_database(self.database))
            container = await self._sdk(
                "setup",
                None,
                lambda: database.create_container_if_not_exists(
                    id=self.container,
                    partition_key=PartitionKey(path=PARTITION_KEY_PATH),
                    default_ttl=-1,
                    indexing_policy=_INDEXING_POLICY,
                ),
            )
            properties = await self._sdk("setup", None, container.read)
            paths = properties.get("partitionKey", {}).get("paths")
            if paths != [PARTITION_KEY_PATH]:
                raise ConfigurationError(
                    f"{self._resource} has partition key {paths}; tiermem needs [{PARTITION_KEY_PATH!r}] "
                    "(recreate the container)",
                    tier=Tier.WARM,
                    operation="setup",
                )
            if properties.get("defaultTtl") is None:
                logger.warning(
                    "%s has no defaultTtl: Cosmos will not expire items by itself (set defaultTtl -1); "
                    "expired values are still never served",
                    self._resource,
                )
            self._proxy = container

    async def ping(self) -> None:
        """Read the container's properties (the first use of the adapter already does exactly that)."""
        self._ensure_open("ping")
        if self._proxy is None:
            await self._container("ping")
            return
        await self._sdk("ping", None, self._proxy.read)

    async def get(self, key: MemoryKey) -> Record | None:
        self._ensure_open("get")
        container = await self._container("get")
        item_id = cosmos_id(key)
        item = await self._sdk_or_none(
            "get", key, lambda: container.read_item(item_id, partition_key=item_id)
        )
        return None if item is None else self._record(item, "get", key)

    async def exists(self, key: MemoryKey) -> bool:
        self._ensure_open("exists")
        container = await self._container("exists")
        item_id = cosmos_id(key)
        item = await self._sdk_or_none(
            "exists", key, lambda: container.read_item(item_id, partition_key=item_id)
        )
        return item is not None and not _expired(item, self._clock())

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        self._ensure_open("set")
        item, size = self._item(key, record, "set")
        container = await self._container("set")
        return await self._write(container, key, item, size, if_match=if_match, if_absent=if_absent)

    async def _write(
        self,
        container: ContainerProxy,
        key: MemoryKey,
        item: dict[str, Any],
        size: int,
        *,
        if_match: str | None,
        if_absent: bool,
    ) -> str | None:
        item_id = item["id"]

        async def replace(etag: str) -> Any:
            # A 404 is a conflict too: the item we were told to replace is gone.
            return await self._sdk_or_none(
                "set",
                key,
                lambda: container.replace_item(
                    item_id, item, etag=etag, match_condition=MatchConditions.IfNotModified, no_response=True
                ),
                size=size,
            )

        # no_response: Cosmos would otherwise echo the whole item (up to 2 MB); the ETag is a header.
        if if_match is not None:
            replaced = await replace(if_match)
            if replaced is None:
                why = "etag does not match (no such item)"
                raise ConflictError(why, tier=Tier.WARM, operation="set", key=key.key)
            return _etag_of(replaced)
        if not if_absent:
            upsert = container.upsert_item
            upserted = await self._sdk("set", key, lambda: upsert(item, no_response=True), size=size)
            return _etag_of(upserted)
        # Create-only. A 409 means an item exists; an expired one must not block the write, so it is
        # replaced conditionally on the ETag we saw (a concurrent writer then wins with a conflict).
        for _ in range(2):  # a second create only if the blocking item vanished in between
            try:
                created = await self._sdk(
                    "set", key, lambda: container.create_item(item, no_response=True), size=size
                )
                return _etag_of(created)
            except ConflictError:
                existing = await self._sdk_or_none(
                    "set", key, lambda: container.read_item(item_id, partition_key=item_id)
                )
            if existing is None:
                continue
            if not _expired(existing, self._clock()):
                raise ConflictError("key already exists", tier=Tier.WARM, operation="set", key=key.key)
            replaced = await replace(str(existing.get("_etag")))
            if replaced is None:
                continue
            return _etag_of(replaced)
        raise ConflictError("key was written concurrently", tier=Tier.WARM, operation="set", key=key.key)

    async def delete(self, key: MemoryKey) -> None:
        self._ensure_open("delete")
        container = await self._container("delete")
        item_id = cosmos_id(key)
        await self._sdk_or_none("delete", key, lambda: container.delete_item(item_id, partition_key=item_id))

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        """ReadMany (``read_items``) in chunks; results mapped back to input order, ``None`` for misses."""
        self._ensure_open("mget")
        if not keys:
            return []
        container = await self._container("mget")
        ids = {cosmos_id(mk): mk for mk in keys}
        chunks: list[list[tuple[str, str]]] = [[]]
        chars = 0
        for item_id in ids:
            if len(chunks[-1]) >= _READ_MANY_MAX_ITEMS or chars + 2 * len(item_id) > _READ_MANY_MAX_CHARS:
                chunks.append([])
                chars = 0
            chunks[-1].append((item_id, item_id))
            chars += 2 * len(item_id)
        found: dict[str, Record] = {}

        async def read(chunk: list[tuple[str, str]]) -> None:
            items = await self._sdk(
                "mget", None, lambda: container.read_items(chunk, max_concurrency=self._max_concurrency)
            )
            for item in items:
                mk = ids.get(item.get("id", ""))
                if mk is not None:
                    found[item["id"]] = self._record(item, "mget", mk)

        await for_each(chunks, read, self._max_concurrency)
        return [found.get(cosmos_id(mk)) for mk in keys]

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        """Upserts (creates with ``if_absent``) with at most ``max_concurrency`` in flight.

        Not atomic: Cosmos has no cross-partition transaction. With ``if_absent`` live keys are skipped.

        Raises:
            BatchWriteError: some items failed; ``written`` and ``failed`` say which.
        """
        self._ensure_open("mset")
        if not items:
            return
        try:
            container = await self._container("mset")
        except TierError as exc:
            failed = {mk.key: exc for mk, _ in items}
            raise BatchWriteError(
                "cosmos mset wrote nothing", written=[], failed=failed, tier=Tier.WARM
            ) from exc

        async def write(mk: MemoryKey, record: Record) -> None:
            item, size = self._item(mk, record, "mset")
            await self._write(container, mk, item, size, if_match=None, if_absent=if_absent)

        await self._write_each(
            items, write, if_absent=if_absent, concurrency=self._max_concurrency, what="cosmos"
        )

    # -- WarmMemory --------------------------------------------------------------------------------

    @staticmethod
    def _scope_query(select: str, tenant: str, namespace: str | None) -> tuple[str, list[dict[str, Any]]]:
        validate_scope(tenant, "tenant")
        params: list[dict[str, Any]] = [{"name": "@tenant", "value": tenant}]
        where = "c.tenant = @tenant"
        if namespace is not None:
            validate_scope(namespace, "namespace")
            where += " AND c.ns = @ns"
            params.append({"name": "@ns", "value": namespace})
        return f"{select} WHERE {where}", params

    @staticmethod
    def _parse_id(item_id: Any, operation: str) -> MemoryKey:
        try:
            return parse_cosmos_id(item_id)
        except (TypeError, ValueError, AttributeError) as exc:
            raise CorruptValueError(
                f"item id {str(item_id)[:80]!r} is not a tiermem id", tier=Tier.WARM, operation=operation
            ) from exc

    async def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        """Every stored key of a tenant (optionally one namespace), expired ones included.

        A cross-partition query (every physical partition is asked): an operations tool, not a hot path.
        """
        query, params = self._scope_query("SELECT c.id FROM c", tenant, namespace)
        self._ensure_open("scan")
        container = await self._container("scan")
        pages = container.query_items(query, parameters=params, max_item_count=_SCAN_PAGE).by_page()

        async def next_page() -> list[Any] | None:
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return None
            return [row["id"] async for row in page]

        while True:
            ids = await self._sdk("scan", None, next_page)
            if ids is None:
                return
            for item_id in ids:
                yield self._parse_id(item_id, "scan")

    async def purge(self, tenant: str, namespace: str | None = None) -> int:
        """Delete every item of a tenant (or one namespace); return how many this call deleted.

        Rounds of "query up to 500 ids, delete them" until the query comes back empty. Each round
        starts a fresh query, so deleting never shifts a continuation under our feet.
        """
        query, params = self._scope_query("SELECT c.id FROM c", tenant, namespace)
        self._ensure_open("purge")
        container = await self._container("purge")
        deleted = 0

        async def page() -> list[Any]:
            # Iterate rows (not pages: a cross-partition page may be empty) and stop after a round's worth.
            ids: list[Any] = []
            async for row in container.query_items(query, parameters=params, max_item_count=_PURGE_PAGE):
                ids.append(row["id"])
                if len(ids) >= _PURGE_PAGE:
                    break
            return ids

        async def remove(item_id: str) -> None:
            nonlocal deleted

            async def call() -> bool:
                await container.delete_item(item_id, partition_key=item_id)
                return True

            if await self._sdk_or_none("purge", None, call) is not None:  # 404: deleted by someone else
                deleted += 1

        while True:
            self._ensure_open("purge")
            ids = await self._sdk("purge", None, page)
            if not ids:
                return deleted
            await for_each([str(item_id) for item_id in ids], remove, self._max_concurrency)

    async def _close(self) -> None:
        client, self._client, self._proxy = self._client, None, None
        if client is not None and self._owns_client:
            await self._sdk("aclose", None, client.close)

    # -- collections (tiermem._collection): the one hook, sharing this container and translation ----

    _collections: CosmosCollectionStore | None = None

    def collection_store(self) -> CosmosCollectionStore:
        """Collections in this container, one logical partition each (docs/adr/0012)."""
        if self._collections is None:
            from tiermem.tiers.cosmos_collections import CosmosCollectionStore

            self._collections = CosmosCollectionStore(
                self._container, self._sdk, self._sdk_or_none, self._clock, self._max_concurrency
            )
        return self._collections

    def lifecycle_store(self) -> CosmosScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.azure_lifecycle import CosmosScopeStore

        return CosmosScopeStore(self)


async def _discard(client: CosmosClient) -> None:
    # Release the HTTP session a half-opened client holds; the failure that got us here is what
    # the caller needs to see, not a secondary one from closing.
    with contextlib.suppress(Exception):
        await client.close()
