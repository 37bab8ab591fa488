"""Deterministic, realistic agent payloads: chat messages, tool calls and results, summaries.

The prose is real English: sentences taken from the docstrings of standard-library modules (fixed
for a given Python version), so compression ratios resemble those of agent transcripts rather than
those of random or repeated text. Identifiers, timestamps and scores come from a seeded RNG.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
import re
import uuid
import warnings
from typing import Any, Final

__all__ = [
    "agent_conversation",
    "agent_text",
    "embedding_record",
    "small_message",
    "tool_results",
]

_SENTENCE: Final = re.compile(r"(?<=[.!?])\s+")
_MODELS: Final = ("gpt-4o-2024-08-06", "gpt-4.1-mini", "o4-mini")
_TOOLS: Final = ("search_docs", "get_weather", "lookup_order", "run_sql", "fetch_url")


@functools.cache
def _sentences() -> tuple[str, ...]:
    import argparse
    import asyncio
    import collections
    import email.message
    import http.client
    import logging
    import pathlib
    import subprocess
    import urllib.request

    found: list[str] = []
    for module in (
        argparse,
        asyncio,
        collections,
        email.message,
        http.client,
        logging,
        pathlib,
        subprocess,
        urllib.request,
    ):
        found += _module_sentences(module)
    if len(found) < 200:  # pragma: no cover - docstrings stripped (python -OO)
        raise RuntimeError("too few docstring sentences for realistic payloads (running with -OO?)")
    return tuple(found)


def _module_sentences(module: Any) -> list[str]:
    out: list[str] = []
    with warnings.catch_warnings():  # some modules keep deprecated aliases whose docs warn
        warnings.simplefilter("ignore")
        objects = [module, *vars(module).values()]
        docs = [inspect.getdoc(obj) if callable(obj) or obj is module else None for obj in objects]
    for doc in docs:
        if not doc:
            continue
        for raw in _SENTENCE.split(" ".join(doc.split())):
            if 30 <= len(raw) <= 240 and raw[0].isupper() and not raw.startswith(">>>"):
                out.append(raw)
    return out


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _timestamp(rng: random.Random) -> str:
    return (
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999_999):06d}Z"
    )


def _prose(rng: random.Random, sentences: int) -> str:
    pool = _sentences()
    return " ".join(rng.choice(pool) for _ in range(sentences))


def _message(rng: random.Random, *, sentences: int) -> dict[str, Any]:
    role = rng.choice(("user", "assistant", "assistant", "tool"))
    message: dict[str, Any] = {
        "id": _uuid(rng),
        "role": role,
        "created_at": _timestamp(rng),
        "content": _prose(rng, sentences),
        "tokens": rng.randint(12, 900),
        "metadata": {
            "model": rng.choice(_MODELS),
            "latency_ms": round(rng.uniform(80, 4000), 1),
            "trace_id": f"{rng.getrandbits(128):032x}",
        },
    }
    if role == "assistant" and rng.random() < 0.3:
        message["tool_calls"] = [
            {
                "id": f"call_{rng.getrandbits(64):016x}",
                "name": rng.choice(_TOOLS),
                "arguments": {"query": _prose(rng, 1)[:80], "top_k": rng.choice((3, 5, 10))},
            }
        ]
    return message


def small_message(seed: int = 0) -> dict[str, Any]:
    """One short chat turn, about 300 bytes of JSON: the typical hot-tier value."""
    rng = _rng(seed)
    return {
        "id": _uuid(rng),
        "role": "assistant",
        "created_at": _timestamp(rng),
        "content": _prose(rng, 2)[:150],
        "tokens": rng.randint(12, 200),
        "session": _uuid(rng),
        "model": _MODELS[0],
    }


def agent_conversation(target_bytes: int, seed: int = 1) -> dict[str, Any]:
    """A session transcript (messages, tool calls) whose JSON is about ``target_bytes``."""
    rng = _rng(seed)
    session: dict[str, Any] = {
        "session_id": _uuid(rng),
        "agent": "support-agent",
        "user": {"id": _uuid(rng), "locale": "en-GB", "plan": "enterprise"},
        "messages": [],
    }
    size = len(json.dumps(session))
    while size < target_bytes:
        message = _message(rng, sentences=rng.randint(1, 6))
        session["messages"].append(message)
        size += len(json.dumps(message)) + 2
    return session


def tool_results(target_bytes: int, seed: int = 2) -> dict[str, Any]:
    """A retrieval tool's output (titles, URLs, snippets, scores) of about ``target_bytes``."""
    rng = _rng(seed)
    result: dict[str, Any] = {"tool": "search_docs", "query": _prose(rng, 1)[:80], "hits": []}
    size = len(json.dumps(result))
    while size < target_bytes:
        hit = {
            "doc_id": _uuid(rng),
            "title": _prose(rng, 1)[:60],
            "url": f"https://docs.example.com/{rng.getrandbits(40):010x}/{rng.randint(1, 999)}",
            "snippet": _prose(rng, rng.randint(1, 3)),
            "score": round(rng.random(), 6),
            "updated": _timestamp(rng),
        }
        result["hits"].append(hit)
        size += len(json.dumps(hit)) + 2
    return result


def agent_text(target_bytes: int, seed: int = 3) -> str:
    """Plain text (a running summary, a document chunk) of about ``target_bytes``."""
    rng = _rng(seed)
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        paragraph = _prose(rng, rng.randint(3, 8))
        parts.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(parts)[:target_bytes]


def embedding_record(dimensions: int = 1536, seed: int = 4) -> dict[str, Any]:
    """A stored embedding (floats compress poorly): the worst realistic case for gzip."""
    rng = _rng(seed)
    return {
        "id": _uuid(rng),
        "model": "text-embedding-3-small",
        "text": _prose(rng, 2),
        "vector": [round(rng.gauss(0.0, 0.05), 7) for _ in range(dimensions)],
    }
