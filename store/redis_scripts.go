package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts that change the store. Each makes its change, then
// bumps the version, appends an event to the stream and publishes the new
// version (bump), in one atomic step: create-if-absent cannot succeed
// twice, and no follower can see a change without its event. Each
// (re)creates the epoch if the data is new.
//
// Every script is given the same KEYS and the same first two ARGV, which
// scriptPrelude names, and then arguments of its own, which it names on
// its first line; a method below runs each, passing its arguments in
// order. The mutations answer {result, version, entry}: a scriptResult,
// and the version written and the id of the stream entry that records it,
// if any.

// A scriptResult says what a mutation script did.
type scriptResult int64

const (
	// scriptWrote: the change is made, at the version returned.
	scriptWrote scriptResult = iota + 1
	// scriptExists: create found the id taken; nothing is written.
	scriptExists
	// scriptNotFound: update or delete found no such tenant; nothing is
	// written.
	scriptNotFound
	// scriptChanged: update found another record than the one it read;
	// nothing is written.
	scriptChanged
	// scriptRecorded: delete found no such tenant, but some process keeps
	// tenants Redis lost; the delete is recorded at the version returned,
	// so that they drop it.
	scriptRecorded
	// scriptNoKeys: a writer without keys found the store sealed (see
	// writable); nothing is written.
	scriptNoKeys
)

// scriptPrelude starts every script: the KEYS, in the order of
// scriptKeys; the results; the ARGV every script is given first, by
// run; writable and bump.
//
// writable is called by a script before it writes a record. A writer
// with keys ("keyed", ARGV[3]) marks the store as sealed; one without
// refuses to write into a store so marked (ErrNoKeys), as it would put a
// password in clear among sealed ones. The check and the write are one
// step: checked before the script, a process without keys could write in
// clear just after another sealed the store.
var scriptPrelude = fmt.Sprintf(`
local tenants, version, events, epoch, channel, accepted, lost, sealed = unpack(KEYS)
local WROTE, EXISTS, NOT_FOUND, CHANGED, RECORDED, NO_KEYS = %d, %d, %d, %d, %d, %d
local maxlen, newepoch, keyed = ARGV[1], ARGV[2], ARGV[3] == '1'
local function writable()
	if keyed then
		redis.call('SET', sealed, '1', 'NX')
		return true
	end
	return redis.call('EXISTS', sealed) == 0
end
local function bump(kind, id)
	redis.call('SET', epoch, newepoch, 'NX')
	local v = redis.call('INCR', version)
	local sid = redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'v', v, 't', kind, 'id', id)
	redis.call('PUBLISH', channel, v .. ' ' .. sid)
	return v, sid
end
`, scriptWrote, scriptExists, scriptNotFound, scriptChanged, scriptRecorded, scriptNoKeys)

// scriptKeys returns the KEYS of every script.
func (r *Redis) scriptKeys() []string {
	k := r.keys
	return []string{k.tenants, k.version, k.events, k.epoch, k.channel, k.accepted, k.lost, k.sealed}
}

// run runs s with the arguments every script is given first (the stream
// length, an epoch for data that has none, and whether this process has
// keys), then args.
func (r *Redis) run(ctx context.Context, s *redis.Script, args ...any) *redis.Cmd {
	keyed := "0"
	if r.kr != nil {
		keyed = "1"
	}
	return s.Run(ctx, r.c, r.scriptKeys(), append([]any{r.maxLen, newEpoch(), keyed}, args...)...)
}

// A written is where a mutation was written: its version, and the id of
// the stream entry that records it (empty if nothing was written).
type written struct {
	v   int64
	sid string
}

