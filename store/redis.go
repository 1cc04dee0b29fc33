package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store kept in Redis, shared by every process that opens it.
//
// All keys live under one hash tag ("{PREFIX}:..."), so the store works on
// Redis Cluster as on a single node or behind Sentinel:
//
//	{PREFIX}:tenants   hash, tenant id -> JSON record
//	{PREFIX}:version   counter, bumped by every mutation
//	{PREFIX}:events    stream of (version, type, id), trimmed to about
//	                   WithStreamLength entries; no deploy info, so no
//	                   password, travels in it
//	{PREFIX}:epoch     random id written with the first data
//	{PREFIX}:accepted  version of the operator's last AcceptLoss
//	{PREFIX}:lost      set while some process keeps tenants Redis lost
//	{PREFIX}:changes   pub/sub channel: a wake-up carrying the version
//
// Every mutation is one Lua script: the change, the version bump and the
// event are atomic, and create-if-absent cannot succeed twice.
//
// Watchers are fed by one follower goroutine per Redis value. It
// subscribes to the channel, then reads a consistent snapshot, then reads
// the stream from where the snapshot stood whenever a wake-up arrives.
// Pub/sub loses messages across a reconnect, so every (re)subscription,
// every gap in the versions (a trimmed stream) and a periodic check of the
// version counter (WithCheckInterval) lead to a resync. A Redis that comes
// back without the data the follower had seen (restarted without
// persistence, flushed: the epoch changed or the version went back) is
// not taken to mean that every tenant was deleted: the follower logs an
// error, reports it in Status, keeps the tenants it knew that Redis no
// longer lists (with their last known records, in every sync it sends,
// marked Event.DataLoss), and follows the new data. The same holds
// for a Redis that lost only its last writes (a failover to a replica that
// had not received them, a restore from an older snapshot): the stream
// entry the follower applied last is gone or holds another version. Tenants go away
// only by explicit deletes, or by a resync an operator asks for
// (AcceptLoss).
//
// A write made while this process watches the store returns once the
// follower has read it back (within a moment, pub/sub wakes it; at most
// 2 s), so the process's watchers, and the tenantsql driver's routing,
// have it before the call returns (Sequencer).
type Redis struct {
	c         redis.UniversalClient
	ownClient bool
	keys      redisKeys
	log       *slog.Logger
	check     time.Duration
	resyncAll time.Duration
	maxLen    int64
	name      string // redacted URL, for messages

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}

	mu     sync.Mutex
	st     state             // the last state followed, for new watchers
	kept   map[string]Tenant // in st although Redis lost them (data-loss mode)
	synced bool
	status Status
	closed bool
	hub    hub
	// followed is closed and replaced whenever the follower has applied
	// something, waking the writes that wait to be read back
	// (awaitFollowed); losses counts the data losses it found.
	followed chan struct{}
	losses   int
}

var (
	_ Store     = (*Redis)(nil)
	_ Sequencer = (*Redis)(nil)
)

type redisKeys struct {
	tenants, version, events, epoch, channel, accepted, lost string
}

func newRedisKeys(prefix string) redisKeys {
	p := "{" + prefix + "}:"
	return redisKeys{tenants: p + "tenants", version: p + "version", events: p + "events", epoch: p + "epoch",
		channel: p + "changes", accepted: p + "accepted", lost: p + "lost"}
}

// Status describes how a store that follows a remote source is doing.
type Status struct {
	// Connected reports whether the last attempt to reach the source
	// succeeded.
	Connected bool
	// Version is the store version followed last.
	Version int64
	// LastSync is when the follower last read the whole tenant set.
	LastSync time.Time
	// LastError is the last error met while following, if any since the
	// last success.
	LastError string
	// DataLoss reports that the source came back without data the
	// follower had seen. Tenants it no longer lists are kept until deleted
	// or written again; an operator's resync (AcceptLoss) drops them and
	// clears DataLoss.
	DataLoss bool
}

// StatusReporter is implemented by stores that follow a remote source.
type StatusReporter interface {
	Status() Status
}

// RedisOption configures a Redis store.
type RedisOption func(*redisOptions)

