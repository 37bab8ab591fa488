"""Give an agent tenant-scoped memory without tying tiermem to an agent framework.

Three ways in, none of which imports a framework:

- the agent opts in with :class:`MemoryAware` (``attach_memory(memory)``) and ``with_agent(agent)``;
- ``with_factory(factory)``: the builder calls ``factory(memory=view)`` and keeps what it returns;
- ``wrap(agent)``: a plain object is left untouched; its code reads ``handle.memory``.

The agent only ever receives a *tenant-locked view* of the client: a
:class:`~tiermem.MemoryClient` whose ``scoped()`` may change the namespace but not the tenant,
and whose ``tier_store()`` refuses (a tier store reaches every tenant). Ownership follows the
library rule: a client the builder built (``with_memory_builder``) is closed with the handle; a
client passed in (``with_memory``) is the caller's and stays open.

Example::

    async with (AgentBuilder()
                .with_factory(lambda *, memory: SupportBot(memory))
                .with_memory_builder(MemoryBuilder.from_settings())
                .for_tenant("acme", namespace="support-bot")
                .build()) as handle:
        await handle.agent.run("hello")
"""

from __future__ import annotations

import enum
from typing import Any, Generic, Protocol, Self, TypeVar, cast, runtime_checkable

from typing_extensions import TypeVar as DefaultTypeVar

from tiermem._builder import MemoryBuilder
from tiermem._client import MemoryClient
from tiermem._errors import ConfigurationError, InvalidScopeError
from tiermem._keys import validate_scope
from tiermem._lifecycle import AsyncResource, ClientState, Closable

__all__ = ["AgentBuilder", "AgentFactory", "AgentHandle", "MemoryAware"]

AgentT = DefaultTypeVar("AgentT", default=Any)
A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)


@runtime_checkable
class MemoryAware(Protocol):
    """An agent that accepts memory: the builder calls ``attach_memory`` once, before ``build()`` returns."""

    def attach_memory(self, memory: MemoryClient) -> None: ...


class AgentFactory(Protocol[A_co]):
    """Makes an agent around the memory view it gets (a class whose ``__init__`` takes ``memory`` fits)."""

    def __call__(self, *, memory: MemoryClient) -> A_co: ...


class _Source(enum.Enum):
    AGENT = "with_agent"
    FACTORY = "with_factory"
    WRAP = "wrap"


class AgentHandle(AsyncResource, Generic[AgentT]):
    """An agent together with its memory view; an async context manager.

    ``aclose()`` closes what the builder created: the agent if a factory made it and it has
    ``async aclose()``, then the memory client if the builder built it. Idempotent.
    """

    def __init__(
        self,
        agent: AgentT,
        memory: MemoryClient,
        *,
        owned_client: MemoryClient | None,
        owned_agent: bool,
    ) -> None:
        self._agent = agent
        self._memory = memory
        self._owned_client = owned_client
        self._owned_agent = owned_agent

    @property
    def agent(self) -> AgentT:
        """The agent, with its memory attached (or untouched, for ``wrap``)."""
        return self._agent

    @property
    def memory(self) -> MemoryClient:
        """The tenant-locked view the agent was given (never the root client)."""
        return self._memory

    @property
    def owns_memory(self) -> bool:
        """Whether closing this handle closes the memory client (it was built by the builder)."""
        return self._owned_client is not None

    @property
    def closed(self) -> bool:
        return self._state is ClientState.CLOSED

    async def _close(self) -> None:
        """Close the factory-made agent (if closable) and the owned client. Injected ones stay open."""
        try:
            if self._owned_agent and isinstance(self._agent, Closable):
                await self._agent.aclose()  # first: an agent may flush to memory while closing
        finally:
            if self._owned_client is not None:
                await self._owned_client.aclose()


