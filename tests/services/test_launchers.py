"""Self-tests of the stand-in launchers: every fixture is exercised against the real service."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from azure.core import MatchConditions
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosResourceNotFoundError,
)
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient
from azure.storage.blob.aio import BlobServiceClient
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.auth.token import TokenInterface
from redis.exceptions import RedisClusterException
from redis_entraid.cred_provider import create_from_default_azure_credential, create_from_managed_identity
from redis_entraid.identity_provider import ManagedIdentityType

from tests.services.azurite import Azurite
from tests.services.entra_redis import EntraRedis
from tests.services.fixtures import BlobService, CosmosService, RedisService, require_local
from tests.services.identity import REDIS_RESOURCE, STORAGE_RESOURCE, VAULT_RESOURCE, ManagedIdentityEndpoint
from tests.services.keyvault import KeyVaultFake
from tests.services.redis import RedisServer
from tests.services.tls import TlsMaterial

# -- Redis ------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_ping_and_flush(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        assert await client.ping()
        assert await client.dbsize() == 0  # redis_url flushed before the test
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


@pytest.mark.redis
def test_redis_restart_keeps_port_and_loses_data(redis_server: RedisService) -> None:
    server = require_local(redis_server, RedisServer)
    port, pid = server.port, server.pid
    with redis.Redis.from_url(server.url, socket_timeout=5) as client:
        client.set("survives", "no")
        server.restart()
        assert (server.port, server.pid != pid) == (port, True)
        # The pooled connection died with the old process; redis-py reconnects on the next call.
        assert client.get("survives") is None
        assert client.ping()


@pytest.mark.redis
async def test_redis_cluster_cross_slot_multi_key(redis_cluster_nodes: list[tuple[str, int]]) -> None:
    cluster = AsyncRedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in redis_cluster_nodes])
    try:
        await cluster.initialize()
        assert len(cluster.get_primaries()) == len(redis_cluster_nodes)
        keys = [f"key:{i}" for i in range(12)]
        slots = {cluster.keyslot(key) for key in keys}
        assert len(slots) > 1
        owners = {node.name for key in keys if (node := cluster.get_node_from_key(key)) is not None}
        assert len(owners) > 1, "keys should span several nodes"

        # Plain MSET/MGET across slots are refused by the client before anything is sent ...
        with pytest.raises(RedisClusterException):
            await cluster.mset(dict.fromkeys(keys, "x"))
        with pytest.raises(RedisClusterException):
            await cluster.mget(keys)
        # ... the *_nonatomic variants split by slot (one command per slot) and reassemble in order.
        mapping = {key: f"value-{i}" for i, key in enumerate(keys)}
        assert await cluster.mset_nonatomic(mapping)
        assert await cluster.mget_nonatomic(keys) == [v.encode() for v in mapping.values()]
        # Keys sharing a hash tag live in one slot, so the plain commands work.
        tagged = {f"{{t}}:{i}": str(i) for i in range(5)}
        assert await cluster.mset(tagged)
        assert await cluster.mget(list(tagged)) == [v.encode() for v in tagged.values()]
    finally:
        await cluster.aclose()


# -- Blob ---------------------------------------------------------------------------------------


@pytest.mark.blob
async def test_blob_round_trip_with_connection_string(azurite: BlobService, blob_container_name: str) -> None:
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = await service.create_container(blob_container_name)
        await container.upload_blob("a/b.bin", b"payload", overwrite=True)
        assert await (await container.download_blob("a/b.bin")).readall() == b"payload"
        with pytest.raises(ResourceNotFoundError):
            await container.download_blob("missing.bin")


@pytest.mark.blob
async def test_blob_round_trip_with_managed_identity_over_https(
    azurite_oauth: Azurite,
    managed_identity_env: ManagedIdentityEndpoint,
    tls_material: TlsMaterial,
    blob_container_name: str,
) -> None:
    assert azurite_oauth.blob_endpoint.startswith("https://127.0.0.1:")
    before = len(managed_identity_env.issued)
    async with (
        ManagedIdentityCredential() as credential,
        BlobServiceClient(
            azurite_oauth.blob_endpoint, credential=credential, connection_verify=str(tls_material.ca_bundle)
        ) as service,
    ):
        container = await service.create_container(blob_container_name)
        await container.upload_blob("x.txt", b"hello over oauth")
        assert await (await container.download_blob("x.txt")).readall() == b"hello over oauth"
    issued = managed_identity_env.issued[before:]
    assert [token.resource for token in issued] == [STORAGE_RESOURCE]


class _StaticCredential:
    """An AsyncTokenCredential returning one fixed token."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _StaticCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


