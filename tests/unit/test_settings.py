"""Settings edges (issue 13 items 13-15 and 17): strict names, blanks unset, one-line errors, ``.env``.

Pure logic over the environment: no services. Every test starts from an environment without
``TIERMEM_*`` names and runs in a fresh directory, so no ``.env`` is picked up by accident.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from tiermem import ConfigurationError, MemoryBuilder, MemorySettings, Tier
from tiermem._settings import (
    BlobPlan,
    CosmosPlan,
    FilesPlan,
    LocalHotPlan,
    RedisPlan,
    SqlitePlan,
    env_names,
    resolve,
)
from tiermem.service import ServiceSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TIERMEM_") or name in (
            "AZURE_CLIENT_ID",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# -- item 13: unknown names, REQUIRE_AZURE, .env ---------------------------------------------------


def test_a_misspelt_name_fails_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_COSMOS_ENDPIONT", "https://acct.documents.azure.com:443/")
    with pytest.raises(
        ConfigurationError, match="TIERMEM_COSMOS_ENDPIONT; did you mean TIERMEM_COSMOS_ENDPOINT"
    ):
        MemorySettings()
    with pytest.raises(ConfigurationError, match="did you mean"):
        MemoryBuilder.from_settings()


def test_a_lower_case_typo_is_caught_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tiermem_hot_tll", "60")
    with pytest.raises(ConfigurationError, match="did you mean TIERMEM_HOT_TTL"):
        MemorySettings()


def test_service_names_are_checked_by_the_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_AUTH_MODE", "none")
    monkeypatch.setenv("TIERMEM_SERVICE_READY_TIMEOUT", "2")
    MemorySettings()  # not its names, not its business
    assert ServiceSettings().ready_timeout == 2
    monkeypatch.setenv("TIERMEM_AUTH_TENNANT_ID", "x")
    MemorySettings()
    with pytest.raises(ConfigurationError, match="did you mean TIERMEM_AUTH_TENANT_ID"):
        ServiceSettings()


def test_tooling_names_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_CHECKOV", "/usr/bin/checkov")
    monkeypatch.setenv("TIERMEM_TEST_REDIS_URL", "redis://127.0.0.1:1")
    MemorySettings()
    ServiceSettings()


def test_require_azure_refuses_embedded_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_REQUIRE_AZURE", "true")
    monkeypatch.setenv("TIERMEM_COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/")
    with pytest.raises(ConfigurationError, match="TIERMEM_REDIS_URL, TIERMEM_BLOB_ACCOUNT_URL are not set"):
        MemoryBuilder.from_settings()
    monkeypatch.setenv("TIERMEM_REDIS_URL", "rediss://cache.example.net:10000")
    monkeypatch.setenv("TIERMEM_BLOB_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    plan = resolve(MemorySettings())
    assert isinstance(plan.hot, RedisPlan) and isinstance(plan.warm, CosmosPlan)
    assert isinstance(plan.cold, BlobPlan) and plan.local_paths() == {}


def test_dotenv_in_the_current_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# local\nTIERMEM_HOT_TTL=42\nOTHER_APP_SETTING=x\n", encoding="utf-8")
    assert MemorySettings().hot_ttl == 42


def test_env_file_argument_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("TIERMEM_TENANT=acme\nTIERMEM_NAMESPACE=notes\n", encoding="utf-8")
    monkeypatch.setenv("TIERMEM_NAMESPACE", "override")
    settings = MemorySettings(_env_file=env_file)
    assert (settings.tenant, settings.namespace) == ("acme", "override")


def test_a_typo_in_the_dotenv_file_fails_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIERMEM_REDIS_CLUSTR=true\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="did you mean TIERMEM_REDIS_CLUSTER"):
        MemorySettings()


# -- item 14: blank values are unset -------------------------------------------------------------------


def test_blank_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TIERMEM_REDIS_URL",
        "TIERMEM_REDIS_CA_FILE",
        "TIERMEM_BLOB_CONNECTION_STRING",
        "TIERMEM_COSMOS_KEY",
        "TIERMEM_HOT_TTL",
        "AZURE_CLIENT_ID",
        "TIERMEM_SERVICE_MAX_BODY_BYTES",
    ):
        monkeypatch.setenv(name, "")
    settings = MemorySettings()
    assert settings.redis_ca_file is None and settings.blob_connection_string is None
    assert settings.hot_ttl == 300.0 and settings.azure_client_id is None
    plan = resolve(settings)
    assert isinstance(plan.hot, LocalHotPlan) and isinstance(plan.cold, FilesPlan)
    assert ServiceSettings().max_body_bytes == 2 * 1024 * 1024


def test_the_example_file_as_written_builds_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``set -a; . ./.env.example; set +a``: every line applied to the environment as written."""
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    plan = resolve(MemorySettings())
    assert isinstance(plan.hot, LocalHotPlan)
    assert isinstance(plan.warm, SqlitePlan) and isinstance(plan.cold, FilesPlan)
    assert ServiceSettings().auth_mode == "entra"


