"""Launchers for the local stand-ins used by tiermem's tests and benchmarks.

Plain classes, no pytest dependency (the pytest plugin lives in :mod:`tests.services.fixtures`).
See ``README.md`` in this directory for what each stand-in does and does not model.
"""

from tests.services._process import ServiceStartupError, ServiceUnavailableError
from tests.services.azurite import Azurite
from tests.services.cosmos import CosmosServer
from tests.services.entra_redis import EntraRedis
from tests.services.identity import REDIS_RESOURCE, STORAGE_RESOURCE, VAULT_RESOURCE, ManagedIdentityEndpoint
from tests.services.keyvault import KeyVaultFake
from tests.services.redis import RedisCluster, RedisServer
from tests.services.tls import TlsMaterial, make_tls_material

__all__ = [
    "REDIS_RESOURCE",
    "STORAGE_RESOURCE",
    "VAULT_RESOURCE",
    "Azurite",
    "CosmosServer",
    "EntraRedis",
    "KeyVaultFake",
    "ManagedIdentityEndpoint",
    "RedisCluster",
    "RedisServer",
    "ServiceStartupError",
    "ServiceUnavailableError",
    "TlsMaterial",
    "make_tls_material",
]