@pytest.mark.blob
async def test_blob_oauth_rejects_token_for_another_audience(
    azurite_oauth: Azurite, managed_identity: ManagedIdentityEndpoint, tls_material: TlsMaterial
) -> None:
    credential = _StaticCredential(managed_identity.mint(VAULT_RESOURCE))
    async with BlobServiceClient(
        azurite_oauth.blob_endpoint, credential=credential, connection_verify=str(tls_material.ca_bundle)
    ) as service:
        with pytest.raises(ClientAuthenticationError, match="audience"):
            await service.get_service_properties()


# -- Cosmos -------------------------------------------------------------------------------------


@pytest.mark.cosmos
async def test_cosmos_crud_not_found_read_many_and_etags(
    cosmos_server: CosmosService, cosmos_database_name: str, cosmos_container_name: str
) -> None:
    async with CosmosClient(cosmos_server.endpoint, credential=cosmos_server.key) as client:
        database = await client.create_database_if_not_exists(cosmos_database_name)
        container = await database.create_container(
            cosmos_container_name, partition_key=PartitionKey(path="/pk"), default_ttl=-1
        )
        first = await container.upsert_item({"id": "a", "pk": "p1", "v": 1})
        await container.upsert_item({"id": "b", "pk": "p2", "v": 2})
        await container.upsert_item({"id": "c", "pk": "p1", "v": 3})

        assert (await container.read_item("a", partition_key="p1"))["v"] == 1
        with pytest.raises(CosmosResourceNotFoundError):
            await container.read_item("missing", partition_key="p1")
        with pytest.raises(CosmosResourceNotFoundError):  # right id, wrong partition
            await container.read_item("b", partition_key="p1")

        many = await container.read_items([("a", "p1"), ("missing", "p1"), ("b", "p2")])
        assert sorted((item["id"], item["pk"]) for item in many) == [("a", "p1"), ("b", "p2")]
        assert await container.read_items([("missing", "p1")]) == []

        in_p1 = [item["id"] async for item in container.query_items("SELECT * FROM c", partition_key="p1")]
        assert sorted(in_p1) == ["a", "c"]
        everything = [
            item["id"]
            async for item in container.query_items(
                "SELECT * FROM c WHERE c.v > @v", parameters=[{"name": "@v", "value": 1}]
            )
        ]
        assert sorted(everything) == ["b", "c"]

        with pytest.raises(CosmosAccessConditionFailedError):
            await container.replace_item(
                "a",
                {"id": "a", "pk": "p1", "v": 9},
                etag='"stale"',
                match_condition=MatchConditions.IfNotModified,
            )
        replaced = await container.replace_item(
            "a",
            {"id": "a", "pk": "p1", "v": 9},
            etag=first["_etag"],
            match_condition=MatchConditions.IfNotModified,
        )
        assert replaced["_etag"] != first["_etag"]
        with pytest.raises(CosmosAccessConditionFailedError):
            await container.delete_item(
                "a", partition_key="p1", etag=first["_etag"], match_condition=MatchConditions.IfNotModified
            )

        await container.delete_item("a", partition_key="p1")
        with pytest.raises(CosmosResourceNotFoundError):
            await container.delete_item("a", partition_key="p1")
        with pytest.raises(CosmosResourceNotFoundError):
            await container.replace_item("a", {"id": "a", "pk": "p1"})


@pytest.mark.cosmos
async def test_cosmos_transactional_batch(
    cosmos_server: CosmosService, cosmos_database_name: str, cosmos_container_name: str
) -> None:
    async with CosmosClient(cosmos_server.endpoint, credential=cosmos_server.key) as client:
        database = await client.create_database_if_not_exists(cosmos_database_name)
        container = await database.create_container(
            cosmos_container_name, partition_key=PartitionKey(path="/pk")
        )
        results = await container.execute_item_batch(
            [("upsert", ({"id": "x", "pk": "p"},)), ("create", ({"id": "y", "pk": "p"},)), ("read", ("x",))],
            partition_key="p",
        )
        assert [r["statusCode"] for r in results] == [201, 201, 200]
        with pytest.raises(CosmosBatchOperationError) as failed:
            await container.execute_item_batch(
                [("create", ({"id": "z", "pk": "p"},)), ("create", ({"id": "y", "pk": "p"},))],
                partition_key="p",
            )
        assert failed.value.error_index == 1
        with pytest.raises(CosmosResourceNotFoundError):  # the first operation was rolled back
            await container.read_item("z", partition_key="p")


# -- identity and Key Vault ---------------------------------------------------------------------


async def test_default_azure_credential_uses_the_local_endpoint(
    managed_identity_env: ManagedIdentityEndpoint,
) -> None:
    async with DefaultAzureCredential() as credential:
        token = await credential.get_token(f"{STORAGE_RESOURCE}/.default")
    claims = managed_identity_env.verify(token.token, audience=STORAGE_RESOURCE)
    assert claims["iss"] == f"https://sts.windows.net/{managed_identity_env.tenant_id}/"
    assert claims["oid"] == managed_identity_env.identity()[1]


