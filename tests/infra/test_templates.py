"""Structure of the Bicep templates: they parse, they are documented, they compose, they use stable APIs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra import _bicep as b

BICEP_FILES = b.bicep_files()


def _id(path: Path) -> str:
    return str(path.relative_to(b.INFRA_DIR))


def test_infra_has_main_and_modules() -> None:
    names = {_id(p) for p in BICEP_FILES}
    assert "main.bicep" in names
    expected_modules = {
        "identity",
        "monitoring",
        "network",
        "private-endpoint",
        "redis",
        "cosmos",
        "storage",
        "keyvault",
        "containerapp",
        "alerts",
    }
    assert {f"modules/{m}.bicep" for m in expected_modules} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_bicep_file_parses(path: Path) -> None:
    template = b.parse(path)
    declared = sum(len(template.get(k, {})) for k in ("resources", "modules", "outputs"))
    assert declared > 0, f"{_id(path)} parsed to nothing"


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_every_param_and_output_has_a_description(path: Path) -> None:
    template = b.parse(path)
    undocumented = [
        f"{kind} {name}"
        for kind, section in (("param", "parameters"), ("output", "outputs"))
        for name, declaration in template.get(section, {}).items()
        if not (b.description(declaration) or "").strip()
    ]
    assert not undocumented, f"{_id(path)}: missing @description on {undocumented}"


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_every_module_path_resolves(path: Path) -> None:
    for name, declaration in b.parse(path).get("modules", {}).items():
        target = (path.parent / declaration["detail"]["path"]).resolve()
        assert target.is_file(), f"{_id(path)}: module {name} points at missing {target}"


def test_every_module_file_is_used() -> None:
    used: set[Path] = set()
    for path in BICEP_FILES:
        for declaration in b.parse(path).get("modules", {}).values():
            used.add((path.parent / declaration["detail"]["path"]).resolve())
    unused = set(b.MODULES_DIR.glob("*.bicep")) - used
    assert not unused, f"modules nobody deploys: {sorted(p.name for p in unused)}"


def test_main_targets_a_resource_group() -> None:
    assert b.main()["globals"]["scope"]["value"] == "resourceGroup"


# diagnosticSettings has only preview API versions; everything else must use a GA version.
PREVIEW_ONLY_TYPES = {"Microsoft.Insights/diagnosticSettings"}


def test_api_versions_are_stable() -> None:
    previews = [
        f"{r.path.name}:{r.symbol} {r.type}@{r.api_version}"
        for r in b.all_resources()
        if "preview" in r.api_version and r.type not in PREVIEW_ONLY_TYPES
    ]
    assert not previews, previews
    for r in b.all_resources():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", r.api_version), r


def test_child_resources_use_their_parent_api_version() -> None:
    """A child declared with `parent:` should not drift from its parent's API version."""
    for path in BICEP_FILES:
        declared = {r.symbol: r for r in b.resources(b.parse(path), path)}
        for r in declared.values():
            parent = r.body.get("parent")
            if isinstance(parent, str) and parent in declared:
                parent_r = declared[parent]
                if r.type.startswith(parent_r.type + "/"):
                    assert r.api_version == parent_r.api_version, f"{path.name}:{r.symbol}"


def test_main_passes_only_declared_params_to_modules() -> None:
    main = b.main()
    for name, declaration in main["modules"].items():
        target = b.parse((b.INFRA_DIR / declaration["detail"]["path"]).resolve())
        declared = set(target.get("parameters", {}))
        passed = set(b.body(declaration).get("params", {}))
        assert passed <= declared, f"module {name}: unknown params {sorted(passed - declared)}"
        required = {
            p for p, d in target.get("parameters", {}).items() if "default" not in d or d["default"] is None
        }
        assert required <= passed, f"module {name}: required params not passed {sorted(required - passed)}"


def _env_example() -> dict[str, str]:
    path = b.REPO_ROOT / ".env.example"
    if not path.is_file():
        pytest.fail(".env.example is missing: the settings and the Bicep outputs follow it")
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


@pytest.mark.parametrize(
    ("param", "setting"),
    [
        ("cosmosDatabaseName", "TIERMEM_COSMOS_DATABASE"),
        ("cosmosContainerName", "TIERMEM_COSMOS_CONTAINER"),
        ("blobContainerName", "TIERMEM_BLOB_CONTAINER"),
        ("hotTtlSeconds", "TIERMEM_HOT_TTL"),
    ],
)
def test_infra_defaults_match_the_library_defaults(param: str, setting: str) -> None:
    """A deployment with default params and a local run with default settings name the same things."""
    documented = _env_example()
    assert setting in documented, f"{setting} missing from .env.example"
    assert str(b.main()["parameters"][param]["default"]) == documented[setting]


def test_env_example_lists_every_output() -> None:
    documented = _env_example()
    missing = b.DEPLOYMENT_OUTPUTS - set(documented)
    assert not missing, f"outputs not documented in .env.example: {sorted(missing)}"


def test_infra_readme_documents_every_parameter_and_states_what_was_not_run() -> None:
    readme = (b.INFRA_DIR / "README.md").read_text()
    undocumented = [p for p in b.main()["parameters"] if f"`{p}`" not in readme]
    assert not undocumented, f"infra/README.md does not mention {undocumented}"
    for command in ("az bicep build", "az deployment group what-if", "az deployment group create"):
        assert command in readme
    assert "were **not run**" in readme
    for name in b.DEPLOYMENT_OUTPUTS:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_every_param_and_variable_is_used(path: Path) -> None:
    template = b.parse(path)
    for section in ("parameters", "variables"):
        for name in template.get(section, {}):
            rest = {key: value for key, value in template.items() if key != section}
            others = {k: v for k, v in template.get(section, {}).items() if k != name}
            assert b.references(rest, name) or b.references(others, name), f"{_id(path)}: {name} is unused"