type redisOptions struct {
	prefix    string
	check     time.Duration
	resyncAll time.Duration
	maxLen    int64
	log       *slog.Logger
}

// WithPrefix sets the key prefix (default "tenantsql"), so several
// applications can share one Redis.
func WithPrefix(p string) RedisOption { return func(o *redisOptions) { o.prefix = p } }

// WithCheckInterval sets how often the follower compares the version
// counter with what it has applied, to catch anything pub/sub lost
// (default 5s).
func WithCheckInterval(d time.Duration) RedisOption { return func(o *redisOptions) { o.check = d } }

// WithResyncInterval sets how often the follower rereads the whole tenant
// set even when nothing seems to be missing (default 5m): the last line of
// defence, at about 90 ms for 10,000 tenants (BENCHMARKS.md).
func WithResyncInterval(d time.Duration) RedisOption {
	return func(o *redisOptions) { o.resyncAll = d }
}

// WithStreamLength sets about how many events the stream keeps (default
// 10000). A follower that falls further behind resyncs.
func WithStreamLength(n int64) RedisOption { return func(o *redisOptions) { o.maxLen = n } }

// WithRedisLogger sets the logger (default slog.Default()).
func WithRedisLogger(l *slog.Logger) RedisOption { return func(o *redisOptions) { o.log = l } }

var validPrefix = func(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// OpenRedis opens the store in Redis at rawURL:
//
//	redis://[user:password@]host:port[/db][?options]
//	rediss://...                                        TLS
//	redis://host:port?addr=host2:port&addr=host3:port   Cluster (several addresses, or cluster=true)
//	redis://sentinel:26379?master_name=mymaster         Sentinel
//
// Options of the store itself: prefix=NAME, check=DURATION,
// resync=DURATION, stream_length=N; every other option is go-redis's (dial_timeout=3s,
// pool_size=10, ...). opts override the URL.
func OpenRedis(ctx context.Context, rawURL string, opts ...RedisOption) (*Redis, error) {
	name := RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not %w: url.Error quotes the part it could not read, which may
		// be the password.
		return nil, fmt.Errorf("store: redis URL %s: %s", name, urlErrorReason(err))
	}
	q := u.Query()
	o := defaultRedisOptions()
	if v := q.Get("prefix"); q.Has("prefix") {
		o.prefix = v
	}
	if q.Has("check") {
		if o.check, err = parseDuration(q.Get("check")); err != nil || o.check <= 0 {
			return nil, fmt.Errorf("store: redis URL %s: option check=%q: want a positive duration", name, q.Get("check"))
		}
	}
	if q.Has("resync") {
		if o.resyncAll, err = parseDuration(q.Get("resync")); err != nil || o.resyncAll <= 0 {
			return nil, fmt.Errorf("store: redis URL %s: option resync=%q: want a positive duration", name, q.Get("resync"))
		}
	}
	if q.Has("stream_length") {
		if o.maxLen, err = strconv.ParseInt(q.Get("stream_length"), 10, 64); err != nil || o.maxLen < 100 {
			return nil, fmt.Errorf("store: redis URL %s: option stream_length=%q: want a number of at least 100", name, q.Get("stream_length"))
		}
	}
	cluster := q.Get("cluster") == "true"
	for _, k := range []string{"prefix", "check", "resync", "stream_length", "cluster"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()

	var c redis.UniversalClient
	switch {
	case q.Has("master_name"):
		fo, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, redisURLError(name, err)
		}
		c = redis.NewFailoverClient(fo)
	case q.Has("addr") || cluster:
		co, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, redisURLError(name, err)
		}
		c = redis.NewClusterClient(co)
	default:
		ro, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, redisURLError(name, err)
		}
		c = redis.NewClient(ro)
	}
	r, err := newRedis(ctx, c, name, o, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	r.ownClient = true
	return r, nil
}

// NewRedis returns a store on a client the caller owns: Close does not
// close it.
func NewRedis(ctx context.Context, c redis.UniversalClient, opts ...RedisOption) (*Redis, error) {
	return newRedis(ctx, c, "redis", defaultRedisOptions(), opts)
}

