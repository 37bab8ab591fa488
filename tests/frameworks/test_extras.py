"""A missing extra raises ImportError naming it; ``import tiermem`` never imports the frameworks."""

from __future__ import annotations

import subprocess
import sys

import pytest

_BLOCK = "import sys; sys.modules[{module!r}] = None; import tiermem; "


@pytest.mark.parametrize(
    ("blocked", "package", "extra"),
    [
        ("langgraph", "tiermem.langgraph", "tiermem[langgraph]"),
        ("agent_framework", "tiermem.agent_framework", "tiermem[agent-framework]"),
    ],
)
def test_missing_extra_names_it(blocked: str, package: str, extra: str) -> None:
    code = _BLOCK.format(module=blocked) + f"import {package}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "ImportError" in done.stderr and extra in done.stderr


def test_importing_tiermem_does_not_import_the_frameworks() -> None:
    code = (
        "import sys, tiermem; "
        "print(any(m.split('.')[0] in ('langgraph', 'agent_framework') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
