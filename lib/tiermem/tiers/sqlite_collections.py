"""Collections on the SQLite warm tier: one table keyed by (tenant, ns, coll, key), same database file.

Keys are stored as UTF-8 BLOBs so the primary key's order is the byte order of the key, and ``list``
is an index range scan in either direction (keyset-paged: each page starts after the last key seen).
Attribute filters run in SQL with ``json_type``/``json_extract`` on a JSON column; expired rows are
skipped in SQL. Runs on the warm adapter's own worker thread and connection (its one hook).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

import orjson

from tiermem._codec import Record, RecordKind
from tiermem._collection._model import AttrValue, Condition, ItemQuery, Scope, StoredItem
from tiermem._collection._store import PutOp
from tiermem._errors import ConflictError, CorruptValueError
from tiermem._protocols import Tier

__all__ = ["SqliteCollectionStore"]

_T = TypeVar("_T")
Read = Callable[[str, Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
Write = Callable[[str, Callable[[sqlite3.Connection], Any], bool], Awaitable[Any]]
Prepare = Callable[[str, Callable[[sqlite3.Connection], None]], Awaitable[None]]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tiermem_collection_items (
    tenant TEXT NOT NULL,
    ns TEXT NOT NULL,
    coll TEXT NOT NULL,
    key BLOB NOT NULL,
    data BLOB NOT NULL,
    attrs TEXT NOT NULL,
    expires_at REAL,
    etag TEXT NOT NULL,
    ptr INTEGER NOT NULL,
    PRIMARY KEY (tenant, ns, coll, key)
) WITHOUT ROWID;
"""
_UPSERT: Final = "INSERT OR REPLACE INTO tiermem_collection_items VALUES (?,?,?,?,?,?,?,?,?)"
_BATCH: Final = 200  # keys per IN (...) query
_COLUMNS: Final = "key, data, attrs, etag"
_LIVE: Final = "(expires_at IS NULL OR expires_at > ?)"
_TYPES: Final = {"num": "('integer','real')", "str": "('text')"}
_SQL_OPS: Final = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """One ``where`` condition as SQL with the semantics of :func:`tiermem._collection._model.matches`."""
    path = f"$.{cond.name}"  # names are [A-Za-z_][A-Za-z0-9_]*: a valid JSON path, passed as a parameter
    value = cond.value
    if isinstance(value, bool):
        wanted = "'true'" if value else "'false'"
        if cond.op == "$eq":
            return f"json_type(attrs, ?) = {wanted}", [path]
        return f"(json_type(attrs, ?) IS NOT NULL AND json_type(attrs, ?) != {wanted})", [path, path]
    types = _TYPES["str" if isinstance(value, str) else "num"]
    if cond.op == "$ne":
        return (
            f"(json_type(attrs, ?) IS NOT NULL AND NOT (json_type(attrs, ?) IN {types} "
            "AND json_extract(attrs, ?) = ?))",
            [path, path, path, value],
        )
    return (
        f"(json_type(attrs, ?) IN {types} AND json_extract(attrs, ?) {_SQL_OPS[cond.op]} ?)",
        [path, path, value],
    )


def _stored(key: bytes, data: bytes, attrs: str, etag: str) -> StoredItem:
    try:
        parsed: dict[str, AttrValue] = orjson.loads(attrs)
    except orjson.JSONDecodeError as exc:
        raise CorruptValueError(
            "collection item attrs do not parse", tier=Tier.WARM, operation="get"
        ) from exc
    return StoredItem(key.decode("utf-8"), Record.from_bytes(data, etag=etag), parsed, etag)


