"""Issue 13 item 7: the pure URL redaction behind the Azure Monitor span exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan

from tiermem._span_redaction import redact_path, redact_span, redact_text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://acct.documents.azure.com:443/dbs/tiermem/colls/memory/docs/acme%3Ans%3AY3VzdA/",
            "https://acct.documents.azure.com:443/dbs/tiermem/colls/memory/docs/REDACTED/",
        ),
        (
            "https://acct.blob.core.windows.net/tiermem/acme/ns/customer%253A4711?comp=block&sig=abc",
            "https://acct.blob.core.windows.net/tiermem/REDACTED",
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/c/acme/ns/k",
            "http://127.0.0.1:10000/devstoreaccount1/REDACTED",
        ),
        ("https://user:pw@host/container?restype=container", "https://host/container"),
        (
            "https://acct.documents.azure.com/dbs/tiermem/colls/memory/docs/",
            "https://acct.documents.azure.com/dbs/tiermem/colls/memory/docs/",
        ),
    ],
)
def test_urls_keep_host_and_containers_only(url: str, expected: str) -> None:
    assert redact_text(url) == expected
    assert redact_text(f"request to {url} failed") == f"request to {expected} failed"


def test_paths_and_plain_text() -> None:
    assert (
        redact_path("/dbs/db/colls/c/docs/id/attachments/a")
        == "/dbs/db/colls/c/docs/REDACTED/attachments/REDACTED"
    )
    assert redact_path("/") == "/"
    assert redact_text("no url here: acme/ns/key") == "no url here: acme/ns/key"


def test_a_span_is_redacted_in_name_attributes_and_events() -> None:
    url = "https://a.blob.core.windows.net/c/acme/ns/secret-key"
    span = ReadableSpan(
        name="GET /c/acme/ns/secret-key",
        attributes={
            "url.full": url,
            "http.url": url,
            "url.path": "/c/acme/ns/secret-key",
            "url.query": "marker=x",
        },
        events=[Event("exception", {"exception.message": f"404 for {url}"})],
    )
    out = redact_span(span)
    assert "secret-key" not in repr(
        (out.name, dict(out.attributes or {}), [dict(e.attributes or {}) for e in out.events])
    )
    assert out.name == "GET /c/REDACTED"
    assert (out.attributes or {})["url.full"] == "https://a.blob.core.windows.net/c/REDACTED"