# -- item 15: bad values are one-line ConfigurationErrors naming the variable ---------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TIERMEM_HOT_TTL", "5m", "TIERMEM_HOT_TTL: Input should be a valid number"),
        ("TIERMEM_REDIS_AUTH", "managed-identity", "TIERMEM_REDIS_AUTH: Input should be 'auto'"),
        (
            "TIERMEM_BLOB_ACCOUNT_URL",
            "http://acct.blob.core.windows.net",
            "TIERMEM_BLOB_ACCOUNT_URL: Value error",
        ),
        ("TIERMEM_COSMOS_ENDPOINT", "acct.documents.azure.com", "TIERMEM_COSMOS_ENDPOINT: Value error"),
        ("TIERMEM_REDIS_URL", "cache.example.net:6380", "TIERMEM_REDIS_URL: Value error"),
        ("TIERMEM_HOT_MAX_ITEMS", "0", "TIERMEM_HOT_MAX_ITEMS: Input should be greater than or equal to 1"),
        ("TIERMEM_REDIS_CLUSTER", "maybe", "TIERMEM_REDIS_CLUSTER: Input should be a valid boolean"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        MemorySettings()
    text = str(caught.value)
    assert text.startswith(message) and "\n" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_SERVICE_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigurationError, match=r"TIERMEM_SERVICE_MAX_BODY_BYTES: .*\(got 'lots'\)"):
        ServiceSettings()
    with pytest.raises(ConfigurationError) as caught:
        MemorySettings(redis_password=["s3cret-value"])  # type: ignore[arg-type]
    assert "TIERMEM_REDIS_PASSWORD" in str(caught.value) and "s3cret" not in str(caught.value)


def test_plain_http_is_allowed_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_BLOB_ACCOUNT_URL", "http://127.0.0.1:10000/devstoreaccount1")
    assert MemorySettings().blob_account_url == "http://127.0.0.1:10000/devstoreaccount1"


# -- item 17: only TIERMEM_-prefixed names --------------------------------------------------------------


def test_the_service_ignores_bare_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READY_TIMEOUT", "0.25")
    monkeypatch.setenv("MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("MAX_BATCH_BODY_BYTES", "4096")
    settings = ServiceSettings()
    assert settings.ready_timeout == 5.0
    assert settings.max_body_bytes == 2 * 1024 * 1024 and settings.max_batch_body_bytes == 16 * 1024 * 1024


def test_an_undocumented_second_spelling_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERMEM_READY_TIMEOUT", "1")
    with pytest.raises(ConfigurationError, match="did you mean TIERMEM_SERVICE_READY_TIMEOUT"):
        ServiceSettings()


def test_python_keywords_still_work() -> None:
    assert ServiceSettings(max_body_bytes=4096, ready_timeout=1).max_body_bytes == 4096


# -- every name is documented ---------------------------------------------------------------------------


def _all_names() -> set[str]:
    return set(env_names(MemorySettings).values()) | set(env_names(ServiceSettings).values())


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (REPO / document).read_text(encoding="utf-8")
    missing = sorted(name for name in _all_names() if not re.search(rf"\b{name}\b", text))
    assert not missing, f"{document} does not mention {missing}"


def test_documents_name_no_setting_that_does_not_exist() -> None:
    from tiermem._settings import TOOLING_NAMES

    text = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    text += (REPO / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"\bTIERMEM_[A-Z0-9_]*[A-Z0-9]\b", text))
    typo_example = {"TIERMEM_COSMOS_ENDPIONT"}  # the docs show what a misspelt name does
    stray = sorted(
        n for n in named - _all_names() - TOOLING_NAMES - typo_example if not n.startswith("TIERMEM_TEST_")
    )
    assert not stray, f"documented but not read by any settings class: {stray}"


# -- the plan: plain values, and no import circle with the builder --------------------------------------


def test_the_plan_is_plain_values_and_names_local_paths(tmp_path: Path) -> None:
    plan = resolve(MemorySettings(local_dir=tmp_path / "mem", hot_ttl=9, tenant="acme"))
    assert plan.hot == LocalHotPlan(10_000)
    assert plan.local_paths() == {"warm": tmp_path / "mem" / "warm.db", "cold": tmp_path / "mem" / "cold"}
    assert plan.policy == {
        "hot_ttl": 9,
        "compress_min_bytes": 4096,
        "detailed_spans": False,
        "mget_max_bytes": 64 << 20,
    }
    assert plan.tenant == "acme"
    memory = MemoryBuilder.from_settings(MemorySettings(local_dir=tmp_path / "mem")).build()
    assert memory.tiers == (Tier.HOT, Tier.WARM, Tier.COLD)


