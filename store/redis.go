package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantsql/tenantsql/keyring"
)

// Redis is a Store kept in Redis, shared by every process that opens it.
//
// All keys live under one hash tag ("{PREFIX}:..."), so the store works on
// Redis Cluster as on a single node or behind Sentinel:
//
//	{PREFIX}:tenants   hash, tenant id -> JSON record
//	{PREFIX}:version   counter, bumped by every mutation
//	{PREFIX}:events    stream of (version, type, id), trimmed to about
//	                   WithRedisStreamLength entries; no deploy info, so no
//	                   password, travels in it
//	{PREFIX}:epoch     random id written with the first data
//	{PREFIX}:accepted  version of the operator's last AcceptLoss
//	{PREFIX}:lost      set while some process keeps tenants Redis lost
//	{PREFIX}:changes   pub/sub channel: a wake-up carrying the version
//	                   and the id of the stream entry ("v ms-seq")
//	{PREFIX}:sealed    set to 1 by the first write of a process with
//	                   keys (WithRedisKeys): processes without keys then
//	                   refuse to create or update (ErrNoKeys; deletes
//	                   write no secret, and older tenantsql versions do
//	                   not check the key); set to "all" by a
//	                   rekey that left no secret in clear: processes with
//	                   keys then refuse a secret in clear (ErrPlaintext)
//
// Every mutation is one Lua script: the change, the version bump and the
// event are atomic, and create-if-absent cannot succeed twice.
//
// Watchers are fed by one follower goroutine per Redis value. It
// subscribes to the channel, then reads a consistent snapshot, then reads
// the stream from where the snapshot stood whenever a wake-up arrives.
// Pub/sub loses messages across a reconnect, so every (re)subscription,
// every gap in the versions (a trimmed stream) and a periodic check of
// the version counter (WithRedisCheckInterval) lead to a resync. A Redis
// that comes back without the data the follower had seen (restarted without
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
	// Set by the constructor, then only read.
	c         redis.UniversalClient
	ownClient bool // Close closes c: OpenRedis made it
	keys      redisKeys
	log       *slog.Logger
	check     time.Duration
	resyncAll time.Duration
	maxLen    int64
	name      string // redacted URL, for messages
	kr        *keyring.Keyring

	// strict is set once this process, with keys, has seen the sealed key
	// at sealedAll (or set it): from then it refuses a secret in clear
	// (ErrPlaintext). It is never cleared, so that deleting the key is not
	// enough to slip a value in clear past a running process.
	strict atomic.Bool

	startOnce sync.Once // starts the follower, at the first Watch

	// mu guards the fields below it, with one exception: the follower
	// goroutine is the only one that changes st and kept, so it reads
	// them without mu.
	mu     sync.Mutex
	cancel context.CancelFunc // stops the follower; nil until it starts
	done   chan struct{}      // closed when the follower has stopped
	st     state              // the last state followed, for new watchers
	kept   map[string]Tenant  // in st although Redis lost them (data-loss mode)
	synced bool               // st was read from Redis
	status Status
	closed bool
	// followed is closed and replaced whenever the follower has applied
	// something, waking the writes that wait to be read back
	// (awaitFollowed); losses counts the data losses it found.
	followed chan struct{}
	losses   int
	// applied holds the ids of the last stream entries st is known to
	// include, in the history it was read from (see awaitFollowed).
	applied entrySet
	// resyncs counts the full resyncs the follower completed, so that
	// tests wait for the next ones instead of sleeping.
	resyncs int
	checks  int // periodic checks done, likewise

	// hub has a lock of its own; events are published with mu held, so
	// that they reach watchers in the order they were applied.
	hub hub
}

var (
	_ Store     = (*Redis)(nil)
	_ Sequencer = (*Redis)(nil)
)

type redisKeys struct {
	tenants, version, events, epoch, channel, accepted, lost, sealed string
}

