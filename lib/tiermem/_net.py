"""Small network facts shared by adapters and settings: the one loopback check."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback", "is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address (``[::1]`` brackets allowed) is this machine."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (emulators, stand-ins, local servers)."""
    return is_loopback_host(urlsplit(url).hostname or "")
