"""Measurement: variants run alternately in rounds, medians per op, paired ratios, targets.

A *scenario* has two or more *variants* (tiermem and its baselines) that do the same work. After a
warm-up batch (which also calibrates how many ops a batch holds), every round runs one batch of
each variant in a fixed order - A, B, A, B, ... - so slow drift of the machine (other jobs, CPU
frequency, a neighbour's test run) hits every variant alike. A variant's result is the median of
its per-round "seconds per op"; a comparison's ratio is the median of the per-round ratios of two
variants (paired: each pair of batches ran back to back), with the interquartile range as spread.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BenchmarkError",
    "Comparison",
    "Measured",
    "Row",
    "Scenario",
    "Target",
    "Unit",
    "Variant",
    "measure",
    "quantiles",
]

Timed = Callable[[int], Awaitable[float]]
"""Run ``n`` operations; return the seconds spent in the measured part (setup steps excluded).

In a scenario whose unit is bytes (``"B"``) it returns the bytes the ``n`` items retain instead."""

Unit = Literal["s", "B"]
"""What a row measures: seconds per op (``"s"``), or bytes per stored item (``"B"``)."""


class BenchmarkError(RuntimeError):
    """A benchmark could not measure what it claims (a hit that missed, a failed setup)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of doing the scenario's work.

    Attributes:
        name: short label ("tiermem", "redis-py GET", "aiocache RedisCache").
        run: the timed batch.
        max_ops: most ops one batch may hold (e.g. the size of a prepared key pool).
    """

    name: str
    run: Timed
    max_ops: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue, checked on a comparison's ratio (subject time / baseline time).

    ``max_ratio``: pass when ratio <= value. ``min_speedup``: pass when 1/ratio >= value.
    """

    kind: Literal["max_ratio", "min_speedup"]
    value: float
    text: str

    def met(self, ratio: float) -> bool:
        if self.kind == "max_ratio":
            return ratio <= self.value
        return ratio > 0 and 1.0 / ratio >= self.value


@dataclass(frozen=True, slots=True)
class Comparison:
    """One row of the results table: ``subject`` against ``baseline`` (variant names)."""

    id: str
    label: str
    subject: str
    baseline: str
    target: Target | None = None
    note: str = ""


@dataclass(slots=True)
class Scenario:
    """Variants doing the same work, and the comparisons (rows) drawn from them.

    ``items`` fixes the ops of every batch (no calibration); a scenario measured in bytes
    (``unit="B"``) needs it, since its batch size is the number of items it stores.
    """

    id: str
    group: str
    variants: list[Variant]
    comparisons: list[Comparison]
    unavailable: list[Row] = field(default_factory=list)
    unit: Unit = "s"
    items: int | None = None

    def __post_init__(self) -> None:
        if self.unit != "s" and self.items is None:
            raise BenchmarkError(f"scenario {self.id} measures {self.unit} per item but fixes no items")


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p25, median, p75) with linear interpolation; one value gives that value three times."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0], ordered[0], ordered[0]
    q = statistics.quantiles(ordered, n=4, method="inclusive")
    return q[0], statistics.median(ordered), q[2]


