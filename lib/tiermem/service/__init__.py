"""The tiermem HTTP service: ``build_service_app(memory)`` -> FastAPI app; ``tiermem serve`` runs it.

Needs ``pip install 'tiermem[service]'``. Names are imported on first use, so importing this package
works without the extra and using the service without it raises an ``ImportError`` that names the
extra. This package is a library: it never imports the CLI (``tiermem serve`` lives in
``tiermem.cli``). Routes: docs/api.md; authentication: docs/auth.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tiermem.service._app import build_service_app
    from tiermem.service._auth import Authenticator, EntraAuthenticator, LocalAuthenticator, Principal
    from tiermem.service._sessions_routes import SessionStoreFactory
    from tiermem.service._settings import ServiceSettings

__all__ = [
    "Authenticator",
    "EntraAuthenticator",
    "LocalAuthenticator",
    "Principal",
    "ServiceSettings",
    "SessionStoreFactory",
    "build_service_app",
]

_HOMES: Final = {
    "Authenticator": "tiermem.service._auth",
    "EntraAuthenticator": "tiermem.service._auth",
    "LocalAuthenticator": "tiermem.service._auth",
    "Principal": "tiermem.service._auth",
    "ServiceSettings": "tiermem.service._settings",
    "SessionStoreFactory": "tiermem.service._sessions_routes",
    "build_service_app": "tiermem.service._app",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tiermem.service' has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except ImportError as exc:
        raise ImportError(
            f"the tiermem HTTP service needs its extra: pip install 'tiermem[service]' ({exc})"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
