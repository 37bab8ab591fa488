"""The policy engine behind :class:`tiermem.MemoryClient`, one module per path.

``guard`` (every tier call: breaker, deadline, span, metrics), ``hot`` (hot-cache coherence),
``large`` (values in cold behind a warm pointer), ``reads`` (the read path), ``writes`` (the write
path) and ``core`` (the state a client and its views share).
"""
