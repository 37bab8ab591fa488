"""Lua scripts of the Redis hot tier: one key each, so they run on Redis Cluster and Azure Managed Redis."""

from __future__ import annotations

from typing import Final

__all__ = ["SWAP_LUA"]

SWAP_LUA: Final = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
"""Compare-and-swap of one key (ADR 0006). ARGV: expected bytes ('' = absent), new bytes ('' = delete),
PX milliseconds ('0' = no expiry). One key, so it runs on Redis Cluster and Azure Managed Redis."""