func defaultRedisOptions() redisOptions {
	return redisOptions{prefix: "tenantsql", check: 5 * time.Second, resyncAll: 5 * time.Minute, maxLen: 10000, log: slog.Default()}
}

func newRedis(ctx context.Context, c redis.UniversalClient, name string, o redisOptions, opts []RedisOption) (*Redis, error) {
	for _, opt := range opts {
		opt(&o)
	}
	if !validPrefix(o.prefix) {
		return nil, fmt.Errorf("store: redis %s: prefix %q: want 1 to 64 bytes of [A-Za-z0-9_.:-]", name, o.prefix)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.check <= 0 || o.resyncAll <= 0 || o.maxLen < 1 {
		return nil, fmt.Errorf("store: redis %s: check and resync intervals must be positive, stream length at least 1", name)
	}
	r := &Redis{c: c, keys: newRedisKeys(o.prefix), log: o.log, check: o.check, resyncAll: o.resyncAll, maxLen: o.maxLen, name: name, st: newState(), followed: make(chan struct{})}
	// Reach Redis once, so a wrong address or password fails here, and
	// mark the data with an epoch if it has none.
	if err := c.SetNX(ctx, r.keys.epoch, newEpoch(), 0).Err(); err != nil {
		return nil, r.errorf("%w", err)
	}
	return r, nil
}

func redisURLError(name string, err error) error {
	return fmt.Errorf("store: redis URL %s: %v", name, strings.TrimPrefix(err.Error(), "redis: "))
}

func (r *Redis) errorf(format string, args ...any) error {
	return fmt.Errorf("store: redis %s: "+format, append([]any{r.name}, args...)...)
}

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redisRecord is a tenant as stored in the hash.
type redisRecord = fileTenant

func encodeRecord(t Tenant) (string, error) {
	rec := redisRecord{DeployInfo: t.DeployInfo, Version: t.Version, CreatedAt: &t.CreatedAt, UpdatedAt: &t.UpdatedAt}
	b, err := json.Marshal(rec)
	return string(b), err
}

func decodeRecord(id, raw string) (Tenant, error) {
	var rec redisRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: malformed record: %w", shorten(id), err)
	}
	t := Tenant{ID: id, DeployInfo: rec.DeployInfo, Version: rec.Version}
	if rec.CreatedAt != nil {
		t.CreatedAt = rec.CreatedAt.UTC()
	}
	if rec.UpdatedAt != nil {
		t.UpdatedAt = rec.UpdatedAt.UTC()
	}
	return t, nil
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

func (r *Redis) checkOpen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return nil
}

// Get implements Store. It reads Redis, not the followed state.
func (r *Redis) Get(ctx context.Context, id string) (Tenant, error) {
	if err := ValidateID(id); err != nil {
		return Tenant{}, err
	}
	if err := r.checkOpen(); err != nil {
		return Tenant{}, err
	}
	raw, err := r.c.HGet(ctx, r.keys.tenants, id).Result()
	if errors.Is(err, redis.Nil) {
		return Tenant{}, notFound(id)
	}
	if err != nil {
		return Tenant{}, r.errorf("get tenant %q: %w", id, err)
	}
	t, err := decodeRecord(id, raw)
	if err != nil {
		return Tenant{}, r.errorf("%w", err)
	}
	return t, nil
}

// List implements Store.
func (r *Redis) List(ctx context.Context) ([]Tenant, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	all, err := r.c.HGetAll(ctx, r.keys.tenants).Result()
	if err != nil {
		return nil, r.errorf("list tenants: %w", err)
	}
	st := r.decodeAll(all, 0, nil)
	return st.list(), nil
}

