"""The checker on hand-written histories: each violation kind is found, and clean histories pass."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from tests.reliability.multiproc.checker import TOMBSTONE, EndState, Kind, check, hot_serves
from tests.reliability.multiproc.history import Event, Op, Outcome, dump, load, value_for
from tiermem import Codec, Record, RecordKind
from tiermem._codec import make_record

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


def ev(
    process: str,
    op: Op,
    key: str,
    value: str | None,
    invoke: float,
    complete: float,
    outcome: Outcome = OK,
) -> Event:
    return Event(process, op, key, value, invoke, complete, outcome)


def put(p: str, v: str, t0: float, t1: float, outcome: Outcome = OK, key: str = "k") -> Event:
    return ev(p, Op.SET, key, v, t0, t1, outcome)


def read(p: str, v: str | None, t0: float, t1: float, key: str = "k") -> Event:
    return ev(p, Op.GET, key, v, t0, t1)


def delete(p: str, t0: float, t1: float, outcome: Outcome = OK, key: str = "k") -> Event:
    return ev(p, Op.DELETE, key, None, t0, t1, outcome)


def kinds(history: list[Event], end: EndState | None = None, **kw: object) -> list[Kind]:
    return [v.kind for v in check(history, end, **kw).violations]  # type: ignore[arg-type]


def test_a_clean_history_passes() -> None:
    history = [
        put("A", "A:1", 0.0, 0.1),
        read("B", "A:1", 0.2, 0.3),
        put("B", "B:1", 1.0, 1.1),
        read("A", "A:1", 1.05, 1.2),  # concurrent with B:1: either value is fine
        read("A", "B:1", 1.3, 1.4),
        delete("A", 2.0, 2.1),
        read("B", None, 2.2, 2.3),
        put("A", "A:2", 3.0, 3.1, UNKNOWN),  # may or may not have applied
        read("B", "A:2", 3.2, 3.3),
        ev("A", Op.APPEND, "s", "A:t0", 0.0, 0.1),
        ev("B", Op.APPEND, "s", "B:t0", 0.0, 0.2),
    ]
    end = EndState(durable={"k": "A:2"}, hot={"k": "A:2"}, sessions={"s": ["A:t0", "B:t0"]})
    report = check(history, end)
    assert report.violations == []
    assert report.operations == len(history)


def test_a_stale_read_within_the_bound_passes_and_beyond_it_is_reported() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("A", "A:2", 1.0, 1.1), read("B", "A:1", 2.0, 2.05)]
    assert kinds(history, bound=2.0) == []
    history.append(read("B", "A:1", 5.0, 5.1))
    report = check(history, bound=2.0)
    assert [v.kind for v in report.violations] == [Kind.STALE_READ]
    assert report.worst_staleness == pytest.approx(3.9)


def test_a_miss_after_an_acknowledged_write_of_a_deleted_key_is_stale() -> None:
    history = [delete("A", 0.0, 0.1), put("B", "B:1", 1.0, 1.1), read("C", None, 9.0, 9.1)]
    assert kinds(history) == [Kind.STALE_READ]


def test_lost_acknowledged_write() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("B", "B:1", 1.0, 1.1)]
    assert kinds(history, EndState(durable={"k": "A:1"})) == [Kind.LOST_WRITE]
    assert kinds(history, EndState(durable={"k": "B:1"})) == []
    # A delete that was acknowledged and then undone is lost too; an unknown write may win.
    history += [delete("A", 2.0, 2.1), put("B", "B:2", 3.0, 3.1, UNKNOWN)]
    assert kinds(history, EndState(durable={"k": "B:1"})) == [Kind.LOST_WRITE]
    assert kinds(history, EndState(durable={"k": None})) == []
    assert kinds(history, EndState(durable={"k": "B:2"})) == []


def test_non_monotonic_reads_within_one_process() -> None:
    history = [
        put("A", "A:1", 0.0, 0.1),
        put("A", "A:2", 1.0, 1.1),
        read("B", "A:2", 1.2, 1.3),
        read("B", "A:1", 1.4, 1.5),  # within the staleness bound, but older than B's previous read
        read("C", "A:1", 1.4, 1.5),  # another process: only bounded staleness applies
    ]
    report = check(history, bound=2.0)
    assert [(v.kind, v.process) for v in report.violations] == [(Kind.NON_MONOTONIC_READ, "B")]


def test_overlapping_reads_in_one_process_are_not_ordered() -> None:
    history = [
        put("A", "A:1", 0.0, 0.1),
        put("A", "A:2", 1.0, 1.1),
        read("B", "A:2", 1.2, 1.6),
        read("B", "A:1", 1.4, 1.5),  # invoked before the other read completed: concurrent
    ]
    assert kinds(history) == []


def test_end_state_divergence_between_hot_and_durable() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("B", "B:1", 1.0, 1.1), delete("A", 2.0, 2.1, key="d")]
    assert kinds(history, EndState(durable={"k": "B:1"}, hot={"k": "A:1"})) == [Kind.DIVERGENCE]
    assert kinds(history, EndState(durable={"k": "B:1"}, hot={"k": TOMBSTONE})) == [Kind.DIVERGENCE]
    assert kinds(history, EndState(durable={"k": "B:1"}, hot={"k": None})) == []  # fence, absent
    assert kinds(history, EndState(durable={"d": None}, hot={"d": TOMBSTONE})) == []


def test_duplicated_and_lost_session_turns() -> None:
    history = [
        ev("A", Op.APPEND, "s", "A:t0", 0.0, 0.1),
        ev("A", Op.APPEND, "s", "A:t1", 0.2, 3.0),
        ev("B", Op.APPEND, "s", "B:t0", 0.2, 0.4),
    ]
    end = EndState(sessions={"s": ["A:t0", "A:t1", "A:t1"]})
    assert sorted(kinds(history, end)) == sorted([Kind.LOST_WRITE, Kind.DUPLICATED_TURN])


def test_false_miss_for_a_key_that_always_had_a_value() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("A", "A:2", 1.0, 1.1), read("B", None, 1.05, 1.2)]
    assert kinds(history) == [Kind.FALSE_MISS]
    # Before the first write was acknowledged, a miss is the initial state, not a false miss.
    assert kinds([put("A", "A:1", 0.0, 0.1), read("B", None, 0.05, 0.2)]) == []


def test_phantom_delete_a_failed_delete_seen_as_a_deletion() -> None:
    history = [put("A", "A:1", 0.0, 0.1), delete("A", 5.0, 5.2, FAIL), read("B", None, 5.1, 5.3)]
    assert kinds(history) == [Kind.PHANTOM_DELETE]


def test_phantom_delete_an_unknown_delete_that_the_end_state_proves_never_applied() -> None:
    history = [
        put("A", "A:1", 0.0, 0.1),
        delete("A", 5.0, 5.2, UNKNOWN),
        read("B", "A:1", 4.0, 4.1),
        read("B", None, 5.3, 5.4),
        read("B", "A:1", 9.0, 9.1),  # the value is back
    ]
    # Without an end state the delete may have applied: the miss is fine, the value coming back is not.
    assert kinds(history) == [Kind.NON_MONOTONIC_READ]
    found = kinds(history, EndState(durable={"k": "A:1"}))
    assert sorted(found) == sorted([Kind.PHANTOM_DELETE, Kind.NON_MONOTONIC_READ])


def test_phantom_write_a_conflict_that_landed() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("A", "A:2", 1.0, 2.0, FAIL), read("B", "A:2", 3.0, 3.1)]
    assert kinds(history) == [Kind.PHANTOM_WRITE]
    assert kinds(history[:2], EndState(durable={"k": "A:2"})) == [Kind.PHANTOM_WRITE]


def test_foreign_values() -> None:
    history = [put("A", "A:1", 0.0, 0.1), read("B", "Z:9", 1.0, 1.1), put("A", "A:2", 2.0, 2.1)]
    history.append(read("B", "A:2", 1.0, 1.5))  # completed before A:2 was even invoked
    assert kinds(history) == [Kind.FOREIGN_VALUE, Kind.FOREIGN_VALUE]
    assert kinds([], EndState(sessions={"s": ["X:t0"]})) == [Kind.FOREIGN_VALUE]


def test_deadlines() -> None:
    history = [put("A", "A:1", 0.0, 1.0), put("A", "A:2", 2.0, 6.5), read("B", "A:2", 7.0, 7.1)]
    report = check(history, deadlines={Op.SET: 3.0, Op.GET: 0.5})
    assert [(v.kind, v.key, v.at) for v in report.violations] == [(Kind.DEADLINE, "k", 2.0)]


def _hot(uid: str | None, *, epoch: int, expires_at: float | None = None) -> Record:
    """A raw hot record as a client fills it: a value (or a tombstone) stamped with its epoch."""
    if uid is None:
        record = make_record(RecordKind.TOMBSTONE, b"", expires_at=expires_at)
    else:
        record, _ = Codec().encode(value_for(uid, 0, random.Random(0)), expires_at=expires_at)
    return dataclasses.replace(record, epoch=epoch)


def test_hot_records_filled_under_an_older_epoch_are_misses_not_divergence() -> None:
    # A:2 was written durably by a process that could not invalidate hot; it raised the epoch to 3.
    history = [put("A", "A:1", 0.0, 0.1), put("A", "A:2", 1.0, 1.1)]
    stale = _hot("A:1", epoch=2)
    served = hot_serves(stale, now=10.0, durable_epoch=3)
    assert served is None  # every client reads through to the durable tier
    assert kinds(history, EndState(durable={"k": "A:2"}, hot={"k": served})) == []
    gone = hot_serves(_hot(None, epoch=2), now=10.0, durable_epoch=3)  # an old tombstone: no miss served
    assert kinds(history, EndState(durable={"k": "A:2"}, hot={"k": gone})) == []


def test_hot_records_of_the_current_epoch_are_served_and_checked() -> None:
    history = [put("A", "A:1", 0.0, 0.1), put("A", "A:2", 1.0, 1.1)]
    for epoch in (3, 4):  # 4: filled after a bump the end-state read of the epoch did not see yet
        served = hot_serves(_hot("A:1", epoch=epoch), now=10.0, durable_epoch=3)
        assert served == "A:1"
        assert kinds(history, EndState(durable={"k": "A:2"}, hot={"k": served})) == [Kind.DIVERGENCE]
    assert hot_serves(_hot(None, epoch=3), now=10.0, durable_epoch=3) == TOMBSTONE
    assert hot_serves(_hot("A:2", epoch=0), now=10.0, durable_epoch=0) == "A:2"


def test_hot_markers_and_expired_records_serve_nothing() -> None:
    assert hot_serves(None, now=10.0, durable_epoch=0) is None
    assert hot_serves(_hot("A:1", epoch=0, expires_at=5.0), now=10.0, durable_epoch=0) is None
    for kind in (RecordKind.FENCE, RecordKind.LEASE):
        assert hot_serves(make_record(kind, b"", expires_at=20.0), now=10.0, durable_epoch=0) is None


def test_history_round_trips_through_json(tmp_path: Path) -> None:
    events = [put("A", "A:1", 0.0, 0.1), read("B", None, 0.2, 0.3), delete("A", 1.0, 1.5, UNKNOWN)]
    path = tmp_path / "h.jsonl"
    dump(events, path)
    assert list(load(path)) == events
