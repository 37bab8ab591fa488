"""Which connection failures skip the Blob SDK's retry backoff (ADR 0017): real errors from real
loopback sockets, classified by :func:`tiermem.tiers._azure.refused_at_connect`."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from tiermem.tiers._azure import refused_at_connect


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _aiohttp_error(url: str) -> aiohttp.ClientError:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        with pytest.raises(aiohttp.ClientError) as info:
            await session.get(url)
    return info.value


async def test_a_refused_connection_is_recognised_through_azure_core_wrapping() -> None:
    raw = await _aiohttp_error(f"http://127.0.0.1:{_dead_port()}/")
    wrapped = ServiceRequestError(raw, error=raw)  # what azure-core's aiohttp transport raises
    assert refused_at_connect(raw) and refused_at_connect(wrapped)


async def test_a_dropped_connection_is_not_a_refusal() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # accepted, then closed without an answer

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        raw = await _aiohttp_error(f"http://127.0.0.1:{port}/")
    assert not refused_at_connect(raw)
    assert not refused_at_connect(ServiceResponseError(raw, error=raw))


def test_unknown_host_names_are_final_and_resolver_hiccups_are_not() -> None:
    assert refused_at_connect(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert not refused_at_connect(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert not refused_at_connect(TimeoutError("connect timed out"))
    assert not refused_at_connect(ConnectionResetError(104, "Connection reset by peer"))