def test_detailed_spans_setting_reaches_the_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for raw, expected in (("true", True), ("false", False)):
        monkeypatch.setenv("TIERMEM_DETAILED_SPANS", raw)
        memory = MemoryBuilder.from_settings(MemorySettings(local_dir=tmp_path / "mem")).build()
        assert memory.policy.detailed_spans is expected
        assert memory._core.telemetry.detailed_spans is expected


def test_cosmos_key_is_for_loopback_only() -> None:
    settings = MemorySettings(
        cosmos_endpoint="https://acct.documents.azure.com:443/", cosmos_key=SecretStr("k")
    )
    with pytest.raises(ConfigurationError, match="local emulator"):
        resolve(settings)


def test_password_auth_needs_a_password_source() -> None:
    settings = MemorySettings(redis_url="rediss://cache.example.net:6380", redis_auth="password")
    with pytest.raises(ConfigurationError, match="TIERMEM_REDIS_PASSWORD"):
        resolve(settings)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("tiermem.")
        ):
            found.add(node.value.partition(":")[0])  # importlib targets such as "tiermem.cli._serve:serve"
    return found


def test_settings_never_import_the_builder_and_the_service_never_imports_the_cli() -> None:
    lib = REPO / "lib" / "tiermem"
    assert not {m for m in _imports(lib / "_settings.py") if m.startswith("tiermem._builder")}
    for module in (lib / "service").glob("*.py"):
        cli = {m for m in _imports(module) if m == "tiermem.cli" or m.startswith("tiermem.cli.")}
        assert not cli, f"{module.name} imports {cli}"


# -- issue 13 items 1-2: the hot MAC key and the mget budget ---------------------------------------------


def test_hot_mac_key_and_mget_budget_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiermem.tiers.redis import RedisHotMemory

    monkeypatch.setenv("TIERMEM_REDIS_URL", "redis://127.0.0.1:6379")
    monkeypatch.setenv("TIERMEM_HOT_MAC_KEY", "k" * 32)
    monkeypatch.setenv("TIERMEM_HOT_MAC_PREVIOUS_KEY", "o" * 32)
    monkeypatch.setenv("TIERMEM_MGET_MAX_BYTES", "1000")
    settings = MemorySettings()
    assert "k" * 32 not in repr(settings)
    plan = resolve(settings)
    assert isinstance(plan.hot, RedisPlan)
    assert plan.hot.mac_key == SecretStr("k" * 32) and plan.hot.mac_previous_key == SecretStr("o" * 32)
    memory = MemoryBuilder.from_settings(settings).build()
    store = memory.tier_store(Tier.HOT)
    assert isinstance(store, RedisHotMemory) and store.mac_keyed
    assert memory.policy.mget_max_bytes == 1000
    monkeypatch.delenv("TIERMEM_HOT_MAC_KEY")
    monkeypatch.delenv("TIERMEM_HOT_MAC_PREVIOUS_KEY")
    unkeyed = MemoryBuilder.from_settings().build().tier_store(Tier.HOT)
    assert isinstance(unkeyed, RedisHotMemory) and not unkeyed.mac_keyed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIERMEM_HOT_MAC_KEY": "short"}, "at least 16 bytes"),
        ({"TIERMEM_HOT_MAC_KEY": "k" * 32, "TIERMEM_HOT_MAC_KEY_SECRET": "mac"}, "not both"),
        ({"TIERMEM_HOT_MAC_KEY_SECRET": "mac"}, "needs TIERMEM_KEY_VAULT_URL"),
        ({"TIERMEM_HOT_MAC_PREVIOUS_KEY": "o" * 32}, "needs a current key"),
        ({"TIERMEM_MGET_MAX_BYTES": "0"}, "TIERMEM_MGET_MAX_BYTES"),
    ],
)
def test_hot_mac_and_budget_mistakes_fail_loudly(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("TIERMEM_REDIS_URL", "redis://127.0.0.1:6379")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        MemoryBuilder.from_settings().build()


def test_hot_mac_key_from_key_vault_is_a_secret_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiermem.tiers.redis import RedisHotMemory

    monkeypatch.setenv("TIERMEM_REDIS_URL", "redis://127.0.0.1:6379")
    monkeypatch.setenv("TIERMEM_KEY_VAULT_URL", "https://vault.vault.azure.net/")
    monkeypatch.setenv("TIERMEM_HOT_MAC_KEY_SECRET", "hot-mac")
    memory = MemoryBuilder.from_settings().build()
    store = memory.tier_store(Tier.HOT)
    assert isinstance(store, RedisHotMemory) and store.mac_keyed  # fetched on first use, not here