class SqliteCollectionStore:
    """Collection items in the warm SQLite database (see the module docstring).

    Args:
        run: runs a function on the warm adapter's connection thread, translating SQLite errors.
        new_etag: makes a fresh ETag (the adapter's own format).
    """

    def __init__(self, *, read: Read, write: Write, prepare: Prepare, new_etag: Callable[[], str]) -> None:
        self._read_raw = read
        self._write_raw = write
        self._prepare = prepare
        self._new_etag = new_etag
        self._ready = False
        self.items_read = 0

    @property
    def max_batch(self) -> int | None:
        return None

    async def _schema(self, operation: str) -> None:
        if not self._ready:
            await self._prepare(operation, _create_schema)
            self._ready = True

    async def _run(self, operation: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """A read on the adapter's reader threads."""
        await self._schema(operation)
        result: _T = await self._read_raw(operation, fn)
        return result

    async def _commit(
        self, operation: str, fn: Callable[[sqlite3.Connection], _T], *, atomic: bool = False
    ) -> _T:
        """A write through the adapter's group-commit writer (``atomic``: in its own savepoint)."""
        await self._schema(operation)
        result: _T = await self._write_raw(operation, fn, atomic)
        return result

    async def get(self, scope: Scope, key: str) -> StoredItem | None:
        return (await self.get_many(scope, [key]))[0]

    async def get_many(self, scope: Scope, keys: Sequence[str]) -> list[StoredItem | None]:
        if not keys:
            return []
        raw = [k.encode("utf-8") for k in keys]

        def op(conn: sqlite3.Connection) -> dict[bytes, tuple[bytes, bytes, str, str]]:
            found: dict[bytes, tuple[bytes, bytes, str, str]] = {}
            for start in range(0, len(raw), _BATCH):
                chunk = raw[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                cur = conn.execute(
                    f"SELECT {_COLUMNS} FROM tiermem_collection_items "  # noqa: S608 - only "?" marks
                    f"WHERE tenant=? AND ns=? AND coll=? AND key IN ({marks})",
                    (*scope, *chunk),
                )
                for row in cur:
                    found[row[0]] = row
            return found

        found = await self._run("get", op)
        return [_stored(*found[k]) if k in found else None for k in raw]

    async def put(
        self,
        scope: Scope,
        op: PutOp,
        *,
        now: float,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str | None:
        key, record, attrs = op
        etag = self._new_etag()
        row = (
            *scope,
            key.encode("utf-8"),
            record.to_bytes(),
            orjson.dumps(attrs).decode(),
            record.expires_at,
            etag,
            int(record.kind is RecordKind.POINTER),
        )

        def write(conn: sqlite3.Connection) -> int:
            if if_match is not None:
                cur = conn.execute(
                    "UPDATE tiermem_collection_items SET data=?, attrs=?, expires_at=?, etag=?, ptr=? "
                    "WHERE tenant=? AND ns=? AND coll=? AND key=? AND etag=?",
                    (*row[4:], *row[:4], if_match),
                )
            elif if_absent:
                cur = conn.execute(
                    "INSERT INTO tiermem_collection_items VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO "
                    "UPDATE SET data=excluded.data, attrs=excluded.attrs, "
                    "expires_at=excluded.expires_at, etag=excluded.etag, ptr=excluded.ptr "
                    "WHERE tiermem_collection_items.expires_at "
                    "IS NOT NULL AND tiermem_collection_items.expires_at <= ?",
                    (*row, now),
                )
            else:
                cur = conn.execute(_UPSERT, row)
            return cur.rowcount

        if await self._commit("put", write) == 0:
            why = "etag does not match" if if_match is not None else "item already exists"
            raise ConflictError(why, tier=Tier.WARM, operation="put", key=key)
        return etag

    async def put_many(self, scope: Scope, ops: Sequence[PutOp]) -> None:
        rows = [
            (
                *scope,
                key.encode("utf-8"),
                record.to_bytes(),
                orjson.dumps(attrs).decode(),
                record.expires_at,
                self._new_etag(),
                int(record.kind is RecordKind.POINTER),
            )
            for key, record, attrs in ops
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT, rows)

        await self._commit("put_many", write, atomic=True)  # its own savepoint: every row or none

    async def delete_many(self, scope: Scope, keys: Sequence[str]) -> None:
        raw = [(*scope, k.encode("utf-8")) for k in keys]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM tiermem_collection_items WHERE tenant=? AND ns=? AND coll=? AND key=?", raw
            )

        await self._commit("delete", write, atomic=True)

    @staticmethod
    def _filter(scope: Scope, query: ItemQuery) -> tuple[str, list[Any]]:
        sql = "tenant=? AND ns=? AND coll=? AND " + _LIVE
        params: list[Any] = [*scope, query.now]
        if query.prefix:
            prefix = query.prefix.encode("utf-8")
            sql += " AND key >= ? AND key < ?"
            params += [prefix, prefix + b"\xff"]  # 0xFF never occurs in UTF-8: the end of the prefix range
        if query.after is not None:
            sql += " AND key > ?"
            params.append(query.after.encode("utf-8"))
        if query.before is not None:
            sql += " AND key < ?"
            params.append(query.before.encode("utf-8"))
        for cond in query.where:
            text, values = _condition_sql(cond)
            sql += " AND " + text
            params += values
        return sql, params

    async def list_page(
        self, scope: Scope, query: ItemQuery, cursor: str | None, size: int
    ) -> list[StoredItem]:
        where, params = self._filter(scope, query)
        if cursor is not None:
            where += " AND key < ?" if query.reverse else " AND key > ?"
            params.append(cursor.encode("utf-8"))
        order = "DESC" if query.reverse else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM tiermem_collection_items "  # noqa: S608 - fixed fragments only
            f"WHERE {where} ORDER BY key {order} LIMIT ?"
        )
        args = (*params, size)
        rows: list[tuple[bytes, bytes, str, str]] = await self._run(
            "list", lambda conn: conn.execute(sql, args).fetchall()
        )
        self.items_read += len(rows)
        return [_stored(*row) for row in rows]

    async def count(self, scope: Scope, query: ItemQuery) -> int:
        where, params = self._filter(scope, query)
        sql = f"SELECT COUNT(*) FROM tiermem_collection_items WHERE {where}"  # noqa: S608
        n: int = await self._run("count", lambda conn: conn.execute(sql, params).fetchone()[0])
        return n

    async def keys(self, scope: Scope, after: str | None, page: int) -> AsyncIterator[tuple[str, bool]]:
        start = b"" if after is None else after.encode("utf-8")
        sql = (
            "SELECT key, ptr FROM tiermem_collection_items WHERE tenant=? AND ns=? AND coll=? AND key > ? "
            "ORDER BY key LIMIT ?"
        )
        rows: list[tuple[bytes, int]] = await self._run(
            "keys", lambda conn: conn.execute(sql, (*scope, start, page)).fetchall()
        )
        for key, ptr in rows:
            yield key.decode("utf-8"), bool(ptr)

    async def names(self, tenant: str, namespace: str, prefix: str) -> AsyncIterator[str]:
        # A skip-scan over the primary key: each step seeks the first row after the previous name.
        last: str | None = None
        while True:
            sql = "SELECT coll FROM tiermem_collection_items WHERE tenant=? AND ns=? AND coll >= ?"
            params: list[Any] = [tenant, namespace, prefix]
            if last is not None:
                sql += " AND coll > ?"
                params.append(last)
            sql += " ORDER BY coll LIMIT 1"
            row = await self._run("collections", partial(_first, sql=sql, params=params))
            if row is None or not row.startswith(prefix):
                return
            last = row
            yield row


def _first(conn: sqlite3.Connection, *, sql: str, params: list[Any]) -> str | None:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else str(row[0])


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
