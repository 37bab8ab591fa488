"""Bearer-token validation through HTTP: every way a token can be wrong gets a 401 and touches nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.service.conftest import (
    ALL_ROLES,
    AUDIENCE,
    CLIENT_ID,
    DROP,
    READ,
    TENANT_A,
    TENANT_B,
    TENANT_C,
    WRITE,
    IdentityProvider,
    Service,
    issuer,
    make_memory,
    new_rsa_key,
    running,
    service_over,
)
from tiermem import ConfigurationError
from tiermem.service import EntraAuthenticator, ServiceSettings, build_service_app

URL = "/v1/memory/notes/k"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


async def _assert_invalid(svc: Service, token: str, reason: str | None = None) -> dict[str, Any]:
    """A request with ``token`` is refused with 401 invalid_token, and nothing was written."""
    headers = {"Authorization": f"Bearer {token}"}
    put = await svc.client.put(URL, json={"value": "x"}, headers=headers)
    get = await svc.client.get(URL, headers=headers)
    for response in (put, get):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        body = response.json()
        assert body["error"]["code"] == "invalid_token"
        assert len(body["error"]["message"]) < 60
        assert "Traceback" not in response.text
        if reason is not None:
            assert body["error"]["message"] == reason
    for tenant in (TENANT_A, TENANT_B, "default"):
        assert await svc.memory.scoped(tenant=tenant, namespace="notes").get("k") is None
    return put.json()


async def test_a_valid_token_reads_and_writes_its_tenant(service: Service) -> None:
    put = await service.client.put(URL, json={"value": {"n": 1}}, headers=service.auth())
    assert put.status_code == 200, put.text
    got = await service.client.get(URL, headers=service.auth())
    assert got.status_code == 200
    assert got.json()["value"] == {"n": 1}
    # The value landed in the tenant named by the token's tid claim.
    assert await service.memory.scoped(tenant=TENANT_A, namespace="notes").get("k") == {"n": 1}


async def test_missing_token_is_a_401_challenge_without_error_code(service: Service) -> None:
    response = await service.client.get(URL)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tiermem"'
    assert response.json()["error"]["code"] == "unauthorized"
    # Authentication comes before any validation: an anonymous caller learns nothing about the schema.
    for method, path, body in (
        ("GET", "/v1/memory/bad namespace/%00", None),
        ("PUT", URL, {"nonsense": True}),
        ("POST", "/v1/memory/notes:mget", {"keys": "not-a-list"}),
        ("GET", "/v1/sessions/s/turns?limit=-5", None),
    ):
        anonymous = await service.client.request(method, path, json=body)
        assert anonymous.status_code == 401, path


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer", "Token abc", "Bearer a b"],
)
async def test_non_bearer_or_empty_credentials_are_refused(service: Service, authorization: str) -> None:
    response = await service.client.get(URL, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_token(service: Service) -> None:
    now = int(time.time())
    token = service.idp.mint(exp=now - 120, iat=now - 3700, nbf=now - 3700)
    await _assert_invalid(service, token, "token expired")


async def test_expiry_within_the_leeway_is_accepted(service: Service) -> None:
    token = service.idp.mint(exp=int(time.time()) - 20)  # leeway is 60 s
    response = await service.client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404  # authenticated; the key just does not exist


async def test_not_yet_valid_token(service: Service) -> None:
    now = int(time.time())
    token = service.idp.mint(nbf=now + 600, iat=now)
    await _assert_invalid(service, token, "token not yet valid")


async def test_issued_in_the_future(service: Service) -> None:
    now = int(time.time())
    token = service.idp.mint(iat=now + 600, nbf=now - 10)
    await _assert_invalid(service, token)


async def test_wrong_audience(service: Service) -> None:
    await _assert_invalid(service, service.idp.mint(aud="api://some-other-api"), "invalid audience")


async def test_both_configured_audiences_are_accepted(service: Service) -> None:
    for aud in (AUDIENCE, CLIENT_ID, [CLIENT_ID, "api://x"]):
        response = await service.client.get(URL, headers=service.auth(aud=aud))
        assert response.status_code == 404, aud


@pytest.mark.parametrize(
    "iss",
    [
        "https://login.microsoftonline.com/organizations/v2.0",
        f"https://login.microsoftonline.com/{TENANT_B}/v2.0",  # another tenant's issuer for a TENANT_A token
        f"https://evil.example/{TENANT_A}/v2.0",
        f"https://sts.windows.net/{TENANT_A}/",  # v1 issuer: not accepted unless configured
        f"https://login.microsoftonline.com/{TENANT_A}/v2.0/",
    ],
)
async def test_wrong_issuer(service: Service, iss: str) -> None:
    await _assert_invalid(service, service.idp.mint(iss=iss), "invalid issuer")


async def test_a_tenant_outside_the_allow_list_is_refused(service: Service) -> None:
    await _assert_invalid(service, service.idp.mint(TENANT_C), "invalid issuer")


@pytest.mark.parametrize("tid", ["a/b", "../" + TENANT_B, "not-a-guid", TENANT_A.upper() + "x", 42, None])
async def test_malformed_tid(service: Service, tid: Any) -> None:
    await _assert_invalid(service, service.idp.mint(tid=tid, iss=issuer(str(tid))))


async def test_bad_signature_from_another_key_with_a_known_kid(service: Service) -> None:
    forged = service.idp.mint(kid="key-1", signing_key=new_rsa_key())
    await _assert_invalid(service, forged, "invalid signature")


async def test_tampered_payload(service: Service) -> None:
    head, _, sig = service.idp.mint(TENANT_A, (READ,)).split(".")
    payload = _b64(json.dumps(service.idp.claims(TENANT_A, ALL_ROLES)).encode())
    await _assert_invalid(service, f"{head}.{payload}.{sig}", "invalid signature")


async def test_alg_none_is_refused(service: Service) -> None:
    claims = service.idp.claims()
    for alg in ("none", "None", "NONE"):
        await _assert_invalid(
            service,
            _unsigned({"alg": alg, "typ": "JWT", "kid": "key-1"}, claims),
            "unsupported token algorithm",
        )
    token = jwt.encode(claims, None, algorithm="none")
    await _assert_invalid(service, token, "unsupported token algorithm")


async def test_hs256_signed_with_the_public_key_is_refused(service: Service) -> None:
    """The classic key-confusion attack: HMAC 'signed' with the published RSA public key."""
    public_pem = (
        service.idp.keys["key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = service.idp.claims()
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        header = {"alg": alg, "typ": "JWT", "kid": "key-1"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(public_pem, signing_input.encode(), digest).digest()
        await _assert_invalid(service, f"{signing_input}.{_b64(signature)}", "unsupported token algorithm")


async def test_other_asymmetric_algorithms_are_refused(service: Service) -> None:
    token = jwt.encode(
        service.idp.claims(), service.idp.keys["key-1"], algorithm="RS512", headers={"kid": "key-1"}
    )
    await _assert_invalid(service, token, "unsupported token algorithm")


async def test_token_without_kid(service: Service) -> None:
    token = jwt.encode(service.idp.claims(), service.idp.keys["key-1"], algorithm="RS256")
    await _assert_invalid(service, token, "token has no key id")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9", "x" * 20_000])
async def test_malformed_tokens(service: Service, token: str) -> None:
    await _assert_invalid(service, token)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud", "tid"])
async def test_required_claims(service: Service, claim: str) -> None:
    await _assert_invalid(service, service.idp.mint(**{claim: DROP}))


async def test_unknown_kid_refreshes_the_keys_once_and_is_rate_limited(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with service_over(tmp_path, idp, auth_jwks_min_refresh_seconds=3600) as svc:
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
        assert idp.jwks_fetches == 1
        stranger = new_rsa_key()
        for i in range(5):
            token = idp.mint(kid=f"unknown-{i}", signing_key=stranger)
            await _assert_invalid(svc, token, "unknown signing key")
        # The first unknown kid could only be refreshed if the last fetch was long enough ago: it was not.
        assert idp.jwks_fetches == 1


async def test_key_rotation_is_picked_up_on_an_unknown_kid(service: Service) -> None:
    idp = service.idp
    assert (await service.client.get(URL, headers=service.auth())).status_code == 404
    fetches = idp.jwks_fetches
    idp.add_key("key-3")
    response = await service.client.get(URL, headers=service.auth(kid="key-3"))
    assert response.status_code == 404
    assert idp.jwks_fetches == fetches + 1
    # Cached now: no more fetches for known keys.
    for kid in ("key-1", "key-2", "key-3"):
        assert (await service.client.get(URL, headers=service.auth(kid=kid))).status_code == 404
    assert idp.jwks_fetches == fetches + 1


async def test_a_retired_key_stops_working_after_the_cache_expires(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with service_over(tmp_path, idp, auth_jwks_cache_seconds=0.2) as svc:
        assert (await svc.client.get(URL, headers=svc.auth(kid="key-2"))).status_code == 404
        idp.published.remove("key-2")
        await asyncio.sleep(0.3)
        await _assert_invalid(svc, idp.mint(kid="key-2"), "unknown signing key")
        assert (await svc.client.get(URL, headers=svc.auth(kid="key-1"))).status_code == 404


async def test_jwks_outage_before_any_key_is_a_503(tmp_path: Path, idp: IdentityProvider) -> None:
    idp.failing = True
    async with service_over(tmp_path, idp) as svc:
        response = await svc.client.get(URL, headers=svc.auth())
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["error"]["code"] == "auth_unavailable"
        idp.failing = False
        await asyncio.sleep(0.05)
        # min_refresh is 0 in these tests, so the next request retries and succeeds.
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404


async def test_cached_keys_survive_a_jwks_outage(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(tmp_path, idp, auth_jwks_cache_seconds=0.1) as svc:
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
        idp.failing = True
        await asyncio.sleep(0.2)  # the cache is stale; the refresh fails; the known keys stay in use
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
        await _assert_invalid(svc, idp.mint(kid="new", signing_key=new_rsa_key()), "unknown signing key")


async def test_missing_role_is_403(service: Service) -> None:
    for roles in (None, [], ["Memory.Admin"], ["memory.read"]):
        response = await service.client.get(URL, headers=service.auth(roles=roles))
        assert response.status_code == 403, roles
        assert response.json()["error"]["code"] == "forbidden"
    response = await service.client.get(
        URL, headers=service.auth(roles="Memory.Read")
    )  # a string, not a list
    assert response.status_code == 403


async def test_read_only_token_cannot_write(service: Service) -> None:
    reader = service.auth(roles=[READ])
    memory = service.memory.scoped(tenant=TENANT_A, namespace="notes")
    await memory.set("k", "original")
    await service.client.post("/v1/sessions/s/turns", json={"n": 0}, headers=service.auth())
    attempts = [
        service.client.put(URL, json={"value": "changed"}, headers=reader),
        service.client.delete(URL, headers=reader),
        service.client.post("/v1/memory/notes:mset", json={"items": {"k": "changed"}}, headers=reader),
        service.client.post("/v1/sessions/s/turns", json={"n": 1}, headers=reader),
        service.client.post("/v1/sessions/s:archive", headers=reader),
        service.client.delete("/v1/sessions/s", headers=reader),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, response.request.url
        assert "Memory.Write" in response.json()["error"]["message"]
    assert await memory.get("k") == "original"
    turns = await service.client.get("/v1/sessions/s/turns", headers=reader)
    assert turns.json()["turns"] == [{"n": 0}]
    meta = await service.client.get("/v1/sessions/s", headers=reader)
    assert meta.json()["archived"] is False
    # ...while reads work with the read role alone.
    assert (await service.client.get(URL, headers=reader)).json()["value"] == "original"
    mget = await service.client.post("/v1/memory/notes:mget", json={"keys": ["k"]}, headers=reader)
    assert mget.json()["values"] == {"k": "original"}
    assert (await service.client.head(URL, headers=reader)).status_code == 200


async def test_write_only_token_cannot_read(service: Service) -> None:
    writer = service.auth(roles=[WRITE])
    assert (await service.client.put(URL, json={"value": 1}, headers=writer)).status_code == 200
    for response in (
        await service.client.get(URL, headers=writer),
        await service.client.head(URL, headers=writer),
        await service.client.post("/v1/memory/notes:mget", json={"keys": ["k"]}, headers=writer),
        await service.client.get("/v1/sessions/s/turns", headers=writer),
        await service.client.get("/v1/sessions/s", headers=writer),
        await service.client.get("/v1/stats", headers=writer),
    ):
        assert response.status_code == 403, response.request.url


@pytest.mark.parametrize(
    "tenant_claim",
    ["a/b", "../other", "", "x" * 65, "...", "t:1", "a b", "tenant\x00", 7, ["a"], None],
)
async def test_bad_tenant_claim_is_refused_and_never_used(
    tmp_path: Path, idp: IdentityProvider, tenant_claim: Any
) -> None:
    async with service_over(
        tmp_path, idp, auth_tenant_claim="tiermem_tenant", auth_tenant_id=TENANT_A
    ) as svc:
        token = idp.mint(tiermem_tenant=tenant_claim)
        await _assert_invalid(svc, token, "token has no valid tenant claim")


async def test_missing_custom_tenant_claim(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(
        tmp_path, idp, auth_tenant_claim="tiermem_tenant", auth_tenant_id=TENANT_A
    ) as svc:
        await _assert_invalid(svc, idp.mint(), "token has no valid tenant claim")


async def test_custom_tenant_claim_splits_one_entra_tenant(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(
        tmp_path, idp, auth_tenant_claim="tiermem_tenant", auth_tenant_id=TENANT_A
    ) as svc:
        team1 = svc.auth(tiermem_tenant="team-1")
        team2 = svc.auth(tiermem_tenant="team-2")
        assert (await svc.client.put(URL, json={"value": 1}, headers=team1)).status_code == 200
        assert (await svc.client.get(URL, headers=team2)).status_code == 404
        assert await svc.memory.scoped(tenant="team-1", namespace="notes").get("k") == 1
        assert await svc.memory.scoped(tenant=TENANT_A, namespace="notes").get("k") is None


async def test_single_tenant_mode(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(
        tmp_path, idp, auth_tenant_id=TENANT_A, auth_openid_config_url=idp.openid_config_url(TENANT_A)
    ) as svc:
        assert (await svc.client.get(URL, headers=svc.auth(TENANT_A))).status_code == 404
        # A token of another (even otherwise allowed) tenant, correctly signed, is refused.
        await _assert_invalid(svc, idp.mint(TENANT_B), "invalid issuer")
        # ...also when it claims the right issuer but another tid.
        await _assert_invalid(svc, idp.mint(TENANT_A, tid=TENANT_B, iss=issuer(TENANT_A)), "invalid issuer")
        assert any(path.startswith(f"/{TENANT_A}/v2.0/.well-known") for path in idp.requests)


async def test_v1_issuer_when_enabled(tmp_path: Path, idp: IdentityProvider) -> None:
    v1 = {"iss": f"https://sts.windows.net/{TENANT_A}/", "ver": "1.0"}
    async with service_over(tmp_path, idp, auth_accept_v1_tokens=True) as svc:
        assert (await svc.client.get(URL, headers=svc.auth(**v1))).status_code == 404
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
        await _assert_invalid(svc, idp.mint(iss=f"https://sts.windows.net/{TENANT_B}/"), "invalid issuer")


async def test_jwks_url_skips_discovery(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(tmp_path, idp, auth_openid_config_url=None, auth_jwks_url=idp.jwks_url) as svc:
        assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
    assert idp.requests == ["/discovery/v2.0/keys"]


async def test_default_discovery_url_comes_from_the_authority(tmp_path: Path, idp: IdentityProvider) -> None:
    async with service_over(
        tmp_path,
        idp,
        auth_tenant_id=TENANT_A,
        auth_openid_config_url=None,
        auth_authority=idp.base_url,
    ) as svc:
        token = idp.mint(iss=f"{idp.base_url}/{TENANT_A}/v2.0")
        assert (await svc.client.get(URL, headers={"Authorization": f"Bearer {token}"})).status_code == 404
    assert idp.requests[0] == f"/{TENANT_A}/v2.0/.well-known/openid-configuration"


# Minting with a deliberately weak key is the point of this test; PyJWT warns when it signs with one.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_weak_and_foreign_keys_in_the_jwks_are_ignored(service: Service) -> None:
    idp = service.idp
    idp.add_key("weak", bits=1024)
    await _assert_invalid(service, idp.mint(kid="weak"), "unknown signing key")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"auth_tenant_id": None}, "TIERMEM_AUTH_TENANT_ID"),
        ({"auth_tenant_id": "contoso.onmicrosoft.com"}, "TIERMEM_AUTH_TENANT_ID"),
        ({"auth_audience": None}, "TIERMEM_AUTH_AUDIENCE"),
        ({"auth_audience": " , "}, "TIERMEM_AUTH_AUDIENCE"),
        ({"auth_allowed_tenants": None}, "TIERMEM_AUTH_ALLOWED_TENANTS"),
        ({"auth_allowed_tenants": "contoso"}, "TIERMEM_AUTH_ALLOWED_TENANTS"),
        ({"auth_openid_config_url": "http://idp.example/x"}, "https"),
        ({"auth_jwks_url": "http://idp.example/keys"}, "https"),
    ],
)
def test_incomplete_entra_settings_fail_at_build(
    tmp_path: Path, idp: IdentityProvider, settings: dict[str, Any], fragment: str
) -> None:
    memory = make_memory(tmp_path)
    with pytest.raises(ConfigurationError, match=fragment):
        build_service_app(memory, settings=idp.settings(**settings))


def test_the_default_settings_fail_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIERMEM_AUTH_MODE", "TIERMEM_AUTH_TENANT_ID", "TIERMEM_AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="TIERMEM_AUTH_TENANT_ID"):
        build_service_app(make_memory(tmp_path))


def test_multi_tenant_apps_must_use_the_tid_claim(idp: IdentityProvider) -> None:
    # Every claim but tid is under the control of the customer tenant that issued the token.
    with pytest.raises(ConfigurationError, match="'tid' claim"):
        EntraAuthenticator.from_settings(idp.settings(auth_tenant_claim="tiermem_tenant"))


async def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider) -> None:
    monkeypatch.setenv("TIERMEM_AUTH_MODE", "entra")
    monkeypatch.setenv("TIERMEM_AUTH_TENANT_ID", TENANT_A)
    monkeypatch.setenv("TIERMEM_AUTH_AUDIENCE", f"{AUDIENCE}, {CLIENT_ID}")
    monkeypatch.setenv("TIERMEM_AUTH_TENANT_CLAIM", "tiermem_tenant")
    monkeypatch.setenv("TIERMEM_SERVICE_MAX_BODY_BYTES", "4096")
    settings = ServiceSettings()
    assert settings.audiences == [AUDIENCE, CLIENT_ID]
    assert settings.max_body_bytes == 4096
    auth = EntraAuthenticator.from_settings(settings)
    assert auth.issuers(TENANT_A) == [issuer(TENANT_A)]
    assert auth.tenant_claim == "tiermem_tenant"
    await auth.aclose()


async def test_an_injected_authenticator_is_used_and_not_closed(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with httpx.AsyncClient() as http:
        auth = EntraAuthenticator(
            tenant_id=TENANT_A,
            audiences=[AUDIENCE],
            jwks_url=idp.jwks_url,
            http=http,
            jwks_min_refresh_seconds=0,
        )
        memory = make_memory(tmp_path)
        await memory.setup()
        app = build_service_app(memory, settings=ServiceSettings(auth_mode="none"), auth=auth)
        async with running(app, memory, idp) as svc:
            assert (
                await svc.client.get(URL)
            ).status_code == 401  # the injected Entra auth wins over the mode
            assert (await svc.client.get(URL, headers=svc.auth())).status_code == 404
        assert not http.is_closed
        await auth.aclose()
        await memory.aclose()
