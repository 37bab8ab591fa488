"""The checker: pure logic over a recorded history and the end state; no I/O, no clocks.

Definitions (per key; ``w.invoke``/``w.complete`` are a write's times; values are unique per write):

- A read may observe a write only if the write was invoked before the read completed. A miss
  (``None``) is explained by a delete or by the initial absence (a pseudo-write at minus infinity).
- A write is *superseded* for a read ``r`` when some acknowledged write ``w2`` (ok outcome) started
  after it completed (``w.complete < w2.invoke``) and was acknowledged more than ``bound`` seconds
  before the read began (``w2.complete < r.invoke - bound``).
- A write with a ``fail`` outcome never applied; an ``unknown`` one is *dead* (did not apply) when the
  durable end state comes from a write that completed before it was invoked.

Violations:

- ``lost_write``: the durable end state is superseded by an acknowledged write (or misses an
  acknowledged session turn).
- ``stale_read``: every explanation of a read is superseded (older than ``bound`` behind the writes).
- ``non_monotonic_read``: a process read a value older than one it had read before (every write that
  explains the later read completed before every write that explains the earlier one was invoked).
- ``false_miss``: ``None`` for a key that had an acknowledged value and no delete at all (no bound).
- ``phantom_delete``: ``None`` for a key that had an acknowledged value, explained only by deletes
  that failed or did not apply (no bound either).
- ``phantom_write``: a value (read or at the end) written only by a write reported as failed.
- ``foreign_value``: a value no write produced (or one written after the read completed).
- ``duplicated_turn``: a session turn stored more than once.
- ``divergence``: at the end, hot serves something other than the durable tier holds. What hot serves
  is :func:`hot_serves` of the raw record: the client's rules, written here independently of its code.
- ``deadline``: an operation took longer than its documented deadline.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.reliability.multiproc.history import INITIAL_TIME, Event, Op, Outcome, uid_of
from tiermem import Codec, Record, RecordKind

__all__ = ["TOMBSTONE", "EndState", "Kind", "Report", "Violation", "check", "hot_serves"]

TOMBSTONE = "<tombstone>"
"""A hot copy that serves a miss (a live tombstone); ``None`` in ``EndState.hot`` means nothing is served."""


class Kind(enum.StrEnum):
    LOST_WRITE = "lost_write"
    STALE_READ = "stale_read"
    NON_MONOTONIC_READ = "non_monotonic_read"
    FALSE_MISS = "false_miss"
    PHANTOM_DELETE = "phantom_delete"
    PHANTOM_WRITE = "phantom_write"
    FOREIGN_VALUE = "foreign_value"
    DUPLICATED_TURN = "duplicated_turn"
    DIVERGENCE = "divergence"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class Violation:
    kind: Kind
    key: str
    detail: str
    process: str | None = None
    at: float | None = None  # the read's (or operation's) invoke time


_VALUE_KINDS = frozenset({RecordKind.JSON, RecordKind.STR, RecordKind.BYTES})


def hot_serves(record: Record | None, *, now: float, durable_epoch: int) -> str | None:
    """What a client would serve from a raw hot record: a value id, :data:`TOMBSTONE`, or ``None``.

    ``None`` when the client reads through to the durable tier: nothing there, expired, a marker (fence,
    lease), or a record filled under an older hot epoch than ``durable_epoch`` (ADR 0006: a writer that
    could not invalidate hot raised the epoch, so such a record may predate its write). Mirror the
    client's rules here when they change.
    """
    if record is None or record.is_expired(now) or record.epoch < durable_epoch:
        return None
    if record.kind is RecordKind.TOMBSTONE:
        return TOMBSTONE
    if record.kind not in _VALUE_KINDS:
        return None
    return uid_of(Codec().decode(record))


@dataclass(frozen=True, slots=True)
class EndState:
    """What the services hold after the quiet period, read directly (not through a client's cache).

    Attributes:
        durable: key -> value id in the durable tier (``None``: absent). Keys not listed are not checked.
        hot: key -> what hot would serve (:func:`hot_serves`): a value id, :data:`TOMBSTONE`, or ``None``
            (nothing: absent, expired, a marker or an older epoch, so a read goes to the durable tier).
        sessions: session id -> the turn ids in the durable session, in order.
    """

    durable: Mapping[str, str | None] = field(default_factory=dict)
    hot: Mapping[str, str | None] = field(default_factory=dict)
    sessions: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class Report:
    operations: int
    violations: list[Violation]
    worst_staleness: float = 0.0  # seconds behind the latest acknowledged write, worst stale read

    def counts(self) -> Counter[str]:
        return Counter(v.kind.value for v in self.violations)

    def of(self, *kinds: Kind) -> list[Violation]:
        return [v for v in self.violations if v.kind in kinds]

    def summary(self, limit: int = 8) -> str:
        counts = ", ".join(f"{k}={n}" for k, n in sorted(self.counts().items())) or "none"
        lines = [f"{self.operations} operations; violations: {counts}"]
        for v in self.violations[:limit]:
            lines.append(f"  {v.kind}: key {v.key!r} ({v.process or '-'}): {v.detail}")
        return "\n".join(lines)


_INITIAL = Event("-", Op.DELETE, "", None, INITIAL_TIME, INITIAL_TIME)


class _Key:
    """Every write of one key, indexed for "is this write superseded before time t?"."""

    def __init__(self, key: str, writes: Sequence[Event], durable_end: str | None, has_end: bool) -> None:
        self.key = key
        self.sets: dict[str, list[Event]] = defaultdict(list)
        self.deletes: list[Event] = []
        for w in writes:
            if w.op is Op.SET and w.value is not None:
                self.sets[w.value].append(w)
            elif w.op is Op.DELETE:
                self.deletes.append(w)
        acked = sorted((w for w in writes if w.outcome is Outcome.OK), key=lambda w: w.complete)
        self.acked = acked
        self.acked_completes = [w.complete for w in acked]
        running = -math.inf
        self.max_invoke: list[float] = []  # max invoke over acked[: i + 1]
        for w in acked:
            running = max(running, w.invoke)
            self.max_invoke.append(running)
        self.first_set_ack = min((w.complete for w in acked if w.op is Op.SET), default=math.inf)
        self.dead: set[int] = set()
        if has_end:
            self._find_dead(writes, durable_end)

    def _find_dead(self, writes: Sequence[Event], end: str | None) -> None:
        """Unknown-outcome writes the durable end state proves did not apply."""
        if end is not None:
            end_writes = self.sets.get(end, [])
        else:
            end_writes = [_INITIAL, *(d for d in self.deletes if d.outcome is not Outcome.FAIL)]
        if not end_writes:
            return
        latest = max(w.complete for w in end_writes)
        for w in writes:
            if w.outcome is Outcome.UNKNOWN and latest < w.invoke and w.value != end:
                self.dead.add(id(w))

    def applied(self, w: Event) -> bool:
        """Whether the write may have applied (ok, or unknown and not proven dead)."""
        return w.outcome is Outcome.OK or (w.outcome is Outcome.UNKNOWN and id(w) not in self.dead)

    def superseded(self, w: Event, before: float) -> bool:
        """Some acknowledged write started after ``w`` completed and completed before ``before``."""
        i = bisect.bisect_left(self.acked_completes, before)
        return i > 0 and self.max_invoke[i - 1] > w.complete

    def supersessor_lag(self, w: Event, at: float) -> float:
        """How long before ``at`` the first acknowledged write superseding ``w`` completed."""
        times = [a.complete for a in self.acked if a.invoke > w.complete and a.complete < at]
        return at - min(times) if times else 0.0

    def candidates(self, value: str | None, read: Event) -> tuple[list[Event], list[Event]]:
        """Writes that could explain ``value`` at ``read``: (possibly applied, failed or dead)."""
        pool = [_INITIAL, *self.deletes] if value is None else self.sets.get(value, [])
        pool = [w for w in pool if w.invoke < read.complete]
        if value is None:
            live = [w for w in pool if w is _INITIAL or self.applied(w)]
        else:  # a value that was read did apply, whatever its writer was told, unless it failed
            live = [w for w in pool if w.outcome is not Outcome.FAIL]
        return live, [w for w in pool if w not in live]


def check(
    history: Iterable[Event],
    end: EndState | None = None,
    *,
    bound: float = 2.0,
    deadlines: Mapping[Op, float] | None = None,
) -> Report:
    """Check a multi-process history (and, when given, the end state). See the module docstring.

    Args:
        bound: the staleness a read may show, in seconds behind the latest acknowledged write.
        deadlines: per operation, the longest it may take (documented deadline plus any slack).
    """
    events = sorted(history, key=lambda e: (e.invoke, e.complete))
    end = end or EndState()
    by_key: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.is_write:
            by_key[e.key].append(e)
    keys = {
        k: _Key(k, by_key.get(k, []), end.durable.get(k), k in end.durable)
        for k in {e.key for e in events if e.op is not Op.APPEND} | set(end.durable)
    }
    violations: list[Violation] = []
    worst = 0.0
    explained: dict[int, list[Event]] = {}
    for e in events:
        if e.op is Op.GET and e.outcome is Outcome.OK:
            found, staleness, explanation = _check_read(keys[e.key], e, bound)
            violations += found
            worst = max(worst, staleness)
            explained[id(e)] = explanation
    violations += _monotonic(events, explained)
    for key, state in keys.items():
        if key in end.durable:
            violations += _check_end(state, end.durable[key], end.hot)
    violations += _check_sessions(events, end)
    if deadlines:
        for e in events:
            limit = deadlines.get(e.op)
            if limit is not None and e.duration > limit:
                violations.append(
                    Violation(
                        Kind.DEADLINE,
                        e.key,
                        f"{e.op} took {e.duration:.2f}s, deadline {limit:.2f}s ({e.outcome})",
                        e.process,
                        e.invoke,
                    )
                )
    return Report(len(events), violations, worst)


def _check_read(k: _Key, r: Event, bound: float) -> tuple[list[Violation], float, list[Event]]:
    """Classify one successful read; return its violations, staleness and the writes that explain it."""

    def found(kind: Kind, detail: str) -> list[Violation]:
        return [Violation(kind, k.key, detail, r.process, r.invoke)]

    live, gone = k.candidates(r.value, r)
    if r.value is not None and not live:
        if gone:
            return found(Kind.PHANTOM_WRITE, f"read {r.value} written by a failed write"), 0.0, gone
        return found(Kind.FOREIGN_VALUE, f"read {r.value}, which no earlier write wrote"), 0.0, []
    if r.value is None and k.first_set_ack < r.invoke and all(w is _INITIAL for w in live):
        # The key had an acknowledged value and no delete that applied: no bound excuses this miss.
        if gone:
            detail = "None explained only by deletes that failed or did not apply"
            return found(Kind.PHANTOM_DELETE, detail), 0.0, live
        return found(Kind.FALSE_MISS, "None for a key that had a value and was never deleted"), 0.0, []
    fresh = [w for w in live if not k.superseded(w, r.invoke - bound)]
    if fresh:
        return [], 0.0, fresh
    lag = k.supersessor_lag(max(live, key=lambda w: w.complete), r.invoke)
    what = "None" if r.value is None else r.value
    return found(Kind.STALE_READ, f"read {what}, {lag:.2f}s after a newer write was acknowledged"), lag, live


def _monotonic(events: Sequence[Event], explained: Mapping[int, list[Event]]) -> list[Violation]:
    """Within a process, no read may be explained only by writes older than an earlier read's."""
    out: list[Violation] = []
    reads: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        if id(e) in explained and explained[id(e)]:
            reads[(e.process, e.key)].append(e)
    for (process, key), rs in reads.items():
        pending: list[tuple[float, float]] = []  # (complete, floor) of reads not yet known finished
        floor = -math.inf  # the newest state some finished earlier read proved
        for r in rs:  # sorted by invoke
            while pending and pending[0][0] < r.invoke:
                floor = max(floor, heapq.heappop(pending)[1])
            ws = explained[id(r)]
            if max(w.complete for w in ws) < floor:
                out.append(
                    Violation(
                        Kind.NON_MONOTONIC_READ,
                        key,
                        f"read {r.value} after the process had read a newer value",
                        process,
                        r.invoke,
                    )
                )
            heapq.heappush(pending, (r.complete, min(w.invoke for w in ws)))
    return out


def _check_end(k: _Key, value: str | None, hot: Mapping[str, str | None]) -> list[Violation]:
    out: list[Violation] = []

    def found(kind: Kind, detail: str) -> None:
        out.append(Violation(kind, k.key, detail))

    if value is not None:
        writes = k.sets.get(value, [])
        if not writes:
            found(Kind.FOREIGN_VALUE, f"durable end state {value} was never written")
            return out
        if all(w.outcome is Outcome.FAIL for w in writes):
            found(Kind.PHANTOM_WRITE, f"durable end state {value} comes from a failed write")
        live = writes
    else:
        live = [_INITIAL, *(d for d in k.deletes if d.outcome is not Outcome.FAIL)]
    if all(k.superseded(w, math.inf) for w in live):
        failed = [d for d in k.deletes if d.outcome is Outcome.FAIL and not k.superseded(d, math.inf)]
        if value is None and failed:
            found(Kind.PHANTOM_DELETE, "durable end state is absent: only a failed delete explains it")
        else:
            lost = [w for w in k.acked if all(w.invoke > c.complete for c in live)]
            ids = ", ".join(str(w.value or "delete") for w in lost[:3])
            found(Kind.LOST_WRITE, f"durable end state {value} lost acknowledged {ids}")
    if k.key in hot:
        served = hot[k.key]
        if served is not None and not (served == TOMBSTONE and value is None) and served != value:
            found(Kind.DIVERGENCE, f"hot serves {served}, durable holds {value}")
    return out


def _check_sessions(events: Sequence[Event], end: EndState) -> list[Violation]:
    out: list[Violation] = []
    appends: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.op is Op.APPEND:
            appends[e.key].append(e)
    for sid, turns in end.sessions.items():
        mine = {e.value: e for e in appends.get(sid, [])}
        counts = Counter(turns)
        for turn, n in counts.items():
            if n > 1:
                out.append(Violation(Kind.DUPLICATED_TURN, sid, f"turn {turn} stored {n} times"))
            if turn not in mine:
                out.append(Violation(Kind.FOREIGN_VALUE, sid, f"turn {turn} was never appended"))
            elif mine[turn].outcome is Outcome.FAIL:
                out.append(Violation(Kind.PHANTOM_WRITE, sid, f"turn {turn} stored though its append failed"))
        for e in appends.get(sid, []):
            if e.outcome is Outcome.OK and e.value not in counts:
                out.append(Violation(Kind.LOST_WRITE, sid, f"acknowledged turn {e.value} is missing"))
    return out