func newRedisKeys(prefix string) redisKeys {
	p := "{" + prefix + "}:"
	return redisKeys{tenants: p + "tenants", version: p + "version", events: p + "events", epoch: p + "epoch",
		channel: p + "changes", accepted: p + "accepted", lost: p + "lost", sealed: p + "sealed"}
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

// OpenRedis opens the store in Redis at rawURL:
//
//	redis://[user:password@]host:port[/db][?options]
//	rediss://...                                        TLS
//	redis://host:port?addr=host2:port&addr=host3:port   Cluster (several addresses, or cluster=true)
//	redis://sentinel:26379?master_name=mymaster         Sentinel
//
// Options of the store itself: prefix=NAME, check=DURATION,
// resync=DURATION, stream_length=N; every other option is go-redis's (dial_timeout=3s,
// pool_size=10, ...). opts override the URL. In a Sentinel URL, the user and
// password before the host authenticate to the Sentinel; those of the primary
// and replicas go in username= and password=, as go-redis reads it
// (redis.ParseFailoverURL).
func OpenRedis(ctx context.Context, rawURL string, opts ...RedisOption) (*Redis, error) {
	name := RedactURL(rawURL)
	c, o, err := parseRedisURL(rawURL, name)
	if err != nil {
		return nil, err
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
	r := &Redis{c: c, keys: newRedisKeys(o.prefix), log: o.log, check: o.check, resyncAll: o.resyncAll, maxLen: o.maxLen, name: name, kr: o.keys, st: newState(), followed: make(chan struct{})}
	// Reach Redis once, so a wrong address or password fails here, and
	// mark the data with an epoch if it has none.
	if err := c.SetNX(ctx, r.keys.epoch, newEpoch(), 0).Err(); err != nil {
		if msg := err.Error(); o.sentinelUserinfo && (strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "WRONGPASS")) {
			return nil, r.errorf("%w (behind Sentinel, the password before the host is the Sentinel's: give the primary's as password=..., and its user as username=...)", err)
		}
		return nil, r.errorf("%w", err)
	}
	return r, nil
}

func (r *Redis) errorf(format string, args ...any) error {
	return fmt.Errorf("store: redis %s: "+format, append([]any{r.name}, args...)...)
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
	var get, mark *redis.StringCmd
	// Each command's error is its own: a missing tenant or sealed key
	// answers redis.Nil.
	_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGet(ctx, r.keys.tenants, id)
		mark = r.readSealedMark(ctx, p)
		return nil
	})
	r.noteSealedMark(mark)
	raw, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return Tenant{}, notFound(id)
	}
	if err != nil {
		r.reloadOnFailure(err)
		return Tenant{}, r.errorf("get tenant %q: %w", id, err)
	}
	t, err := decodeRecord(id, raw)
	if err != nil {
		return Tenant{}, r.errorf("%w", err)
	}
	if err := r.checkPlaintext(t); err != nil {
		return Tenant{}, r.errorf("%w", err)
	}
	// A value that cannot be opened stays sealed, as in List and in
	// what watchers see: the tenant is there, unusable; the log says why.
	var unopened error
	if t.DeployInfo, unopened = openInfo(r.kr, id, t.DeployInfo); unopened != nil {
		logUnopened(r.log, r.name, []error{unopened})
	}
	return t, nil
}

// sealedAll is the value of the sealed key once a rekey has left no
// secret in clear.
const sealedAll = "all"

// readSealedMark adds to p the read of the sealed key, if this process
// has keys and is not strict yet, and returns the command, or nil.
// noteSealedMark takes its answer in once p has run: with the records it
// was read with, so that they are checked as the store was marked then.
func (r *Redis) readSealedMark(ctx context.Context, p redis.Pipeliner) *redis.StringCmd {
	if r.kr == nil || r.strict.Load() {
		return nil
	}
	return p.Get(ctx, r.keys.sealed)
}

// noteSealedMark makes this process strict if mark, from readSealedMark,
// found the store sealed all through.
func (r *Redis) noteSealedMark(mark *redis.StringCmd) {
	if mark != nil && mark.Val() == sealedAll {
		r.strict.Store(true)
	}
}

// checkPlaintext returns a *PlaintextError if this process is strict and
// t, as read from Redis, holds a secret in clear.
func (r *Redis) checkPlaintext(t Tenant) error {
	if r.kr == nil || !r.strict.Load() {
		return nil
	}
	return checkNoPlaintext(t.ID, t.DeployInfo)
}

// encode returns t's record, its secrets sealed.
func (r *Redis) encode(t Tenant) (string, error) {
	info, err := sealInfo(r.kr, t.ID, t.DeployInfo)
	if err != nil {
		return "", err
	}
	t.DeployInfo = info
	return encodeRecord(t)
}

// List implements Store.
func (r *Redis) List(ctx context.Context) ([]Tenant, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	var (
		get  *redis.MapStringStringCmd
		mark *redis.StringCmd
	)
	_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, r.keys.tenants)
		mark = r.readSealedMark(ctx, p)
		return nil
	})
	r.noteSealedMark(mark)
	all, err := get.Result()
	if err != nil {
		r.reloadOnFailure(err)
		return nil, r.errorf("list tenants: %w", err)
	}
	st := r.decodeAll(all, 0, nil)
	return st.list(), nil
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
	rec, err := r.encode(t)
	if err != nil {
		return Tenant{}, r.errorf("encode tenant %q: %w", t.ID, err)
	}
	res, w, err := r.runCreate(ctx, t.ID, rec)
	if err != nil {
		return Tenant{}, r.errorf("create tenant %q: %w", t.ID, err)
	}
	switch res {
	case scriptExists:
		return Tenant{}, exists(t.ID)
	case scriptNoKeys:
		return Tenant{}, r.errorf("create tenant %q: %w", t.ID, ErrNoKeys)
	}
	r.awaitFollowed(ctx, w)
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
			r.reloadOnFailure(err)
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
		rec, err := r.encode(next)
		if err != nil {
			return Tenant{}, r.errorf("encode tenant %q: %w", t.ID, err)
		}
		res, w, err := r.runUpdate(ctx, t.ID, raw, rec)
		if err != nil {
			return Tenant{}, r.errorf("update tenant %q: %w", t.ID, err)
		}
		switch res {
		case scriptNotFound:
			return Tenant{}, notFound(t.ID)
		case scriptNoKeys:
			return Tenant{}, r.errorf("update tenant %q: %w", t.ID, ErrNoKeys)
		case scriptChanged:
			if err := ctx.Err(); err != nil {
				return Tenant{}, err
			}
			continue // changed under us: start from the new value
		}
		r.awaitFollowed(ctx, w)
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
	res, w, err := r.runDelete(ctx, id)
	if err != nil {
		return false, r.errorf("delete tenant %q: %w", id, err)
	}
	if res == scriptNotFound {
		return false, nil
	}
	r.awaitFollowed(ctx, w)
	return res == scriptWrote, nil
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
	if err := r.runResync(ctx); err != nil {
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
		r.reloadOnFailure(err)
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
