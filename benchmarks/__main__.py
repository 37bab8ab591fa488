"""``python -m benchmarks``: the same command as ``tiermem bench`` (see ``--help``)."""

from __future__ import annotations

from tiermem.cli._bench import bench

if __name__ == "__main__":
    bench.main(prog_name="python -m benchmarks")
