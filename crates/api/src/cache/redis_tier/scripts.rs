//! The Lua scripts that make fills and invalidations atomic in Redis.

/// KEYS[1] value, KEYS[2] generation, KEYS[3] epoch, KEYS[4] the epoch the value is filled
/// under; ARGV[1] expected generation, ARGV[2] expected epoch, ARGV[3] value, ARGV[4] TTL
/// ms, ARGV[5] `1` to skip both checks (`UNSAFE_SKIP_FILL_CHECK`, for proving the chaos
/// checker can fail).
pub(super) const FILL_SCRIPT: &str = r"
if ARGV[5] ~= '1' then
  if redis.call('GET', KEYS[3]) ~= ARGV[2] then
    return 0
  end
  local current = redis.call('GET', KEYS[2]) or '0'
  if current ~= ARGV[1] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[4])
return 1
";

/// KEYS[1] value, KEYS[2] generation, KEYS[3] epoch; ARGV[1] channel, ARGV[2] id,
/// ARGV[3] a fresh epoch, stored only if the key is missing; ARGV[4] `PUBLISH`, or
/// `SPUBLISH` in cluster mode (the sharded channel is in the keys' slot).
pub(super) const INVALIDATE_SCRIPT: &str = r"
redis.call('SET', KEYS[3], ARGV[3], 'NX')
redis.call('INCR', KEYS[2])
redis.call('UNLINK', KEYS[1])
if ARGV[4] == 'SPUBLISH' then
  redis.call('SPUBLISH', ARGV[1], ARGV[2])
else
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
";

/// KEYS[1] epoch; ARGV[1] a fresh epoch. Returns the epoch, stored first if missing.
pub(super) const ENSURE_EPOCH_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
return epoch
";

/// KEYS[1] incarnation, KEYS[2] epoch; ARGV[1] a fresh epoch. When the Redis process
/// answering is not the one the epoch was last checked against (its `run_id` differs: a
/// restart, perhaps from persistence or a backup, or a failover), stores the fresh epoch:
/// every fill read before and every entry filled before is then refused. Returns 0 when
/// nothing changed, 1 when another process was recorded, 2 when none was (a new or
/// flushed Redis). Scripts replicate as their effects, so reading `INFO` here is allowed.
pub(super) const VERIFY_INCARNATION_SCRIPT: &str = r"
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if not run_id then
  return redis.error_reply('ERR no run_id in INFO server')
end
local recorded = redis.call('GET', KEYS[1])
if recorded == run_id and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], run_id)
if recorded then
  return 1
end
return 2
";