// decodeAll decodes the tenants hash. A record that does not decode or is
// not a valid tenant (edited by hand, or by a newer tenantsql) is logged
// and left out, or kept as prev knew it: one bad record must neither stop
// every process from following the others nor make them drop a tenant
// nobody deleted.
func (r *Redis) decodeAll(all map[string]string, version int64, prev map[string]Tenant) state {
	st := state{version: version, tenants: make(map[string]Tenant, len(all))}
	for id, raw := range all {
		t, err := decodeValidRecord(id, raw)
		if err != nil {
			r.log.Error("tenantsql: skipping a malformed tenant record", "store", r.name, "err", err)
			if old, ok := prev[id]; ok {
				st.tenants[id] = old
			}
			continue
		}
		st.tenants[id] = t
	}
	return st
}

// decodeValidRecord decodes a record and checks what a reader relies on:
// the id and a postgres URL. Writes ran the full Validate already; running
// it again on every resync would add about 8 µs a record, and the driver
// reports a URL it cannot use when it dials.
func decodeValidRecord(id, raw string) (Tenant, error) {
	t, err := decodeRecord(id, raw)
	if err != nil {
		return Tenant{}, err
	}
	err = ValidateID(id)
	if err == nil {
		if !isPostgresURL(t.PostgresURL()) {
			err = &ValidationError{Field: "deploy_info." + KeyPostgresURL, Reason: "missing, or not a postgres:// URL"}
		}
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: invalid record: %w", shorten(id), err)
	}
	return t, nil
}

// Create implements Store.
func (r *Redis) Create(ctx context.Context, t Tenant) (Tenant, error) {
	if err := Validate(t); err != nil {
		return Tenant{}, err
	}
	if err := r.checkOpen(); err != nil {
		return Tenant{}, err
	}
	at := now()
	t = t.Clone()
	t.Version, t.CreatedAt, t.UpdatedAt = 1, at, at
	rec, err := encodeRecord(t)
	if err != nil {
		return Tenant{}, r.errorf("encode tenant %q: %w", t.ID, err)
	}
	v, err := createScript.Run(ctx, r.c, r.scriptKeys(), t.ID, rec, r.maxLen, newEpoch()).Int64()
	if err != nil {
		return Tenant{}, r.errorf("create tenant %q: %w", t.ID, err)
	}
	if v < 0 {
		return Tenant{}, exists(t.ID)
	}
	r.awaitFollowed(ctx, v)
	return t, nil
}

// Update implements Store. A concurrent update of the same tenant makes it
// retry from the new value, so the version check is exact.
func (r *Redis) Update(ctx context.Context, t Tenant) (Tenant, error) {
	if err := Validate(t); err != nil {
		return Tenant{}, err
	}
	if err := r.checkOpen(); err != nil {
		return Tenant{}, err
	}
	for {
		raw, err := r.c.HGet(ctx, r.keys.tenants, t.ID).Result()
		if errors.Is(err, redis.Nil) {
			return Tenant{}, notFound(t.ID)
		}
		if err != nil {
			return Tenant{}, r.errorf("update tenant %q: %w", t.ID, err)
		}
		cur, err := decodeRecord(t.ID, raw)
		if err != nil {
			return Tenant{}, r.errorf("%w", err)
		}
		if t.Version != 0 && t.Version != cur.Version {
			return Tenant{}, conflict(t.ID, t.Version, cur.Version)
		}
		next := Tenant{ID: t.ID, DeployInfo: t.Clone().DeployInfo, Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: now()}
		rec, err := encodeRecord(next)
		if err != nil {
			return Tenant{}, r.errorf("encode tenant %q: %w", t.ID, err)
		}
		v, err := updateScript.Run(ctx, r.c, r.scriptKeys(), t.ID, raw, rec, r.maxLen, newEpoch()).Int64()
		if err != nil {
			return Tenant{}, r.errorf("update tenant %q: %w", t.ID, err)
		}
		switch v {
		case -2:
			return Tenant{}, notFound(t.ID)
		case -3:
			if err := ctx.Err(); err != nil {
				return Tenant{}, err
			}
			continue // changed under us: start from the new value
		}
		r.awaitFollowed(ctx, v)
		return next, nil
	}
}