class AgentBuilder(Generic[AgentT]):
    """Wire an agent to a tenant-scoped view of a :class:`~tiermem.MemoryClient`.

    Choose one agent source (``with_agent``, ``with_factory`` or ``wrap``) and one memory source
    (``with_memory`` or ``with_memory_builder``); ``for_tenant`` picks the tenant and namespace
    (default: the client's own). ``build()`` validates, does no I/O, and returns an
    :class:`AgentHandle`. Each builder builds once.
    """

    def __init__(self) -> None:
        self._sources: list[tuple[_Source, Any]] = []
        self._memory: MemoryClient | None = None
        self._memory_builder: MemoryBuilder | None = None
        self._tenant: str | None = None
        self._namespace: str | None = None
        self._built = False

    # -- the agent ----------------------------------------------------------------------------------

    def with_agent(self, agent: A) -> AgentBuilder[A]:
        """An agent that implements :class:`MemoryAware`; ``build()`` calls ``agent.attach_memory(view)``."""
        self._sources.append((_Source.AGENT, agent))
        return cast("AgentBuilder[A]", self)

    def with_factory(self, factory: AgentFactory[A]) -> AgentBuilder[A]:
        """``build()`` calls ``factory(memory=view)``; the handle closes the result if it has ``aclose()``."""
        if not callable(factory):
            raise ConfigurationError(f"with_factory() needs a callable, not {type(factory).__name__}")
        self._sources.append((_Source.FACTORY, factory))
        return cast("AgentBuilder[A]", self)

    def wrap(self, agent: A) -> AgentBuilder[A]:
        """Pair a plain object with memory without touching it: its code reads ``handle.memory``."""
        self._sources.append((_Source.WRAP, agent))
        return cast("AgentBuilder[A]", self)

    # -- the memory ---------------------------------------------------------------------------------

    def with_memory(self, memory: MemoryClient) -> Self:
        """Use a client you own: the handle never closes it (close it yourself, after the handle)."""
        if not isinstance(memory, MemoryClient):
            raise ConfigurationError(
                f"with_memory() needs a tiermem.MemoryClient, not {type(memory).__name__}"
            )
        self._memory = memory
        return self

    def with_memory_builder(self, builder: MemoryBuilder) -> Self:
        """Build the client in ``build()``; the handle owns it and closes it in ``aclose()``."""
        if not isinstance(builder, MemoryBuilder):
            raise ConfigurationError(
                f"with_memory_builder() needs a tiermem.MemoryBuilder, not {type(builder).__name__}"
            )
        self._memory_builder = builder
        return self

    def for_tenant(self, tenant: str, *, namespace: str | None = None) -> Self:
        """Confine the agent to ``tenant`` (and start it in ``namespace``; default: the client's).

        Raises:
            InvalidScopeError: the tenant or namespace is not ``[A-Za-z0-9._-]{1,64}``.
        """
        self._tenant = validate_scope(tenant, "tenant")
        self._namespace = None if namespace is None else validate_scope(namespace, "namespace")
        return self

    # -- build --------------------------------------------------------------------------------------

    def build(self) -> AgentHandle[AgentT]:
        """Validate, make the memory view, hand it to the agent, and return the handle. No I/O.

        Raises:
            ConfigurationError: no memory or two memory sources; no agent source or several; an
                agent given to ``with_agent`` that does not implement :class:`MemoryAware`; an
                injected client that is closed or locked to another tenant; a second ``build()``.
        """
        if self._built:
            raise ConfigurationError("this AgentBuilder was already built; make a new one")
        source, target = self._agent_source()
        if self._memory is not None and self._memory_builder is not None:
            raise ConfigurationError(
                "both with_memory() and with_memory_builder() were called; use one: an injected client "
                "stays yours, a builder's client is owned and closed by the handle"
            )
        if self._memory is None and self._memory_builder is None:
            raise ConfigurationError(
                "no memory: call with_memory(client) to share a client you own, or "
                "with_memory_builder(builder) to let the handle build and close one"
            )
        if self._memory is not None and self._memory.closed:
            raise ConfigurationError("the MemoryClient given to with_memory() is closed")
        self._built = True
        owned: MemoryClient | None = None
        if self._memory_builder is not None:
            owned = self._memory_builder.build()  # no I/O: nothing to release if a later step fails
            base = owned
        else:
            assert self._memory is not None
            base = self._memory
        try:
            view = base.scoped(tenant=self._tenant, namespace=self._namespace, lock_tenant=True)
        except InvalidScopeError as exc:
            raise ConfigurationError(
                f"cannot scope the memory to tenant {self._tenant!r}: {exc.message}"
            ) from exc
        if source is _Source.FACTORY:
            agent = target(memory=view)
        elif source is _Source.AGENT:
            target.attach_memory(view)
            agent = target
        else:
            agent = target
        return AgentHandle(agent, view, owned_client=owned, owned_agent=source is _Source.FACTORY)

    def _agent_source(self) -> tuple[_Source, Any]:
        if not self._sources:
            raise ConfigurationError("no agent: call with_agent(agent), with_factory(factory) or wrap(agent)")
        if len(self._sources) > 1:
            used = ", ".join(f"{s.value}()" for s, _ in self._sources)
            raise ConfigurationError(f"choose one agent source; got {used}")
        source, target = self._sources[0]
        if source is _Source.AGENT and not isinstance(target, MemoryAware):
            raise ConfigurationError(
                f"{type(target).__name__} does not implement MemoryAware (attach_memory(memory)); "
                "implement it, pass a factory that takes memory= to with_factory(), or use wrap() "
                "and read handle.memory"
            )
        return source, target
