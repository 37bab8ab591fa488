"""Collections: named, ordered, filterable sets of items in one tenant and namespace (ADR 0009)."""

from tiermem._collection._api import Collection, backend_for
from tiermem._collection._model import Item, Scope, validate_name
from tiermem._collection._store import CollectionStore

__all__ = ["Collection", "CollectionStore", "Item", "Scope", "backend_for", "validate_name"]