// Delete implements Store. While a process keeps tenants that Redis lost
// (see Status.DataLoss), deleting one of them reports false, as Redis
// does not hold it, and every process that kept it drops it.
func (r *Redis) Delete(ctx context.Context, id string) (bool, error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	if err := r.checkOpen(); err != nil {
		return false, err
	}
	v, err := deleteScript.Run(ctx, r.c, r.scriptKeys(), id, r.maxLen, newEpoch()).Int64()
	if err != nil {
		return false, r.errorf("delete tenant %q: %w", id, err)
	}
	if v != 0 {
		r.awaitFollowed(ctx, max(v, -v))
	}
	return v > 0, nil
}

// followWait bounds how long a write waits for this process's follower to
// read it back. The follower hears of the write by pub/sub at once; past
// this, Redis became unreachable right after the write, or pub/sub is
// denied and the follower polls, every check interval.
const followWait = 2 * time.Second

// awaitFollowed returns once this process's follower has published the
// store at version v or later (or found that Redis lost data), so that its
// watchers, the tenantsql driver's registry among them, see the write
// before the call that made it returns (Sequencer). Without watchers in
// this process there is nothing to wait for. The write is done either way:
// if ctx ends or the follower is not there within followWait, the caller
// still gets success, and the change takes effect here when the follower
// reads it, as it does in other processes.
func (r *Redis) awaitFollowed(ctx context.Context, v int64) {
	r.mu.Lock()
	if r.cancel == nil || r.closed {
		r.mu.Unlock()
		return
	}
	// A loss found meanwhile may have taken the write with it, and
	// versions may start again: then there is nothing left to wait for.
	done, losses := r.done, r.losses
	var timeout <-chan time.Time
	for !(r.synced && r.st.version >= v) && r.losses == losses {
		ch := r.followed
		r.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(followWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-timeout:
			r.log.Warn("tenantsql: a write to the tenant store was not read back by this process in time; it takes effect here once it is",
				"store", r.name, "version", v, "wait", followWait)
			return
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
}

// wakeWritersLocked wakes the writes waiting to be read back. r.mu is
// held.
func (r *Redis) wakeWritersLocked() {
	close(r.followed)
	r.followed = make(chan struct{})
}

// Published implements Sequencer.
func (r *Redis) Published() uint64 { return r.hub.published() }

// AcceptLoss asks every process following this store to resync from what
// Redis holds now, dropping tenants it no longer lists: the operator's
// answer to a Redis that lost data (see Status.DataLoss), once the tenants
// that should exist have been restored (tenantsql tenants load) or are
// known to be gone.
func (r *Redis) AcceptLoss(ctx context.Context) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	if err := resyncScript.Run(ctx, r.c, r.scriptKeys(), r.maxLen, newEpoch()).Err(); err != nil {
		return r.errorf("resync: %w", err)
	}
	return nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	if err := r.c.Ping(ctx).Err(); err != nil {
		return r.errorf("%w", err)
	}
	return nil
}

// Status implements StatusReporter.
func (r *Redis) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Watch implements Store. The first event arrives once the follower has
// read Redis, which may be later if Redis is unreachable.
func (r *Redis) Watch(ctx context.Context) (<-chan Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.startOnce.Do(r.startFollowing)
	var initial *Event
	if r.synced {
		ev := r.st.sync()
		ev.DataLoss = r.status.DataLoss
		initial = &ev
	}
	return r.hub.add(ctx, initial, r.snapshot)
}

func (r *Redis) snapshot() (Event, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.st.sync()
	ev.DataLoss = r.status.DataLoss
	return ev, r.hub.published()
}

// Close implements Store: it stops following and closes watch channels,
// and the client if OpenRedis made it.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	r.hub.close()
	if r.ownClient {
		return r.c.Close()
	}
	return nil
}

func (r *Redis) startFollowing() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	f := &follower{r: r}
	go func() {
		defer close(r.done)
		f.run(ctx)
	}()
}

// follower keeps r's followed state in step with Redis and publishes every
// change to r's watchers. It runs in one goroutine.
type follower struct {
	r       *Redis
	synced  bool
	epoch   string
	version int64
	lastID  string // stream position of version; "0-0" when the stream was empty
	lossAt  int64  // version at which DataLoss was detected

	subErr        error // why subscribing fails, while it does
	lastErrLogged string
}

