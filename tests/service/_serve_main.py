"""``python -m tests.service._serve_main ...``: the tiermem CLI with ``serve`` registered.

Until the CLI group registers ``serve`` itself, the process tests start the service through this
module, which does exactly what the group will do (``cli.add_command(serve)``).
"""

from tiermem.cli import cli
from tiermem.cli._serve import serve

if "serve" not in cli.commands:
    cli.add_command(serve)

if __name__ == "__main__":
    cli(prog_name="tiermem")
