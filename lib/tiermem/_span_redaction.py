"""Redact request URLs in spans before they are exported (issue 13 item 7).

azure-core's HTTP spans carry the request URL (``url.full``, ``http.url``), and the Azure Monitor
exporter turns it into the dependency's name and data. For tiermem that URL spells the key: the
blob name is the percent-encoded key, the Cosmos item id its base64url. :class:`RedactingSpanExporter`
wraps the real exporter and rewrites every URL it finds in span names, attributes and event
attributes: scheme, host and port stay; Cosmos resource paths keep their database and container
names; every other name segment becomes ``REDACTED``; query strings go (they name prefixes and
continuation markers). Needs the OpenTelemetry SDK (``tiermem[monitor]``); imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["REDACTED", "RedactingSpanExporter", "redact_path", "redact_span", "redact_text"]

REDACTED: Final = "REDACTED"
_URL_RE: Final = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_PATH_KEYS: Final = frozenset({"url.path", "http.target"})
_QUERY_KEYS: Final = frozenset({"url.query"})
_COSMOS_KEPT: Final = frozenset({"dbs", "colls"})  # the names after these are the database and container


def redact_path(path: str) -> str:
    """A URL path without the names that can spell a key (see the module docs)."""
    parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
    if not parts or parts == [""]:
        return path
    if parts[0] == "dbs":  # Cosmos: /dbs/{db}/colls/{container}/docs/{id}/...
        out = [
            REDACTED if i % 2 and seg and parts[i - 1] not in _COSMOS_KEPT else seg
            for i, seg in enumerate(parts)
        ]
    else:  # Blob and anything else: the first segment (container, or Azurite's account) only
        out = [parts[0], REDACTED] if any(parts[1:]) else parts
    return "/" + "/".join(out)


def _redact_url(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        split = urlsplit(url)
        host = split.hostname or ""
        port = f":{split.port}" if split.port else ""
    except ValueError:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    return f"{split.scheme}://{host}{port}{redact_path(split.path)}"  # no userinfo, no query


def redact_text(text: str) -> str:
    """``text`` with every http(s) URL in it redacted."""
    if "://" not in text:
        return text
    return _URL_RE.sub(_redact_url, text)


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key in _QUERY_KEYS:
            return REDACTED
        if key in _PATH_KEYS:
            return redact_path(value.partition("?")[0])
        return redact_text(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | str):
        return tuple(_redact_value(key, v) for v in value)
    return value


def _redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return {k: _redact_value(k, v) for k, v in attributes.items()}


def _redact_name(name: str) -> str:
    # azure-core names an HTTP span after its method, the exporter after "METHOD /path": either way.
    method, sep, rest = name.partition(" ")
    if sep and rest.startswith("/"):
        return f"{method} {redact_path(rest.partition('?')[0])}"
    return redact_text(name)


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with every URL in its name, attributes and events redacted."""
    attributes = _redact_attributes(span.attributes)
    events = [Event(e.name, _redact_attributes(e.attributes), timestamp=e.timestamp) for e in span.events]
    return ReadableSpan(
        name=_redact_name(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Hands ``inner`` redacted copies of the spans; owns ``inner`` (shuts it down)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redact_span(s) for s in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
