"""A JSON-only codec for Agent Framework workflow checkpoints: no pickle, ever (ADR 0013).

Agent Framework's own checkpoint encoder pickles every value that is not JSON and unpickles it on
load behind an allow-list its docs call "not a security boundary". This codec writes plain JSON:

- JSON scalars, lists and dicts with string keys as they are;
- ``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, ``bytes`` (base64),
  ``tuple``, ``set``, ``frozenset``, non-finite floats and other dicts (non-string or reserved keys)
  as ``{"__tiermem_type__": "<builtin tag>", "value": ...}``;
- instances of allowed classes as ``{"__tiermem_type__": "module:qualname", "value": ...}``, through
  the class's public serialization: Agent Framework's own types by an explicit table (their
  ``to_dict``/``from_dict``), and the application's registered dataclasses (fields and
  constructor), pydantic models (``model_dump``/``model_validate``), enums (value) and classes
  with ``to_dict``/``from_dict``.

Anything else is refused on save with ``InvalidValueError`` naming the type; on load an unknown tag
or Agent Framework's pickle envelope (``__pickled__``) is a ``CorruptValueError`` and is never
unpickled. Only exact types are looked up: a subclass of an allowed class is not allowed by it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import math
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol, cast

import pydantic
from agent_framework import (
    AgentExecutorRequest,
    AgentExecutorResponse,
    AgentResponse,
    AgentResponseUpdate,
    AgentSession,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    Message,
    WorkflowCheckpoint,
    WorkflowErrorDetails,
    WorkflowEvent,
    WorkflowEventSource,
    WorkflowMessage,
    WorkflowRunState,
)
from agent_framework._workflows._runner_context import MessageType

from tiermem._errors import ConfigurationError, CorruptValueError, InvalidValueError

__all__ = ["TAG", "CheckpointCodec"]

TAG: Final = "__tiermem_type__"
VALUE: Final = "value"
#: Agent Framework's pickle envelope; found in stored data it is refused, never unpickled.
AF_PICKLE_MARKER: Final = "__pickled__"
_RESERVED: Final = frozenset({TAG, AF_PICKLE_MARKER})
_MAX_DEPTH: Final = 200
_JSON_SCALARS: Final = (str, int, bool, type(None))

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]


class _Kind(Protocol):
    """How one allowed class is written and rebuilt (``encode`` gets and returns plain values)."""

    def dump(self, obj: Any) -> object: ...

    def load(self, value: Any) -> object: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Via:
    dump_fn: Callable[[Any], object]
    load_fn: Callable[[Any], object]

    def dump(self, obj: Any) -> object:
        return self.dump_fn(obj)

    def load(self, value: Any) -> object:
        return self.load_fn(value)


def type_key(cls: type) -> str:
    """``module:qualname``, the tag of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _dataclass_kind(cls: type) -> _Kind:
    names = [f.name for f in dataclasses.fields(cls)]
    if any(not f.init for f in dataclasses.fields(cls)):
        raise ConfigurationError(
            f"checkpoint type {type_key(cls)} has fields with init=False; its constructor cannot rebuild it"
        )
    return _Via(lambda obj: {n: getattr(obj, n) for n in names}, lambda value: cls(**value))


def _kind_for(cls: type) -> _Kind:
    """The kind of a registered application class (``ConfigurationError`` when it has none)."""
    if not isinstance(cls, type):
        raise ConfigurationError(f"checkpoint types must be classes, got {cls!r:.80}")
    if issubclass(cls, pydantic.BaseModel):
        model = cls
        return _Via(lambda obj: obj.model_dump(mode="python", round_trip=True), model.model_validate)
    if issubclass(cls, enum.Enum):
        if len(cls) == 0:
            raise ConfigurationError(f"checkpoint enum {type_key(cls)} has no members")
        return _Via(lambda obj: obj.value, cls)
    if dataclasses.is_dataclass(cls):
        return _dataclass_kind(cls)
    if callable(getattr(cls, "to_dict", None)) and callable(getattr(cls, "from_dict", None)):
        return _Via(lambda obj: obj.to_dict(), cast(Any, cls).from_dict)
    raise ConfigurationError(
        f"checkpoint type {type_key(cls)} is not a dataclass, pydantic model, enum or a class with "
        "to_dict/from_dict, so it cannot be stored as JSON"
    )


def _via_dicts(cls: Any) -> _Kind:
    return _Via(lambda obj: obj.to_dict(), cls.from_dict)


