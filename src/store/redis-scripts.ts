/**
 * The compare-and-set steps of the shared store, as Lua (Redis runs each one atomically).
 * Account hashes: see redis-records.ts.
 */

/** KEYS[1] account; ARGV base fp, new fp, tokens JSON. Writes only while the stored fp is the base (or already the new one). */
export const WRITE_TOKENS = `
local cur = redis.call('HGET', KEYS[1], 'fp')
if cur ~= ARGV[2] and cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[3], 'fp', ARGV[2])
redis.call('HDEL', KEYS[1], 'spending')
return 1`

/** KEYS[1] account; ARGV fp, marker JSON. Marks a spend only of the stored token, and only once. */
export const MARK_SPENDING = `
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'spending') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spending', ARGV[2])
return 1`

/** KEYS[1] account; ARGV fp. Clears the marker only if it is for this fingerprint. */
export const CLEAR_SPENDING = `
local marker = redis.call('HGET', KEYS[1], 'spending')
if not marker then return 0 end
if cjson.decode(marker).fingerprint ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'spending')
return 1`

/** KEYS[1] lease; ARGV token. Deletes the lease only if it is still ours. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** KEYS[1] sticky; ARGV old ('' none), new ('' none). Moves the sticky choice only from the one we saw. */
export const MOVE_STICKY = `
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`

/** KEYS[1] an instance's heartbeat; ARGV boot id, ms to live. Sets it only if absent or ours. */
export const RENEW_HEARTBEAT = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`
