package store

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Leaser = (*Redis)(nil)

// The leases on a server's budget are one hash, {PREFIX:fleet:SERVER},
// with a field per holder whose value is "granted demand budget
// expires_ms". The key is its own hash tag: on Redis Cluster one script
// touches one slot, and the servers' leases spread over the cluster
// instead of weighing on the node of the store's keys. The key expires
// with its last holder.
func (r *Redis) leaseKey(server string) string {
	prefix := strings.TrimSuffix(strings.TrimPrefix(r.keys.tenants, "{"), "}:tenants")
	return "{" + prefix + ":fleet:" + server + "}"
}

// leaseScript grants a lease (see Leaser.Lease). The clock is Redis's
// (TIME), never a client's, so that holders on hosts whose clocks differ
// agree on who has expired. It answers {granted, budget, fair, holders}.
var leaseScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local holder = ARGV[1]
local want, budget, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + ttl
local others, cur, holders, last, idle = 0, 0, 1, expires, 0
local demands = {want}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
	local f = all[i]
	local g, d, b, e = string.match(all[i + 1], '^(%d+) (%d+) (%d+) (%d+)$')
	if not g or tonumber(e) <= now then
		redis.call('HDEL', key, f)
	elseif f == holder then
		cur = tonumber(g)
	else
		others = others + tonumber(g)
		if tonumber(g) == 0 then idle = idle + 1 end
		budget = math.min(budget, tonumber(b))
		holders = holders + 1
		last = math.max(last, tonumber(e))
		demands[#demands + 1] = tonumber(d)
	end
end
-- One slot stays free for each other live holder that holds none, so that
-- its first session need not wait for a renewal of the holders that took
-- the rest (or for a crashed one's lease to expire): at most a tenth of
-- the budget (at least one), so that many idle processes do not starve a
-- busy one. A holder may still take the last free slot for itself.
local reserve = math.min(idle, math.max(1, math.floor(budget / 10)))
local free = budget - others
local granted = math.min(want, math.max(0, math.min(1, free), free - reserve))
granted = math.max(granted, math.min(want, cur))
redis.call('HSET', key, holder, granted .. ' ' .. want .. ' ' .. budget .. ' ' .. expires)
redis.call('PEXPIREAT', key, last)
-- Max-min fairness over the budget less the reserve: the smallest demands
-- are met in full while they are under an equal split of what is left;
-- the rest get that split. A holder that took the reserve's slots before
-- the idle ones joined learns so here, and gives them back.
table.sort(demands)
local fair, left = want, budget - reserve
for i, d in ipairs(demands) do
	local split = math.floor(left / (#demands - i + 1))
	if d > split then
		fair = math.min(want, split)
		break
	end
	left = left - d
end
return {granted, budget, math.min(fair, budget), holders}`)

// Lease implements Leaser.
func (r *Redis) Lease(ctx context.Context, req LeaseRequest) (Lease, error) {
	if err := req.validate(); err != nil {
		return Lease{}, err
	}
	if err := r.checkOpen(); err != nil {
		return Lease{}, err
	}
	// The local expiry is counted from before the call: Redis counts
	// from when the script ran, later, so the holder's lease ends here
	// first.
	start := time.Now()
	a, err := leaseScript.Run(ctx, r.c, []string{r.leaseKey(req.Server)},
		req.Holder, req.Want, req.Budget, req.TTL.Milliseconds()).Int64Slice()
	if err != nil {
		r.reloadOnFailure(err)
		return Lease{}, r.errorf("lease on server %q for %q: %w", req.Server, req.Holder, err)
	}
	if len(a) != 4 {
		return Lease{}, r.errorf("lease on server %q for %q: unexpected script answer %v", req.Server, req.Holder, a)
	}
	return Lease{Granted: int(a[0]), Budget: int(a[1]), Fair: int(a[2]), Holders: int(a[3]), Expires: start.Add(req.TTL)}, nil
}

// ReleaseLease implements Leaser.
func (r *Redis) ReleaseLease(ctx context.Context, server, holder string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	if err := r.c.HDel(ctx, r.leaseKey(server), holder).Err(); err != nil {
		r.reloadOnFailure(err)
		return r.errorf("release lease on server %q for %q: %w", server, holder, err)
	}
	return nil
}
