"""The .bicepparam files are consistent with main.bicep.

pycep-parser cannot parse .bicepparam files (`using` and untyped `param x = v` are outside its grammar);
``_bicep.parse_bicepparam`` rewrites each assignment into a `var` that pycep does parse. What this
checks is consistency (names, types, allowed values, required params, value ranges), not what the
Bicep compiler would additionally reject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lark.exceptions import LarkError

from tests.infra import _bicep as b

PARAM_FILES = b.bicepparam_files()
MAIN_PARAMS: dict[str, Any] = b.main()["parameters"]


def test_dev_and_prod_param_files_exist() -> None:
    assert {p.name for p in PARAM_FILES} == {"main.dev.bicepparam", "main.prod.bicepparam"}


def _type_ok(declared: str, value: Any) -> bool:
    value = b.literal(value)
    if declared == "bool":
        return isinstance(value, bool)
    if declared == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if declared == "string":
        return isinstance(value, str)
    if declared == "array":
        return isinstance(value, list)
    if declared == "object":
        return isinstance(value, dict)
    return False


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_param_file_matches_main(path: Path) -> None:
    params = b.parse_bicepparam(path)
    assert params.using == "main.bicep"
    assert (path.parent / params.using).is_file()
    unknown = set(params.values) - set(MAIN_PARAMS)
    assert not unknown, f"{path.name} sets params main.bicep does not declare: {sorted(unknown)}"
    required = {n for n, d in MAIN_PARAMS.items() if d.get("default") is None}
    assert required <= set(params.values), (
        f"{path.name} misses required {sorted(required - set(params.values))}"
    )
    for name, value in params.values.items():
        declaration = MAIN_PARAMS[name]
        assert _type_ok(declaration["type"], value), (
            f"{path.name}: {name} = {value!r} is not {declaration['type']}"
        )
        allowed = b.decorator(declaration, "allowed")
        if allowed is not None:
            assert b.literal(value) in allowed, f"{path.name}: {name} = {value!r} not in {allowed}"
        low, high = b.decorator(declaration, "min_value"), b.decorator(declaration, "max_value")
        if low is not None:
            assert b.literal(value) >= low, f"{path.name}: {name} below @minValue({low})"
        if high is not None:
            assert b.literal(value) <= high, f"{path.name}: {name} above @maxValue({high})"
        shortest, longest = b.decorator(declaration, "min_length"), b.decorator(declaration, "max_length")
        if shortest is not None:
            assert len(value) >= shortest, f"{path.name}: {name} shorter than @minLength({shortest})"
        if longest is not None:
            assert len(value) <= longest, f"{path.name}: {name} longer than @maxLength({longest})"


def _effective(path: Path | None) -> dict[str, Any]:
    """Param values main.bicep would deploy with: literal defaults overridden by the param file."""
    values = {n: b.literal(d.get("default")) for n, d in MAIN_PARAMS.items()}
    if path is not None:
        values.update({n: b.literal(v) for n, v in b.parse_bicepparam(path).values.items()})
    return values


@pytest.mark.parametrize("path", [None, *PARAM_FILES], ids=lambda p: "defaults" if p is None else p.name)
def test_blob_retention_days_are_ordered(path: Path | None) -> None:
    v = _effective(path)
    assert v["blobCoolAfterDays"] < v["blobColdAfterDays"] < v["blobDeleteAfterDays"]
    # Point-in-time restore must reach back less far than soft delete keeps blobs.
    assert v["blobPointInTimeRestoreDays"] < v["blobSoftDeleteRetentionDays"]


@pytest.mark.parametrize("path", [None, *PARAM_FILES], ids=lambda p: "defaults" if p is None else p.name)
def test_cosmos_options_are_coherent(path: Path | None) -> None:
    v = _effective(path)
    if v["cosmosCapacityMode"] == "Serverless":
        assert not v["cosmosFailoverLocations"], "serverless accounts are single-region"
        assert v["cosmosEnableMultipleWriteLocations"] is False
    else:
        assert v["cosmosAutoscaleMaxThroughput"] % 1000 == 0


def test_prod_is_private_and_resilient() -> None:
    (prod,) = [p for p in PARAM_FILES if p.name == "main.prod.bicepparam"]
    v = _effective(prod)
    assert v["enablePrivateEndpoints"] is True
    assert v["redisHighAvailability"] is True
    assert v["cosmosCapacityMode"] == "Provisioned" and v["cosmosFailoverLocations"]
    assert v["cosmosBackupTier"] == "Continuous30Days"
    assert v["storageSkuName"] in {"Standard_GZRS", "Standard_RAGZRS", "Standard_GRS", "Standard_RAGRS"}
    assert v["blobPointInTimeRestore"] is True
    assert v["minReplicas"] >= 2


def test_bicepparam_rewrite_rejects_broken_files(tmp_path: Path) -> None:
    """The consistency check must fail on a file pycep cannot make sense of, not pass vacuously."""
    broken = tmp_path / "broken.bicepparam"
    broken.write_text("using 'main.bicep'\nparam a = 'x'\nparam b = [\n")
    with pytest.raises(LarkError):  # pycep's parser is lark; a syntax error surfaces as LarkError
        b.parse_bicepparam(broken)
    no_using = tmp_path / "no-using.bicepparam"
    no_using.write_text("param a = 'x'\n")
    with pytest.raises(AssertionError):
        b.parse_bicepparam(no_using)