# Agent Framework's types that can appear in a workflow checkpoint (messages between executors,
# executor state of AgentExecutor, pending request-info events), with their public serialization.
# WorkflowEvent is handled by the codec itself (its type names need the allow-list).
_AF_KINDS: Final[dict[type, _Kind]] = {
    WorkflowMessage: _via_dicts(WorkflowMessage),
    Message: _via_dicts(Message),
    Content: _via_dicts(Content),
    AgentResponse: _via_dicts(AgentResponse),
    AgentResponseUpdate: _via_dicts(AgentResponseUpdate),
    ChatResponse: _via_dicts(ChatResponse),
    ChatResponseUpdate: _via_dicts(ChatResponseUpdate),
    AgentSession: _via_dicts(AgentSession),
    AgentExecutorRequest: _dataclass_kind(AgentExecutorRequest),
    AgentExecutorResponse: _dataclass_kind(AgentExecutorResponse),
    WorkflowErrorDetails: _dataclass_kind(WorkflowErrorDetails),
    MessageType: _kind_for(MessageType),
    WorkflowRunState: _kind_for(WorkflowRunState),
    WorkflowEventSource: _kind_for(WorkflowEventSource),
}

_BUILTIN_TYPES_FOR_EVENTS: Final = (
    *(str, int, float, bool, type(None), dict, list, tuple, set, frozenset, bytes),
    *(datetime, date, time, timedelta, uuid.UUID, Decimal),
)


def _b64(data: str) -> bytes:
    return base64.b64decode(data.encode("ascii"), validate=True)


# Builtin tags: (python type, dump to JSON, load from JSON). Exact types only (bool is not int).
_BUILTINS: Final[dict[str, tuple[type, Callable[[Any], Json], Callable[[Any], object]]]] = {
    "datetime": (datetime, lambda v: v.isoformat(), datetime.fromisoformat),
    "date": (date, lambda v: v.isoformat(), date.fromisoformat),
    "time": (time, lambda v: v.isoformat(), time.fromisoformat),
    "timedelta": (
        timedelta,
        lambda v: [v.days, v.seconds, v.microseconds],
        lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    ),
    "uuid": (uuid.UUID, str, uuid.UUID),
    "decimal": (Decimal, str, Decimal),
    "bytes": (bytes, lambda v: base64.b64encode(v).decode("ascii"), _b64),
    "float": (float, repr, float),
}
_BUILTIN_BY_TYPE: Final = {spec[0]: tag for tag, spec in _BUILTINS.items()}
_COLLECTIONS: Final[dict[str, Callable[[list[Any]], object]]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
}