async def test_key_vault_secret_with_managed_identity(
    key_vault: KeyVaultFake, managed_identity_env: ManagedIdentityEndpoint, tls_material: TlsMaterial
) -> None:
    key_vault.set_secret("redis-password", "s3cret")
    async with (
        ManagedIdentityCredential() as credential,
        SecretClient(
            key_vault.vault_url,
            credential,
            verify_challenge_resource=False,
            connection_verify=str(tls_material.ca_bundle),
        ) as client,
    ):
        secret = await client.get_secret("redis-password")
        assert secret.value == "s3cret"
        written = await client.set_secret("written", "v1", content_type="text/plain")
        assert (await client.get_secret("written", written.properties.version)).value == "v1"
        with pytest.raises(ResourceNotFoundError):
            await client.get_secret("absent")
    statuses = [status for _, path, status in key_vault.requests if "redis-password" in path]
    assert statuses[:2] == [401, 200]  # the challenge, then the authorized request
    assert any(token.resource == VAULT_RESOURCE for token in managed_identity_env.issued)


# -- Entra ID Redis -----------------------------------------------------------------------------


async def _ignore_token(token: TokenInterface) -> None:
    return None


async def _ignore_error(error: Exception) -> None:
    return None


@pytest.mark.redis
async def test_entra_redis_auth_and_refresh(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    identity = managed_identity_env
    # Without credentials the server refuses commands (the default user is disabled).
    with socket.create_connection((entra_redis.host, entra_redis.port), timeout=5) as anonymous:
        anonymous.sendall(b"PING\r\n")
        assert anonymous.recv(128).startswith(b"-NOAUTH")
    auth_calls_before = _auth_calls(entra_redis)
    # redis-entraid renews at 70% of the lifetime: 4 s tokens are renewed after about 2.8 s.
    identity.set_lifetime(4, resource=REDIS_RESOURCE)
    provider = create_from_managed_identity(
        identity_type=ManagedIdentityType.SYSTEM_ASSIGNED, resource=REDIS_RESOURCE
    )
    client = aredis.Redis(host=entra_redis.host, port=entra_redis.port, credential_provider=provider)
    try:
        assert await client.acl_whoami() == identity.identity()[1]  # the username is the oid claim
        first = [t for t in identity.issued if t.resource == REDIS_RESOURCE][-1]
        # Keep using the same client until the first token has expired. As soon as one renewal
        # is seen, lifetimes go back to the default so that the *next* renewal yields a long-lived
        # token: the provider's renewal timer cannot be cancelled, and must not fire again during
        # the session.
        safety = time.monotonic() + 30
        while True:
            await client.incr("uses")
            renewed = [
                t for t in identity.issued if t.resource == REDIS_RESOURCE and t.issued_at > first.issued_at
            ]
            if renewed:
                identity.set_lifetime(None, resource=REDIS_RESOURCE)
            long_lived = [t for t in renewed if t.expires_on - int(t.claims["iat"]) > 60]
            if time.time() > first.expires_on + 1 and long_lived:
                break
            assert time.monotonic() < safety, f"no renewal seen: {identity.issued}"
            await asyncio.sleep(0.2)
        assert await client.ping()
        assert renewed[0].issued_at < first.expires_on, "the renewal came after expiry"
        # The renewed tokens were sent on the existing connection (AUTH <oid> <token>); the
        # initial authentication used HELLO, which is not counted as AUTH.
        assert _auth_calls(entra_redis) >= auth_calls_before + 2
        # The expired token's password is gone; a new connection uses a current token.
        assert first.token not in entra_redis.registered[first.object_id]
        fresh = aredis.Redis(
            host=entra_redis.host,
            port=entra_redis.port,
            credential_provider=create_from_managed_identity(
                identity_type=ManagedIdentityType.SYSTEM_ASSIGNED, resource=REDIS_RESOURCE
            ),
        )
        try:
            assert await fresh.ping()
        finally:
            await fresh.aclose()
    finally:
        identity.set_lifetime(None, resource=REDIS_RESOURCE)
        await client.aclose()
        # Keep the provider's remaining (long) renewal timer away from the closed pool.
        provider.on_next(_ignore_token)
        provider.on_error(_ignore_error)


@pytest.mark.redis
async def test_entra_redis_with_default_azure_credential(
    entra_redis: EntraRedis, managed_identity_env: ManagedIdentityEndpoint
) -> None:
    provider = create_from_default_azure_credential((f"{REDIS_RESOURCE}/.default",))
    client = aredis.Redis(host=entra_redis.host, port=entra_redis.port, credential_provider=provider)
    try:
        assert await client.acl_whoami() == managed_identity_env.identity()[1]
    finally:
        await client.aclose()
        provider.on_next(_ignore_token)
        provider.on_error(_ignore_error)


def _auth_calls(glue: EntraRedis) -> int:
    stats = glue.admin().info("commandstats")
    auth = stats.get("cmdstat_auth", {})
    return int(auth.get("calls", 0)) if isinstance(auth, dict) else 0
