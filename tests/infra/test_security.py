"""Security properties asserted on the parsed templates.

Each test reads the values the templates actually set, so weakening a template (turning local auth back
on, dropping a TLS minimum, widening a role scope, returning a key) makes a test fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra import _bicep as b

ROLE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ROLE_MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4b42-8a11-ff2a75da4f87"
COSMOS_BUILT_IN_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


def _var(template: dict[str, Any], name: str) -> Any:
    return template["variables"][name]["value"]


def _resolve(template: dict[str, Any], value: Any) -> Any:
    """Follow one level of `var` indirection (identifier -> variable value)."""
    if isinstance(value, str) and value in template.get("variables", {}):
        return _var(template, value)
    return value


# --- local auth / keys ---------------------------------------------------------------------------


def test_cosmos_local_auth_is_disabled() -> None:
    account = b.one_resource("Microsoft.DocumentDB/databaseAccounts").body["properties"]
    assert account["disableLocalAuth"] is True
    assert account["disableKeyBasedMetadataWriteAccess"] is True


def test_storage_shared_key_access_is_disabled() -> None:
    account = b.one_resource("Microsoft.Storage/storageAccounts").body["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["allowBlobPublicAccess"] is False


def test_redis_access_keys_are_disabled() -> None:
    database = b.one_resource("Microsoft.Cache/redisEnterprise/databases").body["properties"]
    assert database["accessKeysAuthentication"] == "Disabled"


def test_redis_entra_access_policy_goes_to_the_identity() -> None:
    redis = b.module("redis")
    assignment = b.one_resource("Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments")
    assert assignment.body["parent"] == "database"
    assert assignment.body["properties"]["accessPolicyName"] == "default"
    assert assignment.body["properties"]["user"]["objectId"] == "dataAccessPrincipalId"
    assert "dataAccessPrincipalId" in redis["parameters"]


@pytest.mark.parametrize(
    ("module", "principal_param"),
    [
        ("redis", "dataAccessPrincipalId"),
        ("cosmos", "dataAccessPrincipalId"),
        ("storage", "dataAccessPrincipalId"),
        ("keyvault", "secretsReaderPrincipalId"),
    ],
)
def test_main_grants_data_access_to_the_user_assigned_identity(module: str, principal_param: str) -> None:
    main = b.main()
    calls = [d for d in main["modules"].values() if d["detail"]["path"] == f"modules/{module}.bicep"]
    assert len(calls) == 1
    value = b.body(calls[0])["params"][principal_param]
    assert b.dumps(value) == b.dumps(
        {
            "operator": {
                "type": "property_accessor",
                "operands": {
                    "operand_1": "identity",
                    "operand_2": {
                        "operator": {
                            "type": "property_accessor",
                            "operands": {"operand_1": "outputs", "operand_2": "principalId"},
                        }
                    },
                },
            }
        }
    )


def test_no_key_or_secret_is_ever_read_by_a_template() -> None:
    """No listKeys / listConnectionStrings / list*Sas / getSecret anywhere, parsed or in the text."""
    offenders: list[str] = []
    for path in b.bicep_files():
        template = b.parse(path)
        for name in b.function_types(template):
            normalized = name.replace("_", "").lower()
            if normalized.startswith("list") or normalized == "getsecret":
                offenders.append(f"{path.name}: {name}()")
        code = b.strip_comments(path.read_text())
        for match in re.finditer(r"\b(list[A-Z][A-Za-z]*|getSecret)\s*\(", code):
            offenders.append(f"{path.name}: {match.group(0)}")
    assert not offenders, offenders


def test_container_app_holds_no_secrets() -> None:
    app = b.one_resource("Microsoft.App/containerApps").body
    assert "secrets" not in app["properties"]["configuration"]
    env = b.module("containerapp")
    assert "sharedKey" not in b.dumps(b.one_resource("Microsoft.App/managedEnvironments").body)
    assert b.one_resource("Microsoft.App/managedEnvironments").body["properties"]["appLogsConfiguration"] == {
        "destination": "azure-monitor"
    }
    assert not any(p.get("decorators") and b.decorator(p, "secure") for p in env["parameters"].values())


# --- outputs ---------------------------------------------------------------------------------------

_CREDENTIAL_WORDS = ("key", "secret", "password", "connectionstring", "credential", "token", "sas")
# The one output whose name mentions a secret: it carries the *name* of a Key Vault secret.
_SECRET_NAME_OUTPUT = "TIERMEM_REDIS_PASSWORD_SECRET"


def _credential_words(name: str) -> list[str]:
    normalized = name.replace("_", "").lower().replace("keyvault", "vault")
    return [w for w in _CREDENTIAL_WORDS if w in normalized]


@pytest.mark.parametrize("path", b.bicep_files(), ids=lambda p: p.name)
def test_no_output_is_named_like_a_credential(path: Path) -> None:
    offenders = {
        name: words
        for name in b.parse(path).get("outputs", {})
        if name != _SECRET_NAME_OUTPUT and (words := _credential_words(name))
    }
    assert not offenders, f"{path.name}: {offenders}"


def test_credential_name_check_catches_real_credentials() -> None:
    """The name check above must flag the names it exists to catch."""
    for name in (
        "primaryKey",
        "STORAGE_ACCOUNT_KEY",
        "redisPassword",
        "connectionString",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "sasToken",
        "clientSecret",
    ):
        assert _credential_words(name), name
    for name in ("TIERMEM_KEY_VAULT_URL", "AZURE_CLIENT_ID", "principalId", "blobEndpoint"):
        assert not _credential_words(name), name


def test_redis_password_secret_output_is_only_a_name() -> None:
    main = b.main()
    output = main["outputs"][_SECRET_NAME_OUTPUT]
    assert output["value"] == "redisPasswordSecretName"
    param = main["parameters"]["redisPasswordSecretName"]
    assert param["type"] == "string" and param["default"] == ""
    assert b.decorator(param, "secure") is None


@pytest.mark.parametrize("path", b.bicep_files(), ids=lambda p: p.name)
def test_no_secure_param_reaches_an_output(path: Path) -> None:
    template = b.parse(path)
    secure = [
        n
        for n, d in template.get("parameters", {}).items()
        if any(x.get("type") == "secure" for x in d.get("decorators", []))
    ]
    for name, output in template.get("outputs", {}).items():
        for param in secure:
            assert not b.references(output["value"], param), (
                f"{path.name}: output {name} uses @secure {param}"
            )


def test_main_outputs_are_exactly_the_settings() -> None:
    outputs = set(b.main()["outputs"])
    missing, unexpected = b.DEPLOYMENT_OUTPUTS - outputs, outputs - b.DEPLOYMENT_OUTPUTS
    assert not missing and not unexpected, f"missing {sorted(missing)}, unexpected {sorted(unexpected)}"


def test_app_insights_connection_string_is_an_app_setting_not_an_output() -> None:
    for path in b.bicep_files():
        for name, output in b.parse(path).get("outputs", {}).items():
            assert "connectionstring" not in b.dumps(output["value"]).lower(), f"{path.name}: {name}"
    base_env = _var(b.module("containerapp"), "baseEnv")
    entry = next(e for e in base_env if e["name"] == "APPLICATIONINSIGHTS_CONNECTION_STRING")
    assert b.references(entry["value"], "appInsights")
    assert "ConnectionString" in b.strings(entry["value"])


# --- TLS -------------------------------------------------------------------------------------------


def test_tls_minimums() -> None:
    storage = b.one_resource("Microsoft.Storage/storageAccounts").body["properties"]
    assert storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["supportsHttpsTrafficOnly"] is True
    cosmos = b.one_resource("Microsoft.DocumentDB/databaseAccounts").body["properties"]
    assert cosmos["minimalTlsVersion"] == "Tls12"
    redis = b.one_resource("Microsoft.Cache/redisEnterprise").body["properties"]
    assert redis["minimumTlsVersion"] == "1.2"
    database = b.one_resource("Microsoft.Cache/redisEnterprise/databases").body["properties"]
    assert database["clientProtocol"] == "Encrypted"
    ingress = b.one_resource("Microsoft.App/containerApps").body["properties"]["configuration"]["ingress"]
    assert ingress["allowInsecure"] is False
    assert _var(b.main(), "redisUrl").startswith("rediss://")


# --- Key Vault -------------------------------------------------------------------------------------


def test_key_vault_is_rbac_only_with_purge_protection() -> None:
    vault = b.one_resource("Microsoft.KeyVault/vaults").body["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True
    assert vault["enableSoftDelete"] is True
    assert "accessPolicies" not in vault
    retention = b.module("keyvault")["parameters"]["softDeleteRetentionInDays"]
    assert b.decorator(retention, "min_value") >= 7


def test_no_secret_is_created_by_the_templates() -> None:
    assert not b.resources_of_type("Microsoft.KeyVault/vaults/secrets")


# --- role assignments ------------------------------------------------------------------------------


def _declared_symbols(path: Path) -> dict[str, b.Resource]:
    return {r.symbol: r for r in b.resources(b.parse(path), path)}


def test_role_assignments_are_scoped_to_a_resource() -> None:
    assignments = b.resources_of_type("Microsoft.Authorization/roleAssignments")
    assert {a.path.name for a in assignments} == {"storage.bicep", "keyvault.bicep", "monitoring.bicep"}
    for assignment in assignments:
        scope = assignment.body.get("scope")
        symbols = _declared_symbols(assignment.path)
        assert isinstance(scope, str) and scope in symbols, (
            f"{assignment.path.name}:{assignment.symbol} must be scoped to a resource, got {scope!r}"
        )
        assert not symbols[scope].type.startswith("Microsoft.Resources/")
        assert assignment.body["properties"]["principalType"] == "ServicePrincipal"
        assert b.references(assignment.body["name"], scope), "name must be derived from the scope"


@pytest.mark.parametrize(
    ("module", "scope_type", "role_id"),
    [
        ("storage", "Microsoft.Storage/storageAccounts/blobServices/containers", ROLE_BLOB_DATA_CONTRIBUTOR),
        ("keyvault", "Microsoft.KeyVault/vaults", ROLE_KEY_VAULT_SECRETS_USER),
        ("monitoring", "Microsoft.Insights/components", ROLE_MONITORING_METRICS_PUBLISHER),
    ],
)
def test_role_assignment_grants_the_expected_role(module: str, scope_type: str, role_id: str) -> None:
    path = b.MODULES_DIR / f"{module}.bicep"
    template = b.parse(path)
    assignments = [
        r for r in b.resources(template, path) if r.type == "Microsoft.Authorization/roleAssignments"
    ]
    assert assignments
    for assignment in assignments:
        assert _declared_symbols(path)[assignment.body["scope"]].type == scope_type
        role = b.dig(assignment.body, "properties", "roleDefinitionId", "function")
        assert role["type"] == "subscription_resource_id"
        assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        assert _resolve(template, role["parameters"]["resource_name_1"]) == role_id


# --- issue 13 item 12: private by default, Entra-only telemetry, a narrow sweep identity --------------


def test_private_endpoints_are_the_default_for_every_environment_but_dev() -> None:
    declaration = b.main()["parameters"]["enablePrivateEndpoints"]
    default = declaration["default"]
    assert b.dig(default, "operator", "type") == "not_equals"
    assert b.dig(default, "operator", "operands") == {"operand_1": "environmentName", "operand_2": "dev"}
    dev = b.parse_bicepparam(b.INFRA_DIR / "main.dev.bicepparam").values
    assert dev["environmentName"] == "dev"


def test_app_insights_ingestion_needs_entra_by_default() -> None:
    main = b.main()
    assert main["parameters"]["appInsightsDisableLocalAuth"]["default"] is True
    monitoring = b.module("monitoring")
    assert monitoring["parameters"]["appInsightsDisableLocalAuth"]["default"] is True
    component = b.one_resource("Microsoft.Insights/components").body["properties"]
    assert component["DisableLocalAuth"] == "appInsightsDisableLocalAuth"
    (publisher,) = [
        r
        for r in b.resources(monitoring, b.MODULES_DIR / "monitoring.bicep")
        if r.type == "Microsoft.Authorization/roleAssignments"
    ]
    assert publisher.body["properties"]["principalId"] == "publisherPrincipalId"
    params = b.body(main["modules"]["monitoring"])["params"]
    assert b.references(params["publisherPrincipalId"], "identity")
    assert not b.references(params["publisherPrincipalId"], "sweepIdentity")
    # The service exports with its managed identity whenever local auth is off.
    assert b.body(main["modules"]["service"])["params"]["monitorEntra"] == "appInsightsDisableLocalAuth"
    base_env = _var(b.module("containerapp"), "baseEnv")
    entry = next(e for e in base_env if e["name"] == "TIERMEM_SERVICE_MONITOR_ENTRA")
    assert b.references(entry["value"], "monitorEntra")


def test_the_sweep_job_runs_as_an_identity_that_can_only_touch_the_cold_container() -> None:
    path = b.MODULES_DIR / "containerapp.bicep"
    template = b.parse(path)
    (job,) = [r for r in b.resources(template, path) if r.symbol == "sweepJob"]
    assert list(job.body["identity"]["userAssignedIdentities"]) == ["'${sweepIdentityId}'"]
    container = b.dig(job.body, "properties", "template", "containers", 0)
    assert container["env"] == "sweepEnv"
    sweep_env = {e["name"]: e["value"] for e in _var(template, "sweepEnv")}
    assert sweep_env == {
        "AZURE_CLIENT_ID": "sweepIdentityClientId",
        "TIERMEM_BLOB_ACCOUNT_URL": "blobAccountUrl",
        "TIERMEM_BLOB_CONTAINER": "blobContainer",
    }
    registry = b.dig(job.body, "properties", "configuration", "registries")
    assert b.references(registry, "sweepIdentityId") and not b.references(registry, "identityId")
    main = b.main()
    modules = {name: b.body(decl) for name, decl in main["modules"].items()}
    granted = [
        name for name, module in modules.items() if b.references(module.get("params", {}), "sweepIdentity")
    ]
    assert sorted(granted) == ["service", "storage"]  # its id/client id, and one blob role
    assert b.references(modules["storage"]["params"]["sweepPrincipalId"], "sweepIdentity")
    storage = b.parse(b.MODULES_DIR / "storage.bicep")
    sweep_role = next(
        r for r in b.resources(storage, b.MODULES_DIR / "storage.bicep") if r.symbol == "sweepDataContributor"
    )
    assert sweep_role.body["scope"] == "container"
    assert sweep_role.body["properties"]["principalId"] == "sweepPrincipalId"


def test_cosmos_data_role_is_built_in_contributor_scoped_to_the_database() -> None:
    cosmos = b.module("cosmos")
    assignment = b.one_resource("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments").body
    assert assignment["parent"] == "account"
    properties = assignment["properties"]
    assert _var(cosmos, "dataContributorRoleId") == COSMOS_BUILT_IN_DATA_CONTRIBUTOR
    assert properties["roleDefinitionId"] == "${account.id}/sqlRoleDefinitions/${dataContributorRoleId}"
    assert properties["scope"] == "${account.id}/dbs/${databaseName}"
    assert properties["principalId"] == "dataAccessPrincipalId"
    assert not b.resources_of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions")


# --- Cosmos container ------------------------------------------------------------------------------


def test_cosmos_container_partition_key_and_ttl() -> None:
    container = b.one_resource("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    resource = container.body["properties"]["resource"]
    assert resource["partitionKey"]["paths"] == ["/pk"]
    assert resource["partitionKey"]["kind"] == "Hash"
    assert b.literal(resource["defaultTtl"]) == -1
    # The value payload is not indexed (as in CosmosWarmMemory.setup), the tenant/ns fields are.
    excluded = [p["path"] for p in resource["indexingPolicy"]["excludedPaths"]]
    assert "/v/?" in excluded and all(not p.startswith(("/tenant", "/ns", "/pk")) for p in excluded)


def test_cosmos_account_options() -> None:
    cosmos = b.module("cosmos")
    account = b.one_resource("Microsoft.DocumentDB/databaseAccounts").body["properties"]
    assert account["backupPolicy"]["type"] == "Continuous"
    assert account["backupPolicy"]["continuousModeProperties"]["tier"] == "backupTier"
    assert account["consistencyPolicy"]["defaultConsistencyLevel"] == "consistencyLevel"
    assert set(b.decorator(cosmos["parameters"]["capacityMode"], "allowed")) == {"Serverless", "Provisioned"}
    cond = b.conditional(account["capabilities"])
    assert cond is not None and cond[0] == "serverless"
    assert cond[1] == [{"name": "EnableServerless"}] and cond[2] == []
    assert _var(cosmos, "serverless") == {
        "operator": {"type": "equals", "operands": {"operand_1": "capacityMode", "operand_2": "Serverless"}}
    }


# --- storage ---------------------------------------------------------------------------------------


def test_blob_restore_story() -> None:
    service = b.one_resource("Microsoft.Storage/storageAccounts/blobServices").body["properties"]
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"]["enabled"] is True
    assert service["containerDeleteRetentionPolicy"]["enabled"] is True
    container = b.one_resource("Microsoft.Storage/storageAccounts/blobServices/containers").body
    assert container["properties"]["publicAccess"] == "None"
    assert b.main()["parameters"]["blobContainerName"]["default"] == "tiermem"


def test_lifecycle_rule_moves_to_cool_then_cold_then_deletes() -> None:
    policy = b.one_resource("Microsoft.Storage/storageAccounts/managementPolicies").body
    (rule,) = policy["properties"]["policy"]["rules"]
    assert rule["enabled"] is True
    assert rule["definition"]["filters"]["prefixMatch"] == ["${containerName}/"]
    base = rule["definition"]["actions"]["baseBlob"]
    assert base["tierToCool"] == {"daysAfterModificationGreaterThan": "coolAfterDays"}
    assert base["tierToCold"] == {"daysAfterModificationGreaterThan": "coldAfterDays"}
    assert base["delete"] == {"daysAfterModificationGreaterThan": "deleteAfterDays"}


# --- private endpoints -----------------------------------------------------------------------------

_PRIVATE_ENDPOINT_SERVICES = [
    ("redis", "Microsoft.Cache/redisEnterprise", "redisEnterprise", "redisZoneId"),
    ("cosmos", "Microsoft.DocumentDB/databaseAccounts", "Sql", "cosmosZoneId"),
    ("storage", "Microsoft.Storage/storageAccounts", "blob", "blobZoneId"),
    ("keyvault", "Microsoft.KeyVault/vaults", "vault", "vaultZoneId"),
]


@pytest.mark.parametrize(("module", "type_", "group_id", "zone_output"), _PRIVATE_ENDPOINT_SERVICES)
def test_private_endpoint_disables_public_access(
    module: str, type_: str, group_id: str, zone_output: str
) -> None:
    path = b.MODULES_DIR / f"{module}.bicep"
    template = b.parse(path)
    (service,) = [r for r in b.resources(template, path) if r.type == type_]
    cond = b.conditional(service.body["properties"]["publicNetworkAccess"])
    assert cond == ("enablePrivateEndpoint", "Disabled", "Enabled")
    (endpoint,) = template["modules"].values()
    assert endpoint["detail"]["path"] == "private-endpoint.bicep"
    assert b.condition(endpoint) == "enablePrivateEndpoint"
    params = b.body(endpoint)["params"]
    assert params["groupId"] == group_id
    assert b.references(params["serviceId"], service.symbol)

    main = b.main()
    (call,) = [d for d in main["modules"].values() if d["detail"]["path"] == f"modules/{module}.bicep"]
    main_params = b.body(call)["params"]
    assert main_params["enablePrivateEndpoint"] == "enablePrivateEndpoints"
    zone = b.conditional(main_params["privateDnsZoneId"])
    assert zone is not None and zone[0] == "enablePrivateEndpoints" and b.references(zone[1], zone_output)


def test_network_is_created_only_with_private_endpoints() -> None:
    main = b.main()
    network = main["modules"]["network"]
    assert b.condition(network) == "enablePrivateEndpoints"
    assert main["parameters"]["enablePrivateEndpoints"]["type"] == "bool"
    zones = b.resources_of_type("Microsoft.Network/privateDnsZones")
    zone_names = b.module("network")["variables"]["zoneNames"]["value"]
    assert set(zone_names.values()) >= {
        "privatelink.redis.azure.net",
        "privatelink.documents.azure.com",
        "privatelink.vaultcore.azure.net",
    }
    assert zone_names["blob"].startswith("privatelink.blob.")
    assert sorted(b.dig(z.body["name"], "operator", "operands", "operand_2") for z in zones) == sorted(
        zone_names
    )
    assert all(b.references(z.body["name"], "zoneNames") for z in zones)
    links = b.resources_of_type("Microsoft.Network/privateDnsZones/virtualNetworkLinks")
    assert len(links) == 4 and all(link.body["properties"]["registrationEnabled"] is False for link in links)
    env = b.one_resource("Microsoft.App/managedEnvironments").body["properties"]
    vnet = b.conditional(env["vnetConfiguration"])
    assert vnet is not None and vnet[1] is None


def test_the_maintain_job_runs_tiermem_maintain_as_the_service_identity_with_its_settings() -> None:
    path = b.MODULES_DIR / "containerapp.bicep"
    template = b.parse(path)
    (job,) = [r for r in b.resources(template, path) if r.symbol == "maintainJob"]
    assert list(job.body["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    container = b.dig(job.body, "properties", "template", "containers", 0)
    assert container["args"] == ["maintain", "--json"]
    assert b.references(container["env"], "maintainEnv")
    names = {e["name"] for e in _var(template, "baseEnv")}
    assert {"TIERMEM_REDIS_URL", "TIERMEM_COSMOS_ENDPOINT", "TIERMEM_BLOB_ACCOUNT_URL"} <= names
    main = b.main()
    params = b.body(main["modules"]["service"])["params"]
    for name in ("enableMaintainJob", "maintainSchedule", "archiveAfterDays", "expireAfterDays"):
        assert b.references(params[name], name)


def test_cosmos_defaults_to_strong_consistency_for_the_coherence_bound() -> None:
    # ADR 0006: another process must read every acknowledged write; Session only gives that per client.
    assert b.main()["parameters"]["cosmosConsistencyLevel"]["default"] == "Strong"
    assert b.module("cosmos")["parameters"]["consistencyLevel"]["default"] == "Strong"
    prod = b.parse_bicepparam(b.INFRA_DIR / "main.prod.bicepparam").values
    assert prod["cosmosConsistencyLevel"] == "Strong"