func (f *follower) run(ctx context.Context) {
	r := f.r
	ps := r.c.Subscribe(ctx, r.keys.channel)
	defer ps.Close()
	// ReceiveTimeout only sets a read deadline and does not watch ctx:
	// closing the subscription is what makes Close prompt.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	backoff := 100 * time.Millisecond
	lastCheck := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.check)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !isTimeout(err):
			// Possibly for good (an ACL user without channel
			// permission): the periodic check below keeps the
			// follower right by polling meanwhile.
			f.subErr = err
			f.failed(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		case err == nil:
			f.subErr = nil
			backoff = 100 * time.Millisecond
			switch m := msg.(type) {
			case *redis.Subscription:
				// Subscribed, or subscribed again after a reconnect:
				// whatever was published meanwhile is lost, so read
				// everything.
				if m.Kind == "subscribe" {
					f.step(ctx, f.resync)
					lastCheck = time.Now()
				}
			case *redis.Message:
				// A wake-up for a version already applied is stale. A
				// Redis that rolled back reuses versions; the periodic
				// check finds that.
				if v, err := strconv.ParseInt(m.Payload, 10, 64); err != nil || !f.synced || v > f.version {
					f.step(ctx, f.catchUp)
				}
			}
		}
		if time.Since(lastCheck) >= r.check {
			lastCheck = time.Now()
			if time.Since(r.Status().LastSync) >= r.resyncAll {
				f.step(ctx, f.resync)
			} else {
				f.step(ctx, f.checkVersion)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (f *follower) step(ctx context.Context, fn func(context.Context) error) {
	if err := fn(ctx); err != nil && ctx.Err() == nil {
		f.failed(err)
		return
	}
	f.r.mu.Lock()
	f.r.status.Connected = true
	f.r.status.LastError = ""
	if f.subErr != nil {
		// Reads work, so the follower polls; still say why it cannot
		// subscribe, and log it once rather than at every poll.
		f.r.status.LastError = f.subErr.Error()
	}
	f.r.mu.Unlock()
	if f.subErr == nil {
		f.lastErrLogged = ""
	}
}

func (f *follower) failed(err error) {
	msg := err.Error()
	f.r.mu.Lock()
	f.r.status.Connected = false
	f.r.status.LastError = msg
	f.r.mu.Unlock()
	if msg != f.lastErrLogged {
		f.lastErrLogged = msg
		f.r.log.Warn("tenantsql: cannot follow the tenant store; known tenants stay as they are", "store", f.r.name, "err", err)
	}
}

// checkVersion compares the version counter, the epoch and the stream
// entry applied last with what was applied: a difference means pub/sub
// lost something, or Redis lost data.
func (f *follower) checkVersion(ctx context.Context) error {
	if !f.synced {
		return f.resync(ctx)
	}
	r := f.r
	var (
		vals *redis.SliceCmd
		last *redis.XMessageSliceCmd
	)
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		vals = p.MGet(ctx, r.keys.version, r.keys.epoch)
		if f.lastID != noEntry {
			last = p.XRange(ctx, r.keys.events, f.lastID, f.lastID)
		}
		return nil
	})
	if err != nil {
		return r.errorf("check version: %w", err)
	}
	v, _ := strconv.ParseInt(str(vals.Val()[0]), 10, 64)
	if str(vals.Val()[1]) != f.epoch || v < f.version {
		return f.resync(ctx)
	}
	if last != nil {
		if ents := last.Val(); len(ents) == 0 || parseEntry(ents[0]).v != f.version {
			return f.resync(ctx) // trimmed, or rolled back: resync tells which
		}
	}
	if v > f.version {
		return f.catchUp(ctx)
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// noEntry is the stream position of a follower that has applied no entry.
const noEntry = "0-0"

// resync reads the whole tenant set, its version, epoch and stream
// position in one transaction, and publishes it as a sync.
func (f *follower) resync(ctx context.Context) error {
	r := f.r
	var (
		all      *redis.MapStringStringCmd
		ver      *redis.StringCmd
		epoch    *redis.StringCmd
		accepted *redis.StringCmd
		lastEnt  *redis.XMessageSliceCmd
		firstEnt *redis.XMessageSliceCmd
		applied  *redis.XMessageSliceCmd
	)
	checkStream := f.synced && f.lastID != noEntry
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, r.keys.tenants)
		ver = p.Get(ctx, r.keys.version)
		epoch = p.Get(ctx, r.keys.epoch)
		accepted = p.Get(ctx, r.keys.accepted)
		lastEnt = p.XRevRangeN(ctx, r.keys.events, "+", "-", 1)
		if checkStream {
			firstEnt = p.XRangeN(ctx, r.keys.events, "-", "+", 1)
			applied = p.XRange(ctx, r.keys.events, f.lastID, f.lastID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return r.errorf("resync: %w", err)
	}
	v, _ := strconv.ParseInt(ver.Val(), 10, 64)
	acc, _ := strconv.ParseInt(accepted.Val(), 10, 64)
	lastID := noEntry
	if ents := lastEnt.Val(); len(ents) > 0 {
		lastID = ents[0].ID
	}
	e := epoch.Val()

	lost := f.synced && f.epoch != "" && (e != f.epoch || v < f.version)
	if checkStream && !lost {
		lost = rolledBack(f.lastID, f.version, applied.Val(), firstEnt.Val())
	}
	// Only this goroutine changes r.st and r.kept: reading them without
	// r.mu is safe here, and decoding 10,000 records is better done
	// without holding it.
	prev, kept := r.st.tenants, maps.Clone(r.kept)
	st := r.decodeAll(all.Val(), v, prev)
	accept := false
	switch {
	case lost:
		f.lossAt = v
		if kept == nil {
			kept = make(map[string]Tenant)
		}
		for id, t := range prev {
			if _, ok := st.tenants[id]; !ok {
				kept[id] = t
			}
		}
	case kept != nil && acc > f.lossAt:
		kept, accept = nil, true
	}
	inStore := len(st.tenants)
	for id, t := range kept {
		if _, ok := st.tenants[id]; ok {
			delete(kept, id) // written again: Redis has it
		} else {
			st.tenants[id] = t
		}
	}
	// Logged and marked before anyone can see the new state: whoever
	// reads Status().DataLoss finds the error in the log, and can delete
	// a kept tenant.
	switch {
	case lost:
		r.log.Error("tenantsql: the tenant store lost data it had (Redis restarted without persistence, was flushed, or failed over to a replica that lacked the last writes); "+
			"keeping every tenant known in this process, and following the store from here; restore the tenants (tenantsql tenants load) "+
			"or accept the loss (tenantsql tenants resync)",
			"store", r.name, "tenants_in_store", inStore, "tenants_kept", len(kept), "version_before", f.version, "version_now", v)
	case accept:
		r.log.Info("tenantsql: the loss of tenant store data was accepted; following the store as it is", "store", r.name, "tenants", len(st.tenants))
	}
	if len(kept) > 0 {
		// So that deleting a kept tenant reaches this process although
		// Redis lacks it (see deleteScript); at every resync, in case
		// the mark itself was lost.
		if err := markLostScript.Run(ctx, r.c, r.scriptKeys(), f.lossAt).Err(); err != nil {
			r.log.Warn("tenantsql: cannot mark the tenant store as having lost tenants; deleting one of them will not reach this process", "store", r.name, "err", err)
		}
	}
	r.mu.Lock()
	r.status.DataLoss = kept != nil // data-loss mode is keeping tenants
	r.st, r.kept, r.synced = st, kept, true
	r.status.Version, r.status.LastSync = v, time.Now()
	ev := r.st.sync()
	ev.DataLoss = r.status.DataLoss
	r.hub.publish(ev)
	if lost {
		r.losses++
	}
	r.wakeWritersLocked()
	r.mu.Unlock()
	f.synced, f.epoch, f.version, f.lastID = true, e, v, lastID
	return nil
}

// rolledBack reports whether the stream no longer holds the entry the
// follower applied last (at id, with version) although it was not trimmed
// away: Redis lost writes, and versions after it may be reused.
func rolledBack(id string, version int64, applied, first []redis.XMessage) bool {
	if len(applied) > 0 {
		return parseEntry(applied[0]).v != version
	}
	if len(first) == 0 {
		return true // the stream is gone, never trimmed to nothing
	}
	return !streamIDLess(id, first[0].ID)
}

// streamIDLess compares two stream ids ("ms-seq").
func streamIDLess(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

func splitStreamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

// catchUp reads the stream from the last applied entry and publishes each
// change. That entry missing or changed (trimmed, or Redis rolled back), a
// gap in the versions, or an operator's resync marker means a resync.
func (f *follower) catchUp(ctx context.Context) error {
	if !f.synced {
		return f.resync(ctx)
	}
	r := f.r
	const page = 256
	start, verify := "-", false
	if f.lastID != noEntry {
		start, verify = f.lastID, true
	}
	for {
		ents, err := r.c.XRangeN(ctx, r.keys.events, start, "+", page).Result()
		if err != nil {
			return r.errorf("read events: %w", err)
		}
		n := len(ents)
		if verify {
			if n == 0 || ents[0].ID != f.lastID || parseEntry(ents[0]).v != f.version {
				return f.resync(ctx)
			}
			ents, verify = ents[1:], false
		}
		expect := f.version + 1
		var batch []streamEntry
		for _, m := range ents {
			e := parseEntry(m)
			if e.v < expect {
				if len(batch) == 0 {
					f.lastID = e.sid // applied already
				}
				continue
			}
			if e.v != expect || e.typ == "resync" {
				if err := f.apply(ctx, batch); err != nil {
					return err
				}
				return f.resync(ctx)
			}
			batch = append(batch, e)
			expect++
		}
		if err := f.apply(ctx, batch); err != nil {
			return err
		}
		if n < page {
			return nil
		}
		start = "(" + f.lastID
	}
}

// streamEntry is one event read from the stream.
type streamEntry struct {
	v   int64
	typ string
	id  string
	sid string
}

func parseEntry(m redis.XMessage) streamEntry {
	v, _ := strconv.ParseInt(str(m.Values["v"]), 10, 64)
	return streamEntry{v: v, typ: str(m.Values["t"]), id: str(m.Values["id"]), sid: m.ID}
}

// apply publishes consecutive stream entries, reading the current record
// of each created or updated tenant in one round trip. A record deleted
// since is skipped: its delete follows.
func (f *follower) apply(ctx context.Context, batch []streamEntry) error {
	if len(batch) == 0 {
		return nil
	}
	r := f.r
	var ids []string
	for _, e := range batch {
		if e.typ == "create" || e.typ == "update" {
			ids = append(ids, e.id)
		}
	}
	records := make(map[string]string, len(ids))
	if len(ids) > 0 {
		vals, err := r.c.HMGet(ctx, r.keys.tenants, ids...).Result()
		if err != nil {
			return r.errorf("read tenants: %w", err)
		}
		for i, v := range vals {
			if s, ok := v.(string); ok {
				records[ids[i]] = s
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range batch {
		ev := Event{Version: e.v}
		switch e.typ {
		case "create", "update":
			raw, ok := records[e.id]
			if !ok {
				break
			}
			t, err := decodeValidRecord(e.id, raw)
			if err != nil {
				r.log.Error("tenantsql: skipping a malformed tenant record", "store", r.name, "err", err)
				break
			}
			delete(r.kept, t.ID)
			ev.Type, ev.Tenant = EventUpdate, t
			if _, known := r.st.tenants[t.ID]; !known {
				ev.Type = EventCreate
			}
			r.st.tenants[t.ID] = t
		case "delete":
			delete(r.kept, e.id)
			if t, known := r.st.tenants[e.id]; known {
				delete(r.st.tenants, e.id)
				ev.Type, ev.Tenant = EventDelete, t
			}
		}
		r.st.version = e.v
		if ev.Type != 0 {
			r.hub.publish(ev)
		}
		f.version, f.lastID = e.v, e.sid
	}
	r.status.Version = f.version
	r.wakeWritersLocked()
	return nil
}
