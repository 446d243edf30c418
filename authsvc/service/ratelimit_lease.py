"""The Redis side of the cluster scope's token buckets (:mod:`authsvc.service.ratelimit_cluster`):
the one Lua script that keeps a bucket and grants leases of it, and a lease as an instance
holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authsvc.rules.ratelimit import RateLimit

#: A lease is this fraction of the bucket's capacity (at least one token).
LEASE_DIVISOR = 10

#: KEYS[1]: the bucket. ARGV: count, per (seconds), tokens wanted, tokens given back.
#: Returns {tokens granted, the level left in the bucket as a string}. The time of the last
#: update is kept as TIME's two integers: a float would lose sub-millisecond precision.
BUCKET_SCRIPT = """
local t = redis.call('TIME')
local count = tonumber(ARGV[1])
local rate = count / tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'level', 'sec', 'usec')
local level = tonumber(state[1]) or count
local sec, usec = tonumber(t[1]), tonumber(t[2])
if state[2] then
  local elapsed = (sec - tonumber(state[2])) + (usec - tonumber(state[3])) / 1000000
  if elapsed > 0 then
    level = level + elapsed * rate
  else
    sec, usec = tonumber(state[2]), tonumber(state[3])
  end
end
level = math.min(count, level + tonumber(ARGV[4]))
local granted = math.max(0, math.min(tonumber(ARGV[3]), math.floor(level + 1e-9)))
level = level - granted
if level >= count then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'sec', sec, 'usec', usec)
  redis.call('PEXPIRE', KEYS[1], math.ceil((count - level) / rate * 1000) + 1000)
end
return {granted, string.format('%.17g', level)}
"""


@dataclass(slots=True)
class Lease:
    """This instance's share of a token's bucket, or a remembered denial (``left`` 0,
    ``denied``), valid until ``expires_at`` (this instance's monotonic clock)."""

    limit: RateLimit
    left: int  # tokens granted and not yet spent
    shared_level: float  # what the bucket in Redis held right after the grant
    granted_at: float
    expires_at: float
    denied: bool

    def shared_level_at(self, now: float) -> float:
        """The shared bucket's level by now, as far as this instance can tell."""
        refilled = (now - self.granted_at) * self.limit.count / self.limit.per
        return min(float(self.limit.count), self.shared_level + refilled)


def lease_size(limit: RateLimit) -> int:
    return max(1, limit.count // LEASE_DIVISOR)
