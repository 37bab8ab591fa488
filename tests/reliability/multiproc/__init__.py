"""Multi-process coherence checking (issue 12): OS processes, each with its own ``MemoryClient`` on the
same real services, record a history of their operations; a pure checker finds lost acknowledged writes,
stale and non-monotonic reads, false misses, phantom deletes and writes, duplicated session turns,
hot/durable divergence at the end, and operations that overran their deadline. See docs/reliability.md."""
