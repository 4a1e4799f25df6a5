package cluster

import "github.com/redis/go-redis/v9"

// The scripts run on one session's keys (KEYS[1] its metadata, KEYS[2]
// its inbox, one hash slot), so each is one atomic step. Times are Redis
// server time in milliseconds, so instances' clocks need not agree.
// Whatever an owner writes is fenced: it names the owner and epoch it
// believes in, and the script does nothing if another instance has taken
// the session over since.

const luaNow = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// register writes a session's metadata. ARGV: owner, epoch, lease ms,
// ttl ms, then field/value pairs.
var registerScript = redis.NewScript(luaNow + `
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', ARGV[2], 'lease', now + tonumber(ARGV[3]), 'ttl', ARGV[4], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[3]))
return 1
`)

// lookup returns the server's time and the session's metadata.
var lookupScript = redis.NewScript(luaNow + `
return {now, redis.call('HGETALL', KEYS[1])}
`)

// post appends a message to the inbox of a session it checks belongs to
// the poster's identity and handler, and rings the owner's doorbell
// unless the poster is the owner. The doorbell carries the entry itself,
// with the id of the entry before it, so that an owner that has
// dispatched that one dispatches this one without reading the inbox.
//
// The inbox is bounded as one instance bounds a session: its requests
// and notifications, and apart its responses, each at most the inbox
// limit (max_inflight), and its bytes. The metadata keeps what the
// inbox holds (qw, qr, qb: requests and notifications, responses,
// bytes), and each entry keeps its own share (w, r, n) and its poster
// (f) beside the message (m), in clear, so that the ack script gives
// them back without reading the message. An empty inbox holds nothing,
// whatever the counts say (an inbox that lapsed, entries of an older
// version without their counts).
//
// ARGV: identity, scope, inbox limit (0: none), the entry, requests and
// notifications in it, channel prefix, poster, session id, responses in
// it, its bytes, inbox byte limit (0: none). Returns {0} unknown, {1}
// another identity's, {2} inbox full of messages, {4} inbox full of
// bytes, or {3, owner, entry id, listeners, previous entry id}.
var postScript = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'owner', 'identity', 'scope', 'qw', 'qr', 'qb')
if not m[1] or m[3] ~= ARGV[2] then return {0} end
if m[2] ~= ARGV[1] then return {1} end
local work, resp, bytes = tonumber(ARGV[5]), tonumber(ARGV[9]), tonumber(ARGV[10])
local qw, qr, qb = tonumber(m[4]) or 0, tonumber(m[5]) or 0, tonumber(m[6]) or 0
if redis.call('XLEN', KEYS[2]) == 0 then qw, qr, qb = 0, 0, 0 end
local limit = tonumber(ARGV[3])
if limit > 0 and ((work > 0 and qw + work > limit) or (resp > 0 and qr + resp > limit)) then return {2} end
local blimit = tonumber(ARGV[11])
if blimit > 0 and qb > 0 and qb + bytes > blimit then return {4} end
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[4], 'w', work, 'r', resp, 'n', bytes, 'f', ARGV[7])
local prev = redis.call('HGET', KEYS[1], 'last') or ''
redis.call('HSET', KEYS[1], 'last', id, 'qw', qw + work, 'qr', qr + resp, 'qb', qb + bytes)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
local n = 1
if m[1] ~= ARGV[7] then n = redis.call('PUBLISH', ARGV[6] .. m[1], 'm ' .. ARGV[8] .. ' ' .. prev .. ' ' .. id .. ' ' .. ARGV[4]) end
return {3, m[1], id, n, prev}
`)

// ack deletes inbox entries whose answers reached the client, gives back
// what each held of the inbox's bounds, tells each entry's poster (when
// another instance) that its entry is done, and records the upstream
// state. ARGV: owner, epoch, upstream id, protocol version, initialized
// (1/0), channel prefix, session id, then entry ids. Returns 1, or 0
// when fenced.
var ackScript = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'upstream', ARGV[3], 'proto', ARGV[4], 'init', ARGV[5])
local dw, dr, db = 0, 0, 0
for i = 8, #ARGV do
  local e = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #e > 0 then
    local f = e[1][2]
    local poster = nil
    for j = 1, #f - 1, 2 do
      local k = f[j]
      if k == 'w' then dw = dw + tonumber(f[j + 1])
      elseif k == 'r' then dr = dr + tonumber(f[j + 1])
      elseif k == 'n' then db = db + tonumber(f[j + 1])
      elseif k == 'f' then poster = f[j + 1] end
    end
    redis.call('XDEL', KEYS[2], ARGV[i])
    if poster and poster ~= ARGV[1] then
      redis.call('PUBLISH', ARGV[6] .. poster, 'a ' .. ARGV[7] .. ' ' .. ARGV[i])
    end
  end
end
if dw + dr + db > 0 then
  local q = redis.call('HMGET', KEYS[1], 'qw', 'qr', 'qb')
  redis.call('HSET', KEYS[1], 'qw', math.max(0, (tonumber(q[1]) or 0) - dw),
    'qr', math.max(0, (tonumber(q[2]) or 0) - dr), 'qb', math.max(0, (tonumber(q[3]) or 0) - db))
end
return 1
`)

// exists reports which of the entries ARGV still are in the inbox
// KEYS[1]: a list of 1/0.
var existsScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV do
  out[i] = #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
end
return out
`)

// refresh renews the owner's lease and the session's TTL, and records
// its state. It never writes the token hash: a renewal that read the
// session's state before a re-attach spent its token must not bring the
// spent one back. ARGV: owner, epoch, lease ms, the token hash the owner
// holds, then field/value pairs. Returns 1, 2 when the token hash is no
// longer the owner's (a re-attach is spending it), 0 when fenced, -1
// when the metadata is gone.
var refreshScript = redis.NewScript(luaNow + `
local m = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ttl', 'tok')
if not m[1] then return -1 end
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[3]), unpack(ARGV, 5))
local ttl = tonumber(m[3]) + tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if m[4] ~= ARGV[4] then return 2 end
return 1
`)

// retoken spends the session's resume token on its owner's re-attach:
// the new token's hash replaces the old one's, provided the owner still
// owns the session at its epoch and the old one is still the session's
// (not spent by another re-attach meanwhile). ARGV: owner, epoch, old
// token hash, new token hash, lease ms. Returns 1, 0 when fenced, -1 when
// the metadata is gone, -2 when the old token is no longer the
// session's.
var retokenScript = redis.NewScript(luaNow + `
local m = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ttl', 'tok')
if not m[1] then return -1 end
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
if m[4] ~= ARGV[3] then return -2 end
redis.call('HSET', KEYS[1], 'tok', ARGV[4], 'detached', '0', 'lease', now + tonumber(ARGV[5]))
local ttl = tonumber(m[3]) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`)

// takeover makes the caller the owner at the next epoch, if the epoch is
// still the one the caller read (and the token hash, when it proved
// itself with one). ARGV: new owner, expected epoch, expected token hash
// (empty for none), new token hash, lease ms. Returns the new epoch, or 0.
var takeoverScript = redis.NewScript(luaNow + `
local m = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'tok', 'ttl')
if not m[1] or m[2] ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' and m[3] ~= ARGV[3] then return 0 end
local e = tonumber(m[2]) + 1
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', e, 'tok', ARGV[4], 'detached', '0', 'lease', now + tonumber(ARGV[5]))
local ttl = tonumber(m[4]) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return e
`)

// remove deletes the session, if the caller still owns it. ARGV: owner,
// epoch. Returns 1, or 0 when fenced.
var removeScript = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`)