@dataclass(frozen=True, slots=True)
class Measured:
    """Per-op seconds (or bytes per item, ``unit="B"``) of one variant, one sample per round."""

    name: str
    ops_per_batch: int
    samples: tuple[float, ...]
    unit: Unit = "s"

    @property
    def median(self) -> float:
        return quantiles(self.samples)[1]

    def as_dict(self) -> dict[str, Any]:
        p25, p50, p75 = quantiles(self.samples)
        suffix = "s" if self.unit == "s" else "bytes"  # the keys name their unit: median_s, median_bytes
        return {
            "name": self.name,
            "unit": self.unit,
            "ops_per_batch": self.ops_per_batch,
            f"median_{suffix}": p50,
            f"p25_{suffix}": p25,
            f"p75_{suffix}": p75,
            f"min_{suffix}": min(self.samples),
            f"max_{suffix}": max(self.samples),
            "spread": (p75 - p25) / p50 if p50 > 0 else 0.0,
            f"samples_{suffix}": list(self.samples),
        }


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the report: a measured comparison, or ``n/a`` with the reason."""

    id: str
    group: str
    label: str
    subject: Measured | None
    baseline: Measured | None
    target: Target | None = None
    note: str = ""
    na_reason: str | None = None
    baseline_name: str = ""

    @property
    def unit(self) -> Unit:
        """The unit of both sides (seconds when nothing was measured)."""
        measured = self.subject or self.baseline
        return measured.unit if measured is not None else "s"

    @property
    def ratios(self) -> tuple[float, ...]:
        if self.subject is None or self.baseline is None:
            return ()
        return tuple(
            a / b if b > 0 else math.inf
            for a, b in zip(self.subject.samples, self.baseline.samples, strict=True)
        )

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios
        return quantiles(ratios)[1] if ratios else None

    @property
    def status(self) -> str:
        """``pass``/``fail`` against the target, ``info`` without one, ``n/a`` when not measured."""
        if self.na_reason is not None:
            return "n/a"
        ratio = self.ratio
        if self.target is None or ratio is None:
            return "info"
        return "pass" if self.target.met(ratio) else "fail"

    @property
    def confident(self) -> bool:
        """Whether the whole interquartile range of the paired ratios is on the same side of the target."""
        if self.target is None or not self.ratios:
            return True
        p25, _, p75 = quantiles(self.ratios)
        return self.target.met(p25) == self.target.met(p75)

    def as_dict(self) -> dict[str, Any]:
        ratios = self.ratios
        p25, p50, p75 = quantiles(ratios) if ratios else (None, None, None)
        return {
            "id": self.id,
            "group": self.group,
            "label": self.label,
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "subject": self.subject.as_dict() if self.subject else None,
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "ratio": p50,
            "ratio_p25": p25,
            "ratio_p75": p75,
            "speedup": (1.0 / p50) if p50 else None,
            "target": self.target.text if self.target else None,
            "status": self.status,
            "confident": self.confident,
            "note": self.note,
            "na_reason": self.na_reason,
        }


ProgressHook = Callable[[str, int, int], None]
"""Called as ``hook(scenario_id, rounds_done, rounds_total)``."""


async def _calibrate(variant: Variant, batch_seconds: float) -> int:
    """Warm the variant up and pick a batch size that takes about ``batch_seconds``."""
    n = 1
    elapsed = await variant.run(n)  # the first call is warm-up: connections, caches, imports
    elapsed = await variant.run(n)
    while elapsed < batch_seconds / 4 and n < variant.max_ops:
        n = min(variant.max_ops, n * 4)
        elapsed = await variant.run(n)
    per_op = max(elapsed / n, 1e-9)
    return max(1, min(variant.max_ops, round(batch_seconds / per_op)))


async def measure(
    scenario: Scenario,
    *,
    rounds: int,
    batch_seconds: float,
    progress: ProgressHook | None = None,
) -> list[Row]:
    """Run every variant of ``scenario`` alternately for ``rounds`` rounds; one row per comparison."""
    if scenario.items is None:
        sizes = {v.name: await _calibrate(v, batch_seconds) for v in scenario.variants}
    else:
        sizes = {}
        for variant in scenario.variants:
            await variant.run(1)  # warm-up: imports and first-call caches are not per-item costs
            sizes[variant.name] = scenario.items
    samples: dict[str, list[float]] = {v.name: [] for v in scenario.variants}
    for done in range(rounds):
        gc.collect()  # between rounds, so no variant pays for another's garbage mid-batch
        for variant in scenario.variants:
            n = sizes[variant.name]
            samples[variant.name].append(await variant.run(n) / n)
        if progress is not None:
            progress(scenario.id, done + 1, rounds)
    measured = {
        name: Measured(name, sizes[name], tuple(values), scenario.unit) for name, values in samples.items()
    }
    rows = [
        Row(
            id=c.id,
            group=scenario.group,
            label=c.label,
            subject=measured[c.subject],
            baseline=measured[c.baseline],
            target=c.target,
            note=c.note,
            baseline_name=c.baseline,
        )
        for c in scenario.comparisons
    ]
    return rows + list(scenario.unavailable)


def timer() -> float:
    """The clock every variant uses."""
    return time.perf_counter()
