"""``tiermem.service`` exports exactly what its callers need."""

from __future__ import annotations

import tiermem.service


def test_public_names() -> None:
    assert set(tiermem.service.__all__) == {
        "Authenticator",
        "EntraAuthenticator",
        "LocalAuthenticator",
        "Principal",
        "ServiceSettings",
        "SessionStoreFactory",
        "build_service_app",
    }
    for name in tiermem.service.__all__:
        assert getattr(tiermem.service, name) is not None


def test_the_authenticators_satisfy_the_protocol() -> None:
    local = tiermem.service.LocalAuthenticator("t", frozenset())
    assert isinstance(local, tiermem.service.Authenticator)
    entra = tiermem.service.EntraAuthenticator(
        tenant_id="11111111-aaaa-4aaa-8aaa-111111111111", audiences=["api://x"]
    )
    assert isinstance(entra, tiermem.service.Authenticator)
    assert entra.issuers("11111111-aaaa-4aaa-8aaa-111111111111") == [
        "https://login.microsoftonline.com/11111111-aaaa-4aaa-8aaa-111111111111/v2.0"
    ]


def test_serve_imports_without_the_service_extra() -> None:
    """The CLI registers ``serve`` unconditionally; without the extra it fails only when run."""
    import subprocess
    import sys

    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fastapi", "uvicorn", "jwt", "starlette"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
from click.testing import CliRunner
from tiermem.cli._serve import serve
result = CliRunner().invoke(serve, ["--auth", "none"])
print(result.exit_code, result.output.strip())
try:
    from tiermem.service import build_service_app
except ImportError as exc:
    print("ImportError", exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("8 ")
    assert "pip install 'tiermem[service]'" in lines[0]
    assert lines[1].startswith("ImportError")
    assert "pip install 'tiermem[service]'" in lines[1]
