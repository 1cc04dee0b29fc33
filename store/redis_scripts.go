package store

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/redis/go-redis/v9"
)

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// The mutation scripts. KEYS: tenants, version, events, epoch, channel,
// accepted. Each bumps the version, appends to the stream and publishes in
// the same atomic step as the change; the epoch is (re)created if the data
// is new. The resync marker also records its version under accepted, so a
// follower that misses the marker in the stream (it resynced past it)
// still learns that the operator accepted the loss.
var (
	createScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
redis.call('SET', KEYS[4], ARGV[4], 'NX')
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'v', v, 't', 'create', 'id', ARGV[1])
redis.call('PUBLISH', KEYS[5], v)
return v`)
	updateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -2 end
if cur ~= ARGV[2] then return -3 end
redis.call('SET', KEYS[4], ARGV[5], 'NX')
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'v', v, 't', 'update', 'id', ARGV[1])
redis.call('PUBLISH', KEYS[5], v)
return v`)
	// While some process keeps tenants Redis lost (KEYS[7] set), a delete
	// of a tenant the hash lacks is recorded too, so that they drop it;
	// it answers -version then.
	deleteScript = redis.NewScript(`
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n == 0 and redis.call('EXISTS', KEYS[7]) == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[3], 'NX')
local v = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'v', v, 't', 'delete', 'id', ARGV[1])
redis.call('PUBLISH', KEYS[5], v)
if n == 0 then return -v end
return v`)
	resyncScript = redis.NewScript(`
redis.call('SET', KEYS[4], ARGV[2], 'NX')
local v = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'v', v, 't', 'resync', 'id', '')
redis.call('SET', KEYS[6], v)
redis.call('DEL', KEYS[7])
redis.call('PUBLISH', KEYS[5], v)
return v`)
)

// markLostScript sets the lost mark, unless an AcceptLoss came after the
// loss (at version ARGV[1]) that made the caller keep tenants.
var markLostScript = redis.NewScript(`
if tonumber(redis.call('GET', KEYS[6]) or '0') > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[7], '1')
return 1`)

func (r *Redis) scriptKeys() []string {
	k := r.keys
	return []string{k.tenants, k.version, k.events, k.epoch, k.channel, k.accepted, k.lost}
}