class CheckpointCodec:
    """Encodes checkpoints to JSON and back, reconstructing only allowed types.

    Args:
        types: the application's classes that may appear in checkpoint state, messages or
            requests (dataclasses, pydantic models, enums, classes with ``to_dict``/``from_dict``).
    """

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._kinds: dict[type, _Kind] = dict(_AF_KINDS)
        for cls in types:
            if cls in _AF_KINDS or cls is WorkflowEvent:
                continue
            self._kinds[cls] = _kind_for(cls)
        self._by_key: dict[str, tuple[type, _Kind]] = {type_key(c): (c, k) for c, k in self._kinds.items()}
        # Names WorkflowEvent.to_dict gives request/response types ("module.qualname").
        self._event_types: dict[str, type[Any]] = {
            f"{c.__module__}.{c.__qualname__}": c for c in (*self._kinds, *_BUILTIN_TYPES_FOR_EVENTS)
        }

    # -- encoding ------------------------------------------------------------------------------

    def encode_checkpoint(self, checkpoint: WorkflowCheckpoint) -> dict[str, Json]:
        """The checkpoint as JSON; ``InvalidValueError`` names the first value that cannot be."""
        return {k: self._encode(v, f"$.{k}", 0) for k, v in checkpoint.to_dict().items()}

    def encode(self, value: object) -> Json:
        """One value as JSON (``InvalidValueError`` if it holds a type that is not allowed)."""
        return self._encode(value, "$", 0)

    def _encode(self, value: object, path: str, depth: int) -> Json:
        if depth > _MAX_DEPTH:
            raise InvalidValueError(
                f"checkpoint value nested deeper than {_MAX_DEPTH} at {path}", operation="save"
            )
        kind = type(value)
        if kind in _JSON_SCALARS:
            return cast(Json, value)
        if kind is float:
            number = cast(float, value)
            return number if math.isfinite(number) else self._tag("float", repr(number))
        if kind is list:
            return [self._encode(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(cast(list[Any], value))]
        if kind is dict:
            return self._encode_dict(cast(dict[Any, Any], value), path, depth)
        if kind in (tuple, set, frozenset):
            items = list(cast(Iterable[Any], value))
            if kind is not tuple:
                # A stable order, so equal sets encode equally when their items are sortable.
                with contextlib.suppress(TypeError):
                    items.sort()
            encoded = [self._encode(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(items)]
            return self._tag(kind.__name__, encoded)
        if kind in _BUILTIN_BY_TYPE:
            tag = _BUILTIN_BY_TYPE[kind]
            return self._tag(tag, _BUILTINS[tag][1](value))
        if kind is WorkflowEvent:
            return self._tag(type_key(kind), self._encode(self._dump_event(value, path), path, depth + 1))
        entry = self._kinds.get(kind)
        if entry is None:
            raise InvalidValueError(
                f"a checkpoint cannot hold a {type_key(kind)} (at {path}): tiermem stores checkpoints "
                f"as JSON and never pickles; register the class with TierMemCheckpointStorage(memory, "
                f"types=[{kind.__qualname__}]) if it is a dataclass, pydantic model, enum or has "
                "to_dict/from_dict, or store JSON values instead",
                operation="save",
            )
        return self._tag(type_key(kind), self._encode(entry.dump(value), path, depth + 1))

    def _encode_dict(self, value: dict[Any, Any], path: str, depth: int) -> Json:
        if all(type(k) is str and k not in _RESERVED for k in value):
            return {k: self._encode(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
        # Non-string or reserved keys: a tagged list of pairs, so keys keep their types.
        pairs: list[Json] = [
            [self._encode(k, f"{path}<key>", depth + 2), self._encode(v, f"{path}[{k!r:.40}]", depth + 2)]
            for k, v in value.items()
        ]
        return self._tag("dict", pairs)

    @staticmethod
    def _dump_event(event: object, path: str) -> object:
        try:
            return cast(WorkflowEvent[Any], event).to_dict()
        except ValueError as exc:
            raise InvalidValueError(
                f"a checkpoint can hold only request_info workflow events (at {path}): {exc}",
                operation="save",
            ) from exc

    @staticmethod
    def _tag(tag: str, value: Json) -> dict[str, Json]:
        return {TAG: tag, VALUE: value}

    # -- decoding ------------------------------------------------------------------------------

    def decode_checkpoint(self, data: object, key: str) -> WorkflowCheckpoint:
        """The stored checkpoint; ``CorruptValueError`` for anything this codec did not write."""
        if not isinstance(data, dict):
            raise CorruptValueError("stored checkpoint is not an object", operation="load", key=key)
        fields = {k: self._decode(v, key, f"$.{k}", 0) for k, v in data.items()}
        try:
            return WorkflowCheckpoint.from_dict(fields)
        except Exception as exc:
            raise CorruptValueError(
                f"stored checkpoint cannot be rebuilt: {exc!s:.200}", operation="load", key=key
            ) from exc

    def decode(self, value: object, key: str = "") -> object:
        """One value written by :meth:`encode`."""
        return self._decode(value, key, "$", 0)

    def _corrupt(self, message: str, key: str, path: str) -> CorruptValueError:
        return CorruptValueError(f"stored checkpoint {message} at {path}", operation="load", key=key or None)

    def _decode(self, value: object, key: str, path: str, depth: int) -> object:
        if depth > _MAX_DEPTH:
            raise self._corrupt(f"is nested deeper than {_MAX_DEPTH}", key, path)
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        if isinstance(value, list):
            return [self._decode(v, key, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise self._corrupt(f"holds a {type(value).__name__}", key, path)
        if AF_PICKLE_MARKER in value:
            raise self._corrupt(
                "holds a pickled value (Agent Framework's __pickled__ envelope, written by another "
                "storage or planted); tiermem never unpickles",
                key,
                path,
            )
        if TAG not in value:
            return {k: self._decode(v, key, f"{path}.{k}", depth + 1) for k, v in value.items()}
        tag = value[TAG]
        if set(value) != {TAG, VALUE} or not isinstance(tag, str):
            raise self._corrupt("has a malformed type tag", key, path)
        try:
            return self._decode_tagged(tag, value[VALUE], key, path, depth)
        except (CorruptValueError, InvalidValueError):
            raise
        except Exception as exc:
            message = f"holds a {tag!r:.80} that cannot be rebuilt ({exc!s:.200})"
            raise self._corrupt(message, key, path) from exc

    def _decode_tagged(self, tag: str, raw: object, key: str, path: str, depth: int) -> object:
        if tag in _BUILTINS:
            return _BUILTINS[tag][2](raw)
        if tag in _COLLECTIONS or tag == "dict":
            if not isinstance(raw, list):
                raise self._corrupt(f"has a {tag} that is not a list", key, path)
            items = [self._decode(v, key, f"{path}[{i}]", depth + 1) for i, v in enumerate(raw)]
            if tag == "dict":
                if not all(isinstance(pair, list) and len(pair) == 2 for pair in items):
                    raise self._corrupt("has a dict whose items are not pairs", key, path)
                return {pair[0]: pair[1] for pair in cast(list[list[Any]], items)}
            return _COLLECTIONS[tag](items)
        inner = self._decode(raw, key, path, depth + 1)
        if tag == type_key(WorkflowEvent):
            return self._load_event(inner, key, path)
        entry = self._by_key.get(tag)
        if entry is None:
            raise self._corrupt(
                f"holds a type {tag!r:.120} that is not allowed here (register it with types=[...])",
                key,
                path,
            )
        return entry[1].load(inner)

    def _load_event(self, inner: object, key: str, path: str) -> object:
        if not isinstance(inner, dict):
            raise self._corrupt("holds a workflow event that is not an object", key, path)
        for field in ("request_type", "response_type"):
            name = inner.get(field)
            if name is not None and name not in self._event_types:
                raise self._corrupt(f"names a request type {name!r:.120} that is not allowed", key, path)
        return WorkflowEvent.from_dict(cast(dict[str, Any], inner), allowed_types=self._event_types)
