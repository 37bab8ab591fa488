"""Codec scenarios (tiermem's envelope vs ``json``) and the compression-level measurements.

Compression is measured on realistic agent data (see ``_payloads``) at gzip levels 1, 6 and 9
(the stdlib ``zlib`` with a gzip container, exactly what ``tiermem._codec`` does) and, when the
optional ``zstandard`` package is importable, zstd levels 1 and 3 for reference. Each figure is the
median of several timed repetitions.
"""

from __future__ import annotations

import json
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks._harness import Comparison, Scenario, Variant, timer
from benchmarks._payloads import agent_conversation, agent_text, embedding_record, small_message, tool_results
from tiermem import Codec

__all__ = [
    "CompressionResult",
    "ThresholdResult",
    "codec_scenarios",
    "compression_table",
    "threshold_table",
    "zstd_available",
]

_GZIP_WBITS = 31


def _sync_loop(fn: Callable[[], Any]) -> Callable[[int], Any]:
    async def run(n: int) -> float:
        start = timer()
        for _ in range(n):
            fn()
        return timer() - start

    return run


def codec_scenarios(*, quick: bool) -> list[Scenario]:
    codec = Codec()  # tiermem's defaults: orjson, gzip level 1 from 4 KiB when it saves >= 10%
    large_target = 64 * 1024 if quick else 1024 * 1024
    cases = (
        ("small", "~300 B agent message", small_message(0)),
        ("large", f"~{large_target // 1024} KiB agent transcript", agent_conversation(large_target)),
    )
    scenarios: list[Scenario] = []
    for size, what, value in cases:
        record, _ = codec.encode(value)
        text = json.dumps(value).encode()
        compressed = " (gzip-1 included)" if record.compressed else ""

        def tm_encode(value: Any = value) -> None:
            codec.encode(value)

        def json_encode(value: Any = value) -> None:
            json.dumps(value).encode()

        def tm_decode(record: Any = record) -> None:
            codec.decode(record)

        def json_decode(text: bytes = text) -> None:
            json.loads(text)

        scenarios.append(
            Scenario(
                f"codec.encode.{size}",
                "codec",
                [
                    Variant("tiermem Codec.encode", _sync_loop(tm_encode)),
                    Variant("json.dumps", _sync_loop(json_encode)),
                ],
                [
                    Comparison(
                        f"codec.encode.{size}",
                        f"encode {what}{compressed}",
                        "tiermem Codec.encode",
                        "json.dumps",
                        note="orjson + CRC32 + envelope" + (" + gzip level 1" if record.compressed else ""),
                    )
                ],
            )
        )
        scenarios.append(
            Scenario(
                f"codec.decode.{size}",
                "codec",
                [
                    Variant("tiermem Codec.decode", _sync_loop(tm_decode)),
                    Variant("json.loads", _sync_loop(json_decode)),
                ],
                [
                    Comparison(
                        f"codec.decode.{size}",
                        f"decode {what}{compressed}",
                        "tiermem Codec.decode",
                        "json.loads",
                        note="CRC32 check + orjson" + (" + gunzip" if record.compressed else ""),
                    )
                ],
            )
        )
    return scenarios


# -- compression levels ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompressionResult:
    corpus: str
    size: int
    algorithm: str
    level: int
    ratio: float
    compress_mb_s: float
    decompress_mb_s: float
    compress_us: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "size_bytes": self.size,
            "algorithm": self.algorithm,
            "level": self.level,
            "ratio": round(self.ratio, 3),
            "compress_mb_s": round(self.compress_mb_s, 1),
            "decompress_mb_s": round(self.decompress_mb_s, 1),
            "compress_us": round(self.compress_us, 1),
        }


def _corpora(quick: bool) -> list[tuple[str, bytes]]:
    if quick:
        return [("agent transcript JSON", orjson.dumps(agent_conversation(16 * 1024)))]
    return [
        ("agent transcript JSON", orjson.dumps(agent_conversation(1024 * 1024))),
        ("agent transcript JSON", orjson.dumps(agent_conversation(64 * 1024))),
        ("tool results JSON", orjson.dumps(tool_results(256 * 1024))),
        ("summary text", agent_text(64 * 1024).encode()),
        ("embedding JSON", orjson.dumps(embedding_record())),
    ]


def _median_seconds(fn: Callable[[], Any], *, budget: float, repeats: int) -> float:
    """Median seconds of one call, over ``repeats`` timings of as many calls as fit in ``budget``."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, int(budget / once))
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        timings.append((time.perf_counter() - start) / inner)
    return statistics.median(timings)


def _algorithms() -> list[tuple[str, int, Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    algos: list[tuple[str, int, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = []
    for level in (1, 6, 9):

        def gz(data: bytes, level: int = level) -> bytes:
            return zlib.compress(data, level, wbits=_GZIP_WBITS)

        def gunzip(data: bytes) -> bytes:
            return zlib.decompress(data, wbits=_GZIP_WBITS)

        algos.append(("gzip", level, gz, gunzip))
    try:
        import zstandard
    except ImportError:
        return algos
    for level in (1, 3):
        compressor = zstandard.ZstdCompressor(level=level)
        decompressor = zstandard.ZstdDecompressor()
        algos.append(("zstd", level, compressor.compress, decompressor.decompress))
    return algos


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def compression_table(*, quick: bool, rounds: int) -> list[CompressionResult]:
    budget = 0.002 if quick else 0.05
    repeats = max(1, min(rounds, 9))
    results = []
    for corpus, data in _corpora(quick):
        for algorithm, level, compress, decompress in _algorithms():
            packed = compress(data)
            c = _median_seconds(lambda d=data, f=compress: f(d), budget=budget, repeats=repeats)
            d = _median_seconds(lambda p=packed, f=decompress: f(p), budget=budget, repeats=repeats)
            results.append(
                CompressionResult(
                    corpus=corpus,
                    size=len(data),
                    algorithm=algorithm,
                    level=level,
                    ratio=len(data) / len(packed),
                    compress_mb_s=len(data) / c / 1e6,
                    decompress_mb_s=len(data) / d / 1e6,
                    compress_us=c * 1e6,
                )
            )
    return results


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """What gzip level 1 does to one value of ``size`` bytes (the compress_min_bytes question)."""

    size: int
    compressed: int
    compress_us: float
    decompress_us: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size,
            "compressed_bytes": self.compressed,
            "saved_bytes": self.size - self.compressed,
            "ratio": round(self.size / self.compressed, 3),
            "compress_us": round(self.compress_us, 2),
            "decompress_us": round(self.decompress_us, 2),
        }


def threshold_table(*, quick: bool, rounds: int) -> list[ThresholdResult]:
    """gzip-1 on transcript JSON cut to 512 B .. 64 KiB: bytes saved against microseconds spent."""
    sizes = (1024, 4096) if quick else (512, 1024, 2048, 4096, 8192, 16384, 65536)
    source = orjson.dumps(agent_conversation(max(sizes) * 2))
    budget = 0.002 if quick else 0.02
    repeats = max(1, min(rounds, 9))
    out = []
    for size in sizes:
        data = source[:size]
        packed = zlib.compress(data, 1, wbits=_GZIP_WBITS)
        c = _median_seconds(
            lambda d=data: zlib.compress(d, 1, wbits=_GZIP_WBITS), budget=budget, repeats=repeats
        )
        d = _median_seconds(
            lambda p=packed: zlib.decompress(p, wbits=_GZIP_WBITS), budget=budget, repeats=repeats
        )
        out.append(ThresholdResult(size, len(packed), c * 1e6, d * 1e6))
    return out
