"""``tiermem coll list|get|put|del|drop NAME ...``: collections from the command line (``--json`` too)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem.cli._common import Exit, Options, emit, output_options, run_async

__all__ = ["coll"]


def _client(options: Options) -> MemoryClient:
    return MemoryBuilder.from_settings(options.settings()).build()


def _json_arg(raw: str | None, what: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from exc


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@click.group()
def coll() -> None:
    """Collections: named, ordered, filterable sets of items (``memory.collection(NAME)``)."""


@coll.command(name="list")
@output_options
@click.argument("name", required=False)
@click.option("--prefix", default="", help="Only keys (or, without NAME, collection names) with this prefix.")
@click.option("--after", help="Only keys after this one (exclusive).")
@click.option("--before", help="Only keys before this one (exclusive).")
@click.option("--reverse", is_flag=True, help="Newest (largest key) first.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--where", metavar="JSON", help='Attribute filter, e.g. \'{"step": {"$gte": 3}}\'.')
@click.pass_obj
@run_async
async def list_(
    options: Options,
    name: str | None,
    prefix: str,
    after: str | None,
    before: str | None,
    reverse: bool,
    limit: int,
    where: str | None,
) -> None:
    """List the items of collection NAME in key order, or the collections when NAME is left out."""
    async with _client(options) as memory:
        if name is None:
            names = [n async for n in memory.collections(prefix=prefix)]

            def show_names() -> None:
                for n in names:
                    click.echo(n)

            emit(options, {"collections": names}, show_names)
            return
        filters = _json_arg(where, "--where")
        source = memory.collection(name).list(
            prefix=prefix, after=after, before=before, reverse=reverse, limit=limit, where=filters
        )
        items = [item async for item in source]
    rows = [
        {"key": i.key, "value": i.value, "attrs": dict(i.attrs), "etag": i.etag, "expires_at": i.expires_at}
        for i in items
    ]

    def human() -> None:
        for row in rows:
            attrs = f"\t{json.dumps(row['attrs'], ensure_ascii=False)}" if row["attrs"] else ""
            click.echo(f"{row['key']}\t{_shown(row['value'])}{attrs}")

    emit(options, {"collection": name, "items": rows}, human)


@coll.command()
@output_options
@click.argument("name")
@click.argument("key")
@click.pass_obj
@run_async
async def get(options: Options, name: str, key: str) -> None:
    """Print item KEY of collection NAME (exit 1 if it is missing)."""
    async with _client(options) as memory:
        item = await memory.collection(name).get_item(key)
    if item is None:
        emit(
            options,
            {"collection": name, "key": key, "found": False},
            lambda: click.echo("(missing)", err=True),
        )
        sys.exit(int(Exit.NOT_FOUND))
    data = {
        "collection": name,
        "key": key,
        "found": True,
        "value": item.value,
        "attrs": dict(item.attrs),
        "etag": item.etag,
        "expires_at": item.expires_at,
    }
    emit(options, data, lambda: click.echo(_shown(item.value)))


@coll.command()
@output_options
@click.argument("name")
@click.argument("key")
@click.argument("value")
@click.option("--attrs", metavar="JSON", help='Attributes, e.g. \'{"step": 17, "source": "loop"}\'.')
@click.option("--ttl", type=float, help="Seconds until the item expires.")
@click.option("--if-absent", is_flag=True, help="Create only: fail if a live item exists.")
@click.option("--if-match", metavar="ETAG", help="Write only if the item still has this ETag.")
@click.option("--raw", is_flag=True, help="Store VALUE as a string instead of parsing it as JSON.")
@click.pass_obj
@run_async
async def put(
    options: Options,
    name: str,
    key: str,
    value: str,
    attrs: str | None,
    ttl: float | None,
    if_absent: bool,
    if_match: str | None,
    raw: bool,
) -> None:
    """Store VALUE (JSON unless --raw) as item KEY of collection NAME."""
    parsed = value if raw else _json_arg(value, "VALUE")
    async with _client(options) as memory:
        etag = await memory.collection(name).put(
            key, parsed, attrs=_json_arg(attrs, "--attrs"), ttl=ttl, if_match=if_match, if_absent=if_absent
        )
    emit(
        options,
        {"collection": name, "key": key, "stored": True, "etag": etag},
        lambda: click.echo(f"stored {name}/{key}"),
    )


@coll.command(name="del")
@output_options
@click.argument("name")
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
@run_async
async def delete(options: Options, name: str, keys: tuple[str, ...]) -> None:
    """Delete items KEYS of collection NAME (missing keys are fine)."""
    async with _client(options) as memory:
        await memory.collection(name).delete_many(list(keys))
    emit(
        options,
        {"collection": name, "deleted": list(keys)},
        lambda: click.echo(f"deleted {len(keys)} item(s)"),
    )


@coll.command()
@output_options
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@run_async
async def drop(options: Options, name: str, yes: bool) -> None:
    """Delete every item of collection NAME on every tier."""
    if not yes and not options.json:
        click.confirm(f"drop every item of collection {name!r}?", abort=True)
    async with _client(options) as memory:
        dropped = await memory.collection(name).drop()
    emit(options, {"collection": name, "dropped": dropped}, lambda: click.echo(f"dropped {dropped} item(s)"))
