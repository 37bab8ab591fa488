"""Cold tier on Azure Blob Storage (``pip install 'tiermem[blob]'``).

One block blob per logical key, named ``{tenant}/{namespace}/{percent-encoded key}`` (see
:func:`tiermem._keys.blob_name`). The blob body is the record payload exactly as the codec made
it (a complete gzip stream when the record is compressed); the envelope header lives in blob
metadata, so no byte of the body is ours and a compressed value is a valid ``Content-Encoding:
gzip`` object for any HTTP client::

    tm_v    envelope version ("1")
    tm_kind RecordKind as a decimal integer
    tm_gz   "1" when the body is gzip, else "0"
    tm_crc  CRC32 of the body, decimal
    tm_exp  absolute expiry in Unix seconds (``repr`` of the float), "" for none

Blob Storage has no TTL: the expiry in metadata is checked by the client on every read, and
:meth:`BlobColdMemory.sweep` (``tiermem sweep``) deletes expired blobs; a lifecycle rule (Bicep)
bounds the age of the container. Downloads use ``decompress=False`` so the client verifies the
stored bytes (CRC32, then gzip's own CRC) itself.

Retries for 5xx, timeouts and connection errors are the SDK's own ``ExponentialRetry``, configured
from the constructor, except for a connection refused at connect or a host name that does not exist,
which fail at once (ADR 0017); this adapter adds no second retry loop. Every SDK exception is translated in
:func:`_translate`.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Unpack
from urllib.parse import urlsplit

from tiermem._codec import Record, RecordKind
from tiermem._errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CorruptValueError,
    NotProvisionedError,
    ThrottledError,
    TierError,
    TierMemError,
    TierUnavailableError,
)
from tiermem._keys import blob_name, parse_blob_name, validate_scope
from tiermem._protocols import MemoryKey, Tier, TierInfo
from tiermem.tiers._azure import SDK_FAILURES, TRANSPORT_FAILURES, refused_at_connect
from tiermem.tiers._base import TierAdapter, brief, check_options, for_each, require_extra, retag_corrupt
from tiermem.tiers._blob_client import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_MAX_BLOCK_SIZE,
    DEFAULT_MAX_CHUNK_GET_SIZE,
    DEFAULT_MAX_SINGLE_GET_SIZE,
    DEFAULT_MAX_SINGLE_PUT_SIZE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BACKOFF_BASE,
    DEFAULT_RETRY_TOTAL,
    BlobOptions,
    open_service,
)

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties
    from azure.storage.blob.aio import BlobClient, ContainerClient

    from tiermem.tiers.azure_lifecycle import BlobScopeStore
    from tiermem.tiers.cold_collections import ColdCollectionStore

__all__ = [
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_MAX_BLOCK_SIZE",
    "DEFAULT_MAX_CHUNK_GET_SIZE",
    "DEFAULT_MAX_SINGLE_GET_SIZE",
    "DEFAULT_MAX_SINGLE_PUT_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY_BACKOFF",
    "DEFAULT_RETRY_BACKOFF_BASE",
    "DEFAULT_RETRY_TOTAL",
    "BlobColdMemory",
    "BlobOptions",
]

_IMPORT_ERROR: ImportError | None = None
try:
    from azure.core.exceptions import (
        HttpResponseError,
        IncompleteReadError,
        ResourceExistsError,
        ResourceModifiedError,
    )
    from azure.storage.blob import ContentSettings

    from tiermem.tiers._azure import ClientAuthenticationError, MatchConditions
except ImportError as missing:  # pragma: no cover - exercised by the no-extras test in a subprocess
    _IMPORT_ERROR = missing


_log = logging.getLogger("tiermem.blob")

CONTENT_TYPE: Final = "application/octet-stream"
_ENVELOPE_VERSION: Final = "1"
_CONTAINER_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_CRC: Final = 0xFFFFFFFF
# A download longer than max_single_get_size continues with range requests pinned to the first
# response's ETag; a concurrent overwrite fails them with 412. Start over a few times, then give up.
_DOWNLOAD_ATTEMPTS: Final = 3
# Create-only writes that find an expired blob replace it conditionally; a racing writer can make
# that condition fail, so the decision is taken again (bounded).
_CREATE_ATTEMPTS: Final = 3


# -- envelope header <-> blob metadata ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Header:
    kind: RecordKind
    compressed: bool
    expires_at: float | None
    checksum: int
    wid: bytes = b""

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _metadata(record: Record) -> dict[str, str]:
    meta = {
        "tm_v": _ENVELOPE_VERSION,
        "tm_kind": str(int(record.kind)),
        "tm_gz": "1" if record.compressed else "0",
        "tm_crc": str(record.checksum),
        "tm_exp": "" if record.expires_at is None else repr(float(record.expires_at)),
    }
    if record.wid:
        meta["tm_wid"] = record.wid.hex()  # the write id (ADR 0006): confirms an unknown outcome
    return meta


def _parse_header(metadata: Mapping[str, str] | None) -> _Header:
    """The envelope header from blob metadata; :class:`CorruptValueError` if it is not ours or damaged."""
    meta = {name.lower(): value for name, value in (metadata or {}).items()}
    version = meta.get("tm_v")
    if version is None:
        raise CorruptValueError("blob has no tiermem metadata (tm_v missing): not written by tiermem")
    if version != _ENVELOPE_VERSION:
        raise CorruptValueError(f"unsupported envelope version {version!r:.20} in blob metadata")
    try:
        kind = RecordKind(int(meta.get("tm_kind", "")))
    except ValueError as exc:
        raise CorruptValueError(
            f"blob metadata tm_kind is not a record kind: {meta.get('tm_kind')!r:.20}"
        ) from exc
    gz = meta.get("tm_gz")
    if gz not in ("0", "1"):
        raise CorruptValueError(f"blob metadata tm_gz must be '0' or '1', got {gz!r:.20}")
    crc_text = meta.get("tm_crc", "")
    if not (crc_text.isascii() and crc_text.isdigit()) or int(crc_text) > _MAX_CRC:
        raise CorruptValueError(f"blob metadata tm_crc is not a CRC32: {crc_text!r:.20}")
    exp_text = meta.get("tm_exp", "")  # absent is tolerated like "": some proxies drop empty headers
    expires_at: float | None = None
    if exp_text:
        try:
            expires_at = float(exp_text)
        except ValueError as exc:
            raise CorruptValueError(f"blob metadata tm_exp is not a number: {exp_text!r:.40}") from exc
        if not math.isfinite(expires_at) or expires_at <= 0:
            raise CorruptValueError(f"blob metadata tm_exp is out of range: {exp_text!r:.40}")
    wid_text = meta.get("tm_wid", "")
    try:
        wid = bytes.fromhex(wid_text)
    except ValueError as exc:
        raise CorruptValueError(f"blob metadata tm_wid is not hex: {wid_text!r:.40}") from exc
    return _Header(kind, gz == "1", expires_at, int(crc_text), wid)


def _own_key(name: str) -> MemoryKey | None:
    """The key a blob name encodes, or ``None`` for names tiermem would never write."""
    try:
        mk = parse_blob_name(name)
    except ValueError:  # InvalidKeyError/InvalidScopeError, bad base64 or UTF-8
        return None
    return mk if blob_name(mk) == name else None


# -- the one place SDK exceptions are translated -------------------------------------------------


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _translate(exc: BaseException, *, operation: str, key: MemoryKey | None, container: str) -> TierMemError:
    """The one place where SDK and transport exceptions become tiermem errors."""

    def error(cls: type[TierMemError], message: str) -> TierMemError:
        return cls(message, tier=Tier.COLD, operation=operation, key=key.key if key is not None else None)

    if isinstance(exc, ClientAuthenticationError):
        # Both a rejected token (401/403 AuthenticationFailed) and a credential that could not get
        # one (CredentialUnavailableError, a managed-identity endpoint refusing) land here.
        return error(
            AuthenticationError, f"blob: the credential could not get a token or was rejected: {brief(exc)}"
        )
    if isinstance(exc, IncompleteReadError):
        return error(TierUnavailableError, f"blob: the connection broke during a download: {brief(exc)}")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code = _error_code(exc)
        detail = f"blob {status}" + (f" {code}" if code else "") + f": {brief(exc)}"
        if isinstance(exc, ResourceExistsError | ResourceModifiedError) or status in (409, 412):
            why = "etag does not match" if status == 412 else "blob already exists"
            return error(ConflictError, f"{why} ({detail})")
        if status in (401, 403):
            return error(
                AuthenticationError, f"access denied ({detail}): check the identity's data-plane role"
            )
        if status == 404:
            if code == "ContainerNotFound":
                return error(
                    NotProvisionedError,
                    f"blob container {container!r} does not exist: run `tiermem init` (or "
                    f"MemoryClient.setup()) to create it, or deploy it with Bicep ({detail})",
                )
            return error(TierError, f"blob not found ({detail})")
        if status == 429 or (status == 503 and code in ("ServerBusy", "")):
            return error(ThrottledError, f"throttled after the SDK's retries ({detail})")
        if status in (408, 503, 504) or code == "OperationTimedOut":
            return error(TierUnavailableError, detail)
        return error(TierError, detail)
    if isinstance(exc, TRANSPORT_FAILURES):
        if refused_at_connect(exc):  # not retried (ADR 0017): say what to check
            return error(
                TierUnavailableError,
                f"blob unreachable: connection refused or unknown host name (check the account URL or "
                f"connection string, and that the service runs): {brief(exc)}",
            )
        return error(TierUnavailableError, f"blob unreachable: {type(exc).__name__}: {brief(exc)}")
    return error(TierError, f"blob: {type(exc).__name__}: {brief(exc)}")


class BlobColdMemory(TierAdapter):
    """Cold tier on Azure Blob Storage (``azure.storage.blob.aio``): one block blob per key.

    Give exactly one of ``account_url`` + ``credential`` (Entra ID, the production choice),
    ``connection_string`` (a local emulator such as Azurite only) or ``service_client`` (a
    ``BlobServiceClient`` shared with other code). The adapter does no I/O before the first call
    and :meth:`setup` creates the container. It closes only a client it created; an injected
    client or credential is never closed.

    Args:
        account_url: ``https://<account>.blob.core.windows.net``; plain ``http`` only for loopback.
        container: container name (3-63 characters: lowercase letters, digits, single hyphens).
        credential: an ``AsyncTokenCredential`` (``DefaultAzureCredential``, ``ManagedIdentityCredential``).
        connection_string: an emulator connection string, a ``str`` or ``pydantic.SecretStr`` (kept as
            one); its endpoint must be on a loopback address. Never logged, never in ``repr``.
        service_client: an ``azure.storage.blob.aio.BlobServiceClient`` you already hold (shared with
            other code); it is never closed here, and its pipeline (retries, timeouts, transfer
            sizes) is used as it is. Give it
            ``min_large_block_upload_threshold <= max_block_size`` so blocks are streamed, not copied.
        max_concurrency: most blob operations in flight for one ``mget``, ``mset`` or ``sweep``.
        transfer_concurrency: parallel connections for one large upload or download (the SDK's
            ``max_concurrency``).
        max_single_put_size: larger bodies are uploaded as staged blocks (default 1 MiB: aiohttp
            writes a single put's body on the event loop in one piece and warns above 1 MiB).
        max_block_size: size of one staged block (default 4 MiB).
        max_single_get_size: the first download request fetches at most this much (default 32 MiB).
        max_chunk_get_size: size of the range requests after the first (default 4 MiB).
        retry_total: SDK retry attempts for 5xx, 408, timeouts and connection errors (default 3);
            a refused connection and an unknown host name are not retried (ADR 0017).
        retry_backoff: seconds before the first retry (default 0.5).
        retry_backoff_base: retry ``n`` waits ``retry_backoff + retry_backoff_base ** n`` seconds,
            with jitter of ``retry_backoff / 2`` (the SDK's ``ExponentialRetry``; default 2.0).
        connection_timeout: seconds to establish a connection (default 10).
        read_timeout: seconds to wait for data on an open connection (default 60).
        connection_verify: a CA bundle (PEM file) to trust instead of the system store, e.g. for
            an emulator with a private certificate. Verification cannot be turned off.
        audience: the Entra ID audience of the tokens to request; default ``https://storage.azure.com``
            (an account-specific ``https://<account>.blob.core.windows.net`` also works).
        clock: wall-clock source (Unix seconds) for expiry checks in ``exists``, ``set`` and ``sweep``.

    Raises:
        ImportError: ``azure-storage-blob`` or ``aiohttp`` is not installed.
        ConfigurationError: the arguments cannot work (the message says what to change).
    """

    tier = Tier.COLD
    failures = SDK_FAILURES

    def __init__(
        self, account_url: str | None = None, container: str = "tiermem", **options: Unpack[BlobOptions]
    ) -> None:
        require_extra(_IMPORT_ERROR, "BlobColdMemory", "azure-storage-blob and aiohttp", "blob")
        check_options(options, BlobOptions.__optional_keys__, type(self).__name__)
        if not isinstance(container, str) or not _CONTAINER_RE.fullmatch(container):
            raise ConfigurationError(
                f"container must be 3-63 lowercase letters, digits and single hyphens, got {container!r:.80}"
            )
        max_concurrency = options.get("max_concurrency", 8)
        transfer_concurrency = options.get("transfer_concurrency", 4)
        if max_concurrency < 1 or transfer_concurrency < 1:
            raise ConfigurationError("max_concurrency and transfer_concurrency must be >= 1")
        service, self._owns_service = open_service(account_url, options)
        self.container = container
        self._service = service
        self._container: ContainerClient = service.get_container_client(container)
        self._max_concurrency = max_concurrency
        self._transfer_concurrency = transfer_concurrency
        self._clock = options.get("clock", time.time)
        host = urlsplit(service.url).hostname
        self._host = host
        self._info = TierInfo(
            db_system="azure_blob", server_address=host, max_record_bytes=None, native_ttl=False
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self._host!r}, container={self.container!r})"

    # -- SDK failures: the only place they are translated ------------------------------------------

    def _translate(
        self, exc: BaseException, operation: str, key: MemoryKey | None, size: int | None
    ) -> TierMemError:
        return _translate(exc, operation=operation, key=key, container=self.container)

    def _is_miss(self, exc: BaseException) -> bool:
        """A 404 that means "no such blob" (not "no such container", which is a setup problem)."""
        if not isinstance(exc, HttpResponseError) or exc.status_code != 404:
            return False
        return _error_code(exc) != "ContainerNotFound"

    def _blob(self, key: MemoryKey) -> BlobClient:
        return self._container.get_blob_client(blob_name(key))

    def _header(self, metadata: Mapping[str, str] | None, operation: str, key: MemoryKey) -> _Header:
        try:
            return _parse_header(metadata)
        except CorruptValueError as exc:
            raise retag_corrupt(exc, Tier.COLD, operation, key) from exc

    # -- lifecycle and health ----------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the container (an existing one is fine). With RBAC the identity needs a data-plane
        role that may create containers; otherwise deploy the container with Bicep."""
        self._ensure_open("setup")

        async def create() -> None:
            try:
                await self._container.create_container()
            except ResourceExistsError as exc:
                if _error_code(exc) != "ContainerAlreadyExists":
                    raise  # e.g. ContainerBeingDeleted

        await self._sdk("setup", None, create)

    async def ping(self) -> None:
        """Raise unless the container answers (it must exist)."""
        self._ensure_open("ping")
        await self._sdk("ping", None, self._container.get_container_properties)

    async def _close(self) -> None:
        if self._owns_service:
            await self._service.close()

    # -- single keys -----------------------------------------------------------------------------

    async def get(self, key: MemoryKey) -> Record | None:
        """One download; body, metadata and ETag come in the same response. Expired records are
        returned as they are (the client checks expiry)."""
        self._ensure_open("get")
        blob = self._blob(key)

        async def download() -> tuple[bytes, BlobProperties]:
            # Properties come with the first response; no second round trip. The body is read raw:
            # a compressed payload is a gzip stream that the client verifies and inflates itself.
            stream = await blob.download_blob(max_concurrency=self._transfer_concurrency, decompress=False)
            return await stream.readall(), stream.properties

        for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
            try:
                found = await self._sdk_or_none("get", key, download)
            except ConflictError:
                if attempt == _DOWNLOAD_ATTEMPTS:
                    raise
                continue  # overwritten between two ranges of one large download: read the new one
            if found is None:
                return None
            data, props = found
            header = self._header(props.metadata, "get", key)
            return Record(
                header.kind,
                data,
                header.compressed,
                header.expires_at,
                header.checksum,
                props.etag,
                wid=header.wid,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _properties(self, key: MemoryKey, operation: str) -> BlobProperties | None:
        blob = self._blob(key)
        return await self._sdk_or_none(operation, key, blob.get_blob_properties)

    async def exists(self, key: MemoryKey) -> bool:
        """Whether a live (unexpired) value is stored; one properties request, no body."""
        self._ensure_open("exists")
        props = await self._properties(key, "exists")
        if props is None:
            return False
        return not self._header(props.metadata, "exists", key).is_expired(self._clock())

    async def _upload(
        self, key: MemoryKey, record: Record, operation: str, *, overwrite: bool, etag: str | None = None
    ) -> str:
        blob = self._blob(key)
        settings = ContentSettings(
            content_type=CONTENT_TYPE, content_encoding="gzip" if record.compressed else None
        )
        conditions: dict[str, Any] = {}
        if etag is not None:
            conditions = {"etag": etag, "match_condition": MatchConditions.IfNotModified}

        async def upload() -> dict[str, Any]:
            return await blob.upload_blob(
                io.BytesIO(record.payload),  # a seekable stream: blocks are read from it, not copied
                length=len(record.payload),
                metadata=_metadata(record),
                content_settings=settings,
                overwrite=overwrite,
                max_concurrency=self._transfer_concurrency,
                **conditions,
            )

        if etag is None:
            result = await self._sdk(operation, key, upload)
        else:
            # Azure answers If-Match on a missing blob with 412 (Azurite too), but a 404 means the same.
            found = await self._sdk_or_none(operation, key, upload)
            if found is None:
                raise ConflictError(
                    "etag does not match: no such blob", tier=Tier.COLD, operation=operation, key=key.key
                )
            result = found
        return str(result["etag"])

    async def set(
        self, key: MemoryKey, record: Record, *, if_match: str | None = None, if_absent: bool = False
    ) -> str | None:
        """Upload ``record`` and return the new ETag.

        ``if_match`` is ``If-Match`` on the upload; ``if_absent`` is ``If-None-Match: *``, except
        that an existing but expired blob is replaced (conditionally on its ETag), because expiry
        is ours and Blob Storage does not know it.

        Raises:
            ConflictError: ``if_match`` did not match (or the blob is gone), or ``if_absent`` and a
                live value exists.
        """
        self._ensure_open("set")
        if if_absent:
            return await self._create(key, record, if_match)
        return await self._upload(key, record, "set", overwrite=True, etag=if_match)

    async def _create(self, key: MemoryKey, record: Record, if_match: str | None) -> str:
        """Create-only write: succeeds when no live value exists (and ``if_match`` matches, if given)."""
        for _ in range(_CREATE_ATTEMPTS):
            if if_match is None:
                try:
                    return await self._upload(key, record, "set", overwrite=False)
                except ConflictError:
                    pass  # something is there: a live value wins, an expired one may be replaced
            props = await self._properties(key, "set")
            if props is None:
                if if_match is not None:
                    raise ConflictError(
                        "etag does not match: no such blob", tier=Tier.COLD, operation="set", key=key.key
                    )
                continue  # deleted since our attempt: try to create again
            if if_match is not None and props.etag != if_match:
                raise ConflictError("etag does not match", tier=Tier.COLD, operation="set", key=key.key)
            if not self._header(props.metadata, "set", key).is_expired(self._clock()):
                raise ConflictError("key already exists", tier=Tier.COLD, operation="set", key=key.key)
            try:
                return await self._upload(key, record, "set", overwrite=True, etag=props.etag)
            except ConflictError:
                if if_match is not None:
                    raise
                continue  # rewritten since we looked: decide again
        raise ConflictError(
            "key kept changing under a create-only write", tier=Tier.COLD, operation="set", key=key.key
        )

    async def delete(self, key: MemoryKey) -> None:
        """Delete the blob (and any snapshots); a missing blob is fine."""
        self._ensure_open("delete")
        blob = self._blob(key)
        await self._sdk_or_none("delete", key, lambda: blob.delete_blob(delete_snapshots="include"))

    # -- batches ----------------------------------------------------------------------------------

    async def mget(self, keys: Sequence[MemoryKey]) -> list[Record | None]:
        """Records in input order, ``None`` for misses; at most ``max_concurrency`` downloads at once."""
        self._ensure_open("mget")
        results: list[Record | None] = [None] * len(keys)

        async def one(item: tuple[int, MemoryKey]) -> None:
            index, mk = item
            results[index] = await self.get(mk)

        await for_each(enumerate(keys), one, self._max_concurrency)
        return results

    async def mset(self, items: Sequence[tuple[MemoryKey, Record]], *, if_absent: bool = False) -> None:
        """Upload many records with bounded concurrency; not atomic across keys.

        With ``if_absent`` keys that hold a live value are skipped silently (promotion).

        Raises:
            BatchWriteError: some uploads failed; ``written`` lists the keys that were uploaded.
        """
        self._ensure_open("mset")

        async def write(mk: MemoryKey, record: Record) -> None:
            await self.set(mk, record, if_absent=if_absent)

        await self._write_each(
            items, write, if_absent=if_absent, concurrency=self._max_concurrency, what="blob"
        )

    # -- listing and sweeping ---------------------------------------------------------------------

    async def scan(self, tenant: str, namespace: str | None = None) -> AsyncIterator[MemoryKey]:
        """Every stored key of a tenant (or one namespace), expired ones included, in name order.

        Blobs whose names tiermem would not write (uploaded by something else) are skipped.
        """
        self._ensure_open("scan")
        validate_scope(tenant, "tenant")
        prefix = f"{tenant}/"
        if namespace is not None:
            prefix += f"{validate_scope(namespace, 'namespace')}/"
        names = self._container.list_blob_names(name_starts_with=prefix).__aiter__()
        while True:
            # Only the SDK call is inside the translation: exceptions thrown into this generator at
            # its yield (GeneratorExit, the consumer's own) pass through untouched.
            try:
                name = await self._sdk("scan", None, names.__anext__)
            except StopAsyncIteration:
                return
            mk = _own_key(name)
            if mk is None:
                _log.debug("scan: skipping a blob whose name tiermem does not write")
                continue
            yield mk

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete blobs whose ``tm_exp`` has passed; return how many were deleted.

        Lists the whole container with metadata and deletes with bounded concurrency. Each delete is
        conditional on the listed ETag, so a value rewritten since the listing survives. Blobs that
        are not tiermem's (foreign names, missing or damaged metadata) are never deleted.
        """
        self._ensure_open("sweep")
        cutoff = self._clock() if now is None else now
        container = self._container
        deleted = 0
        skipped = 0

        async def expired() -> AsyncIterator[tuple[str, str]]:
            nonlocal skipped
            listing = container.list_blobs(include=["metadata"]).__aiter__()
            while True:
                try:
                    props = await self._sdk("sweep", None, listing.__anext__)
                except StopAsyncIteration:
                    return
                if _own_key(props.name) is None:
                    continue
                try:
                    header = _parse_header(props.metadata)
                except CorruptValueError:
                    skipped += 1  # not ours or damaged: leave it for an operator
                    continue
                if header.is_expired(cutoff):
                    yield props.name, str(props.etag)

        async def remove(item: tuple[str, str]) -> None:
            nonlocal deleted
            name, etag = item
            blob = container.get_blob_client(name)

            async def call() -> bool:
                await blob.delete_blob(
                    delete_snapshots="include", etag=etag, match_condition=MatchConditions.IfNotModified
                )
                return True

            try:
                done = await self._sdk_or_none("sweep", None, call)
            except ConflictError:
                return  # rewritten since the listing: the new value is not ours to judge
            if done:  # None: someone else deleted it first
                deleted += 1

        await for_each(expired(), remove, self._max_concurrency)
        if skipped:
            _log.warning("sweep left %d blob(s) with missing or damaged tiermem metadata", skipped)
        return deleted

    # -- collections (tiermem._collection): items as blobs under a "~tenant/" prefix ----------------

    _collections: ColdCollectionStore | None = None

    def collection_store(self) -> ColdCollectionStore:
        """Collections for a client without a warm tier (see ``tiers/cold_collections.py``)."""
        if self._collections is None:
            from tiermem.tiers.cold_collections import ColdCollectionStore

            self._collections = ColdCollectionStore(self, self._collection_keys)
        return self._collections

    async def _collection_keys(self, tenant: str, namespace: str) -> AsyncIterator[str]:
        from tiermem.tiers.cold_collections import parse_blob_key

        self._ensure_open("scan")
        prefix = f"{tenant}/{namespace}/"
        names = self._container.list_blob_names(name_starts_with=prefix).__aiter__()
        while True:
            try:
                name = await self._sdk("scan", None, names.__anext__)
            except StopAsyncIteration:
                return
            try:
                yield parse_blob_key(name[len(prefix) :])
            except (ValueError, UnicodeDecodeError):
                continue  # not a name tiermem writes

    def lifecycle_store(self) -> BlobScopeStore:
        """Listing and erasure of whole scopes on this tier (tiermem.lifecycle, docs/adr/0014)."""
        from tiermem.tiers.azure_lifecycle import BlobScopeStore

        return BlobScopeStore(self)