// runMutation runs a mutation script and reads its answer.
func (r *Redis) runMutation(ctx context.Context, s *redis.Script, args ...any) (scriptResult, written, error) {
	a, err := r.run(ctx, s, args...).Slice()
	if err != nil {
		r.reloadOnFailure(err)
		return 0, written{}, err
	}
	var (
		res scriptResult
		w   written
		ok  = len(a) == 2 || len(a) == 3
	)
	if ok {
		n, ok1 := a[0].(int64)
		w.v, ok = a[1].(int64)
		res, ok = scriptResult(n), ok && ok1
	}
	if ok && len(a) == 3 {
		w.sid, ok = a[2].(string)
	}
	if !ok || res < scriptWrote || res > scriptNoKeys || (res == scriptWrote || res == scriptRecorded) != (w.sid != "") {
		return 0, written{}, fmt.Errorf("unexpected script answer %v", a)
	}
	return res, w, nil
}

var createScript = redis.NewScript(scriptPrelude + `
local id, record = unpack(ARGV, 4)
if redis.call('HEXISTS', tenants, id) == 1 then return {EXISTS, 0} end
if not writable() then return {NO_KEYS, 0} end
redis.call('HSET', tenants, id, record)
local v, sid = bump('create', id)
return {WROTE, v, sid}`)

// runCreate stores record as tenant id's, unless id exists.
func (r *Redis) runCreate(ctx context.Context, id, record string) (scriptResult, written, error) {
	return r.runMutation(ctx, createScript, id, record)
}

var updateScript = redis.NewScript(scriptPrelude + `
local id, old, record = unpack(ARGV, 4)
local cur = redis.call('HGET', tenants, id)
if not cur then return {NOT_FOUND, 0} end
if cur ~= old then return {CHANGED, 0} end
if not writable() then return {NO_KEYS, 0} end
redis.call('HSET', tenants, id, record)
local v, sid = bump('update', id)
return {WROTE, v, sid}`)

// runUpdate replaces tenant id's record with record, if it is still old:
// a compare-and-swap, so that the version check of Update is exact.
func (r *Redis) runUpdate(ctx context.Context, id, old, record string) (scriptResult, written, error) {
	return r.runMutation(ctx, updateScript, id, old, record)
}

// While some process keeps tenants Redis lost (lost is set), a delete of
// a tenant the hash lacks is recorded too, so that they drop it.
var deleteScript = redis.NewScript(scriptPrelude + `
local id = unpack(ARGV, 4)
local n = redis.call('HDEL', tenants, id)
if n == 0 and redis.call('EXISTS', lost) == 0 then return {NOT_FOUND, 0} end
local v, sid = bump('delete', id)
if n == 0 then return {RECORDED, v, sid} end
return {WROTE, v, sid}`)

// runDelete deletes tenant id.
func (r *Redis) runDelete(ctx context.Context, id string) (scriptResult, written, error) {
	return r.runMutation(ctx, deleteScript, id)
}

// The resync marker also records its version under accepted, so that a
// follower that misses the marker in the stream (it resynced past it)
// still learns that the operator accepted the loss.
var resyncScript = redis.NewScript(scriptPrelude + `
local v, sid = bump('resync', '')
redis.call('SET', accepted, v)
redis.call('DEL', lost)
return {WROTE, v, sid}`)

// runResync appends the resync marker that AcceptLoss sends to every
// follower, and clears the lost mark.
func (r *Redis) runResync(ctx context.Context) error {
	_, _, err := r.runMutation(ctx, resyncScript)
	return err
}

var markLostScript = redis.NewScript(scriptPrelude + `
local lossat = unpack(ARGV, 4)
if tonumber(redis.call('GET', accepted) or '0') > tonumber(lossat) then return 0 end
redis.call('SET', lost, '1')
return 1`)

// runMarkLost sets the lost mark, which makes deletes of tenants the hash
// lacks reach the processes that keep them, unless an AcceptLoss came
// after the loss, found at version lossAt, that made the caller keep
// tenants.
func (r *Redis) runMarkLost(ctx context.Context, lossAt int64) error {
	err := r.run(ctx, markLostScript, lossAt).Err()
	r.reloadOnFailure(err)
	return err
}

// newEpoch returns a random id for the data: a follower that finds
// another epoch than it read knows Redis lost the data it had.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
