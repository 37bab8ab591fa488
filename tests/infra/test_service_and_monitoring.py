"""The Container App, the diagnostic settings on every resource, and the alerts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra import _bicep as b

# --- Container App ---------------------------------------------------------------------------------


def _container() -> dict[str, Any]:
    app = b.one_resource("Microsoft.App/containerApps").body
    (container,) = app["properties"]["template"]["containers"]
    return container  # type: ignore[no-any-return]


def _env_entries() -> list[dict[str, Any]]:
    """Env vars of the container: baseEnv plus the optional password-secret entry."""
    template = b.module("containerapp")
    env = _container()["env"]
    cond = b.conditional(env)
    assert cond is not None, "env is chosen by whether a Redis password secret name is given"
    condition, when_empty, when_set = cond
    assert b.dig(condition, "function", "type") == "empty"
    assert b.dig(condition, "function", "parameters", "item_to_test") == "redisPasswordSecretName"
    assert when_empty == "baseEnv"
    assert b.dig(when_set, "function", "type") == "concat"
    assert list(b.dig(when_set, "function", "parameters").values()) == ["baseEnv", "passwordSecretEnv"]
    variables = template["variables"]
    return [*variables["baseEnv"]["value"], *variables["passwordSecretEnv"]["value"]]


def test_container_env_vars_are_exactly_the_settings() -> None:
    names = [e["name"] for e in _env_entries()]
    assert len(names) == len(set(names)), "duplicate env var"
    assert set(names) == b.SETTINGS_ENV_VARS


def test_password_secret_env_var_is_set_only_when_given() -> None:
    template = b.module("containerapp")
    base = {e["name"] for e in template["variables"]["baseEnv"]["value"]}
    assert "TIERMEM_REDIS_PASSWORD_SECRET" not in base
    assert b.main()["parameters"]["redisPasswordSecretName"]["default"] == ""


def test_env_var_values_come_from_the_matching_params() -> None:
    expected = {
        "AZURE_CLIENT_ID": "identityClientId",
        "TIERMEM_REDIS_URL": "redisUrl",
        "TIERMEM_COSMOS_ENDPOINT": "cosmosEndpoint",
        "TIERMEM_COSMOS_DATABASE": "cosmosDatabase",
        "TIERMEM_COSMOS_CONTAINER": "cosmosContainer",
        "TIERMEM_BLOB_ACCOUNT_URL": "blobAccountUrl",
        "TIERMEM_BLOB_CONTAINER": "blobContainer",
        "TIERMEM_KEY_VAULT_URL": "keyVaultUrl",
        "TIERMEM_REDIS_PASSWORD_SECRET": "redisPasswordSecretName",
        "TIERMEM_AUTH_MODE": "entra",
        "TIERMEM_AUTH_TENANT_ID": "authTenantId",
        "TIERMEM_AUTH_AUDIENCE": "authAudience",
    }
    values = {e["name"]: e["value"] for e in _env_entries()}
    for name, value in expected.items():
        assert values[name] == value, name
    assert b.conditional(values["TIERMEM_REDIS_CLUSTER"]) == ("redisCluster", "true", "false")
    assert b.references(values["TIERMEM_HOT_TTL"], "hotTtlSeconds")


def test_main_outputs_match_what_the_app_is_given() -> None:
    """Each output and the matching Container App input are computed from the same source."""
    main = b.main()
    params = b.body(main["modules"]["service"])["params"]
    outputs = main["outputs"]
    pairs = {
        "TIERMEM_REDIS_URL": "redisUrl",
        "TIERMEM_COSMOS_ENDPOINT": "cosmosEndpoint",
        "TIERMEM_COSMOS_DATABASE": "cosmosDatabase",
        "TIERMEM_COSMOS_CONTAINER": "cosmosContainer",
        "TIERMEM_BLOB_ACCOUNT_URL": "blobAccountUrl",
        "TIERMEM_BLOB_CONTAINER": "blobContainer",
        "AZURE_CLIENT_ID": "identityClientId",
        "TIERMEM_KEY_VAULT_URL": "keyVaultUrl",
        "TIERMEM_REDIS_PASSWORD_SECRET": "redisPasswordSecretName",
        "TIERMEM_AUTH_TENANT_ID": "authTenantId",
        "TIERMEM_AUTH_AUDIENCE": "authAudience",
    }
    for output, param in pairs.items():
        assert b.dumps(outputs[output]["value"]) == b.dumps(params[param]), output
    assert outputs["TIERMEM_AUTH_MODE"]["value"] == "entra"
    assert b.references(outputs["TIERMEM_HOT_TTL"]["value"], "hotTtlSeconds")
    assert params["hotTtlSeconds"] == "hotTtlSeconds"
    cluster = b.conditional(outputs["TIERMEM_REDIS_CLUSTER"]["value"])
    assert cluster is not None and cluster[1:] == ("true", "false")
    assert b.dumps(cluster[0]) == b.dumps(params["redisCluster"])


def test_service_command_and_identity() -> None:
    container = _container()
    command = " ".join([*container["command"], *container["args"]])
    assert command == "tiermem serve --host 0.0.0.0 --port 8080 --auth entra"
    app = b.one_resource("Microsoft.App/containerApps").body
    assert app["identity"]["type"] == "UserAssigned"
    assert list(app["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    assert container["image"] == "image"


def test_probes_and_port() -> None:
    template = b.module("containerapp")
    port = template["variables"]["port"]["value"]
    assert port == 8080
    probes = {p["type"]: p for p in _container()["probes"]}
    assert probes["Liveness"]["httpGet"] == {"path": "/healthz", "port": "port"}
    assert probes["Readiness"]["httpGet"] == {"path": "/readyz", "port": "port"}
    ingress = b.one_resource("Microsoft.App/containerApps").body["properties"]["configuration"]["ingress"]
    assert ingress["targetPort"] == "port"
    assert str(port) in _container()["args"]


# --- diagnostic settings ---------------------------------------------------------------------------

# Resource types that get no diagnostic setting, and why. Every other declared type must have one.
NO_DIAGNOSTICS = {
    "Microsoft.ManagedIdentity/userAssignedIdentities": "no diagnostic categories",
    "Microsoft.Authorization/roleAssignments": "extension resource; changes show in the Activity Log",
    "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments": "child; covered by the account's logs",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases": "child; covered by the account's logs",
    "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers": "child; covered by the account's logs",
    "Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments": "child; covered by the database",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "child; covered by the blob service logs",
    "Microsoft.Storage/storageAccounts/managementPolicies": "child; lifecycle runs show in blob logs",
    "Microsoft.Insights/components": "workspace-based: its telemetry already lives in the workspace",
    "Microsoft.Insights/actionGroups": "no diagnostic categories",
    "Microsoft.Insights/metricAlerts": "no diagnostic categories",
    "Microsoft.Insights/scheduledQueryRules": "firing history is in the Activity Log / alerts store",
    "Microsoft.Insights/diagnosticSettings": "is the diagnostic setting",
    "Microsoft.Network/privateDnsZones": "zone queries are not logged per zone",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks": "no diagnostic categories",
    "Microsoft.Network/privateEndpoints": "metrics only on the NIC; traffic shows in the service logs",
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups": "no diagnostic categories",
    "Microsoft.Network/virtualNetworks": "only used for private endpoints; flow logs are out of scope",
    "Microsoft.Network/networkSecurityGroups": "empty rule sets; flow logs are out of scope",
    "Microsoft.App/jobs": "console output goes to the environment's ContainerAppConsoleLogs",
}


def test_every_resource_sends_diagnostics_to_the_workspace() -> None:
    missing: list[str] = []
    for path in b.bicep_files():
        declared = list(b.resources(b.parse(path), path))
        settings = [r for r in declared if r.type == "Microsoft.Insights/diagnosticSettings"]
        scopes = {s.body["scope"] for s in settings}
        for setting in settings:
            props = setting.body["properties"]
            assert props["workspaceId"] in ("workspaceId", "workspace.id") or b.references(
                props["workspaceId"], "workspace"
            ), f"{path.name}:{setting.symbol}"
            enabled = [x for x in (*props.get("logs", []), *props.get("metrics", [])) if x.get("enabled")]
            assert enabled, f"{path.name}:{setting.symbol} enables nothing"
        for r in declared:
            if r.existing or r.type in NO_DIAGNOSTICS:
                continue
            if r.symbol not in scopes:
                missing.append(f"{path.name}:{r.symbol} ({r.type})")
    assert not missing, f"resources without a diagnostic setting: {missing}"


def test_diagnostics_cover_the_data_services() -> None:
    covered = {
        r.type
        for path in b.bicep_files()
        for s in b.resources(b.parse(path), path)
        if s.type == "Microsoft.Insights/diagnosticSettings"
        for r in b.resources(b.parse(path), path)
        if r.symbol == s.body["scope"]
    }
    assert covered >= {
        "Microsoft.Cache/redisEnterprise",
        "Microsoft.Cache/redisEnterprise/databases",
        "Microsoft.DocumentDB/databaseAccounts",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/blobServices",
        "Microsoft.KeyVault/vaults",
        "Microsoft.App/managedEnvironments",
        "Microsoft.App/containerApps",
        "Microsoft.OperationalInsights/workspaces",
    }


def test_app_insights_is_workspace_based() -> None:
    ai = b.one_resource("Microsoft.Insights/components").body["properties"]
    assert ai["WorkspaceResourceId"] == "workspace.id" or b.references(ai["WorkspaceResourceId"], "workspace")
    assert ai["IngestionMode"] == "LogAnalytics"


# --- alerts ----------------------------------------------------------------------------------------


def _metric_criteria() -> list[tuple[str, dict[str, Any]]]:
    return [
        (alert.symbol, criterion)
        for alert in b.resources_of_type("Microsoft.Insights/metricAlerts")
        for criterion in alert.body["properties"]["criteria"]["allOf"]
    ]


@pytest.mark.parametrize(
    ("namespace", "metric", "dimension"),
    [
        ("Microsoft.Cache/redisEnterprise", "usedmemorypercentage", None),
        ("Microsoft.Cache/redisEnterprise", "evictedkeys", None),
        ("Microsoft.DocumentDB/databaseAccounts", "TotalRequests", ("StatusCode", "429")),
        (
            "Microsoft.Storage/storageAccounts/blobServices",
            "Transactions",
            ("ResponseType", "ServerBusyError"),
        ),
    ],
)
def test_metric_alert_exists(namespace: str, metric: str, dimension: tuple[str, str] | None) -> None:
    matches = [
        c for _, c in _metric_criteria() if c["metricNamespace"] == namespace and c["metricName"] == metric
    ]
    assert len(matches) == 1, f"no alert on {namespace}/{metric}"
    (criterion,) = matches
    if dimension is not None:
        name, value = dimension
        dims = {d["name"]: d for d in criterion["dimensions"]}
        assert dims[name]["operator"] == "Include" and value in dims[name]["values"]


def test_every_alert_notifies_the_action_group_and_names_a_runbook() -> None:
    alerts = [
        *b.resources_of_type("Microsoft.Insights/metricAlerts"),
        *b.resources_of_type("Microsoft.Insights/scheduledQueryRules"),
    ]
    assert len(alerts) >= 6
    for alert in alerts:
        props = alert.body["properties"]
        assert b.references(props["actions"], "actionGroupId") or b.references(props["actions"], "actions")
        runbooks = re.findall(r"runbooks/[a-z0-9-]+\.md", props["description"])
        assert runbooks, f"{alert.symbol}: description names no runbook"
        for runbook in runbooks:
            assert (b.REPO_ROOT / runbook).is_file(), f"{alert.symbol}: {runbook} does not exist"


def _queries() -> dict[str, str]:
    template = b.module("alerts")
    result: dict[str, str] = {}
    for rule in b.resources_of_type("Microsoft.Insights/scheduledQueryRules"):
        (criterion,) = rule.body["properties"]["criteria"]["allOf"]
        query = criterion["query"]
        if isinstance(query, dict):  # format(queryVar, threshold)
            query = b.dig(query, "function", "parameters", "format_string")
        result[rule.symbol] = template["variables"][query]["value"]
    return result


def test_log_alerts_use_only_names_tiermem_emits() -> None:
    queries = _queries()
    assert {"hitRate", "p95Latency"} <= set(queries)
    for symbol, query in queries.items():
        names = set(re.findall(r'"(tiermem\.[a-z_.]+)"', query))
        assert names, f"{symbol}: query names no tiermem signal"
        unknown = names - b.EMITTED_NAMES
        assert not unknown, f"{symbol}: {sorted(unknown)} is not emitted by tiermem"


def test_hit_rate_and_latency_queries() -> None:
    queries = _queries()
    hit = queries["hitRate"]
    assert hit.lstrip().startswith("customMetrics")
    assert 'name == "tiermem.operations"' in hit
    assert 'customDimensions["tiermem.outcome"]' in hit and 'customDimensions["tiermem.tier"]' in hit
    assert "HitRatePercent < {1}" in hit
    latency = queries["p95Latency"]
    assert latency.lstrip().startswith("dependencies")
    assert "percentile(duration, 95)" in latency and '"tiermem.get"' in latency
    assert "P95Ms > {1}" in latency
    rules = {
        r.symbol: r.body["properties"] for r in b.resources_of_type("Microsoft.Insights/scheduledQueryRules")
    }
    thresholds = {"hitRate": "hitRatePercentThreshold", "p95Latency": "p95LatencyMsThreshold"}
    for symbol, threshold_param in thresholds.items():
        (criterion,) = rules[symbol]["criteria"]["allOf"]
        # One row per breach: the rule fires on "more than zero rows"; the threshold is formatted in.
        assert criterion["timeAggregation"] == "Count"
        assert criterion["operator"] == "GreaterThan" and criterion["threshold"] == 0
        arguments = list(b.dig(criterion["query"], "function", "parameters").values())
        assert arguments[-1] == threshold_param
    for props in rules.values():
        assert props["scopes"] == ["appInsightsId"]


def test_sweep_job_runs_tiermem_sweep_on_its_schedule() -> None:
    """Its identity and settings are the narrow ones (test_security.py); the image is the service's."""
    template = b.module("containerapp")
    declaration = template["resources"]["sweepJob"]
    assert b.condition(declaration) == "enableSweepJob"
    job = b.body(declaration)
    assert job["properties"]["configuration"]["triggerType"] == "Schedule"
    assert job["properties"]["configuration"]["scheduleTriggerConfig"]["cronExpression"] == "sweepSchedule"
    (container,) = job["properties"]["template"]["containers"]
    assert [*container["command"], *container["args"]] == ["tiermem", "sweep"]
    assert container["image"] == _container()["image"]
