//! The Lua scripts that read and change an entry atomically.
//!
//! An entry of key hash `H` under prefix `P` is:
//! - `P{H}:m`, a hash with the fields `v` (the version id of the body), `m` (the serialized
//!   meta), `l` (the body length), `c` (the chunk size), `n` (the number of chunk keys) and,
//!   for a body of at most one chunk, `b` (the body itself, `n` is then 0);
//! - `P{H}:<v>:<i>` for `i` in `0..n`, the body chunks of version `v`;
//! - `P{H}:p`, a marker set by an invalidation, so writes that started before it are not
//!   published after it.
//!
//! The `{H}` hash tag keeps all keys of an entry in one Redis Cluster slot, so the scripts
//! that compute chunk keys from the meta touch one slot only.
//!
//! Loops over the chunks of an entry read from Redis stop at 100 000 chunks
//! (`MAX_CHUNKS`), so a corrupt count cannot keep the server busy.
//!
//! Lookups do not use a script: a plain `HMGET` of the meta hash returns the meta and a
//! small body in one round trip. (Returning a body through Lua costs several times a plain
//! read for 64 KiB values, as measured by the `redis_hits` bench.)

/// Publishes a finished write: checks that no invalidation happened since the write started
/// and that every chunk is still there, then replaces the meta hash and sets the expiry of
/// the meta and the chunks. The chunks of the replaced version expire after a grace period
/// (or at once when it is 0), so hits streaming them can finish.
///
/// `KEYS[1]` meta key, `KEYS[2]` invalidation marker; `ARGV`: 1 key base, 2 version,
/// 3 serialized meta, 4 body length, 5 chunk size, 6 chunk count, 7 expiry (ms since the
/// epoch), 8 the invalidation marker seen when the write started (`''` for none),
/// 9 grace (ms), 10 the body when it is stored in the meta hash (`n` = 0; `''` for an empty
/// body). Returns 1 when published, -1 when invalidated meanwhile, -2 when a chunk
/// is missing (in both cases the write's chunks are deleted).
pub(crate) const PUBLISH: &str = r"
local prefix = ARGV[1] .. ARGV[2] .. ':'
local n = tonumber(ARGV[6])
local function drop()
  for i = 0, n - 1 do redis.call('DEL', prefix .. i) end
end
local seen = redis.call('GET', KEYS[2]) or ''
if seen ~= ARGV[8] then drop() return -1 end
for i = 0, n - 1 do
  if redis.call('EXISTS', prefix .. i) == 0 then drop() return -2 end
end
local old = redis.call('HMGET', KEYS[1], 'v', 'n')
if old[1] and old[1] ~= ARGV[2] then
  local oldprefix = ARGV[1] .. old[1] .. ':'
  local grace = tonumber(ARGV[9])
  for i = 0, math.min(tonumber(old[2]) or 0, 100000) - 1 do
    local k = oldprefix .. i
    if grace <= 0 then
      redis.call('DEL', k)
    else
      local t = redis.call('PTTL', k)
      if t == -1 or t > grace then redis.call('PEXPIRE', k, grace) end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'm', ARGV[3], 'l', ARGV[4], 'c', ARGV[5], 'n', ARGV[6])
if n == 0 and ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'b', ARGV[10]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
for i = 0, n - 1 do redis.call('PEXPIREAT', prefix .. i, ARGV[7]) end
return 1
";

/// Deletes an entry (meta and chunks); an invalidation also sets the marker that stops
/// writes in progress from being published.
///
/// `KEYS[1]` meta key, `KEYS[2]` invalidation marker; `ARGV`: 1 key base, 2 `'1'` for an
/// invalidation, 3 the new marker value, 4 the marker's lifetime (ms). Returns 1 if there
/// was an entry.
pub(crate) const PURGE: &str = r"
if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
local h = redis.call('HMGET', KEYS[1], 'v', 'n')
if not h[1] then return 0 end
local prefix = ARGV[1] .. h[1] .. ':'
for i = 0, math.min(tonumber(h[2]) or 0, 100000) - 1 do redis.call('DEL', prefix .. i) end
redis.call('DEL', KEYS[1])
return 1
";

/// Replaces the serialized meta of an existing entry and moves the expiry of the entry
/// (meta and chunks) to the new one.
///
/// `KEYS[1]` meta key; `ARGV`: 1 key base, 2 serialized meta, 3 expiry (ms since the
/// epoch). Returns 1 if there was an entry, 0 otherwise (nothing is created).
pub(crate) const UPDATE_META: &str = r"
local h = redis.call('HMGET', KEYS[1], 'v', 'n')
if not h[1] then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
local prefix = ARGV[1] .. h[1] .. ':'
for i = 0, math.min(tonumber(h[2]) or 0, 100000) - 1 do redis.call('PEXPIREAT', prefix .. i, ARGV[3]) end
return 1
";
