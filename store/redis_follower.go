package store

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// startFollowing starts the follower. r.mu is held.
func (r *Redis) startFollowing() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	f := &follower{r: r}
	go func() {
		defer close(done)
		f.run(ctx)
	}()
}

// follower keeps r's followed state in step with Redis and publishes every
// change to r's watchers. It runs in one goroutine, the only one to use
// its fields.
type follower struct {
	r       *Redis
	synced  bool
	epoch   string
	version int64
	lastID  string // stream position of version; "0-0" when the stream was empty
	// lastKey is what the entry at lastID did (entryKey), "" if unknown:
	// after a failover that lost writes, the new primary may give its own
	// next change the very id and version of a lost one (ids are the
	// server clock's milliseconds, versions count on from the same
	// replicated value), so the id and version alone cannot tell.
	lastKey string
	lossAt  int64 // version at which DataLoss was detected

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
				if !f.stale(m.Payload) {
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
			r.mu.Lock()
			r.checks++
			r.mu.Unlock()
		}
	}
}

// stale reports whether a wake-up ("version entry-id", or "version" from
// an older writer) is for an entry already applied. With the entry id
// that is exact: a Redis that rolled back reuses versions, but not entry
// ids in the history followed, and the write of this process waiting to
// be read back (awaitFollowed) is not kept waiting for the periodic
// check. A version alone is stale when already reached; a reused one is
// left to the periodic check.
func (f *follower) stale(payload string) bool {
	if !f.synced {
		return false
	}
	vs, sid, withID := strings.Cut(payload, " ")
	if withID {
		return f.r.applied.has(sid)
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	return err == nil && v <= f.version
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
	f.r.reloadOnFailure(err)
	msg := err.Error()
	f.r.mu.Lock()
	f.r.status.Connected = false
	f.r.status.LastError = msg
	f.r.mu.Unlock()
	if msg != f.lastErrLogged {
		f.lastErrLogged = msg
		f.r.log.Warn("tenantsql: store: cannot follow Redis; the tenants known stay as they are", "store", f.r.name, "err", err)
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
		if ents := last.Val(); len(ents) == 0 || f.changed(parseEntry(ents[0])) {
			return f.resync(ctx) // trimmed, or rolled back: resync tells which
		}
	}
	if v > f.version {
		return f.catchUp(ctx)
	}
	return nil
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
		mark     *redis.StringCmd
	)
	checkStream := f.synced && f.lastID != noEntry
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, r.keys.tenants)
		ver = p.Get(ctx, r.keys.version)
		epoch = p.Get(ctx, r.keys.epoch)
		accepted = p.Get(ctx, r.keys.accepted)
		lastEnt = p.XRevRangeN(ctx, r.keys.events, "+", "-", resyncEntries)
		mark = r.readSealedMark(ctx, p)
		if checkStream {
			firstEnt = p.XRangeN(ctx, r.keys.events, "-", "+", 1)
			applied = p.XRange(ctx, r.keys.events, f.lastID, f.lastID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return r.errorf("resync: %w", err)
	}
	r.noteSealedMark(mark)
	v, _ := strconv.ParseInt(ver.Val(), 10, 64)
	acc, _ := strconv.ParseInt(accepted.Val(), 10, 64)
	lastID, lastKey := noEntry, ""
	if ents := lastEnt.Val(); len(ents) > 0 {
		lastID, lastKey = ents[0].ID, parseEntry(ents[0]).key()
	}
	e := epoch.Val()

	lost := f.synced && f.epoch != "" && (e != f.epoch || v < f.version)
	if checkStream && !lost {
		lost = f.rolledBack(applied.Val(), firstEnt.Val())
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
		r.log.Error("tenantsql: store: Redis lost data it had (restarted without persistence, flushed, or failed over to a replica that lacked the last writes); "+
			"keeping every tenant known in this process, and following Redis from here; restore the tenants (tenantsql tenants load) "+
			"or accept the loss (tenantsql tenants resync)",
			"store", r.name, "tenants_in_store", inStore, "tenants_kept", len(kept), "version_before", f.version, "version_now", v)
	case accept:
		r.log.Info("tenantsql: store: the loss of data in Redis was accepted; following Redis as it is", "store", r.name, "tenants", len(st.tenants))
	}
	if len(kept) > 0 {
		// So that deleting a kept tenant reaches this process although
		// Redis lacks it (see deleteScript); at every resync, in case
		// the mark itself was lost.
		if err := r.runMarkLost(ctx, f.lossAt); err != nil {
			r.log.Warn("tenantsql: store: cannot mark Redis as having lost tenants; deleting one of them will not reach this process", "store", r.name, "err", err)
		}
	}
	r.mu.Lock()
	r.status.DataLoss = kept != nil // data-loss mode is keeping tenants
	r.st, r.kept, r.synced = st, kept, true
	// The snapshot includes the entries last in the stream when it was
	// read, and no other history.
	r.applied.reset()
	for _, m := range slices.Backward(lastEnt.Val()) {
		r.applied.add(m.ID)
	}
	r.status.Version, r.status.LastSync = v, time.Now()
	ev := r.st.sync()
	ev.DataLoss = r.status.DataLoss
	r.hub.publish(ev)
	if lost {
		r.losses++
	}
	r.resyncs++
	r.wakeWritersLocked()
	r.mu.Unlock()
	f.synced, f.epoch, f.version, f.lastID, f.lastKey = true, e, v, lastID, lastKey
	return nil
}

// rolledBack reports whether the stream no longer holds the entry the
// follower applied last (at id, with version) although it was not trimmed
// away: Redis lost writes, and versions after it may be reused.
func (f *follower) rolledBack(applied, first []redis.XMessage) bool {
	if len(applied) > 0 {
		return f.changed(parseEntry(applied[0]))
	}
	if len(first) == 0 {
		return true // the stream is gone, never trimmed to nothing
	}
	return !streamIDLess(f.lastID, first[0].ID)
}

// changed reports whether e, the entry now at the follower's last
// position, is not the one it applied there.
func (f *follower) changed(e streamEntry) bool {
	return e.v != f.version || f.lastKey != "" && e.key() != f.lastKey
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
			if n == 0 || ents[0].ID != f.lastID || f.changed(parseEntry(ents[0])) {
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
					f.lastID, f.lastKey = e.sid, e.key() // applied already
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
		var (
			get  *redis.SliceCmd
			mark *redis.StringCmd
		)
		_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.HMGet(ctx, r.keys.tenants, ids...)
			mark = r.readSealedMark(ctx, p)
			return nil
		})
		r.noteSealedMark(mark)
		vals, err := get.Result()
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
			t, unopened, err := r.decodeValidRecord(e.id, raw)
			if unopened != nil {
				logUnopened(r.log, r.name, []error{unopened})
			}
			if err != nil {
				r.logBadRecord(err)
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
		r.applied.add(e.sid)
		if ev.Type != 0 {
			r.hub.publish(ev)
		}
		f.version, f.lastID, f.lastKey = e.v, e.sid, e.key()
	}
	r.status.Version = f.version
	r.wakeWritersLocked()
	return nil
}

// followWait bounds how long a write waits for this process's follower to
// read it back. The follower hears of the write by pub/sub at once; past
// this, Redis became unreachable right after the write, or pub/sub is
// denied and the follower polls, every check interval.
const followWait = 2 * time.Second

// awaitFollowed returns once this process's follower has published a
// store that includes the write w (or found that Redis lost data), so that
// its watchers, the tenantsql driver's registry among them, see the write
// before the call that made it returns (Sequencer). Without watchers in
// this process there is nothing to wait for. The write is done either way:
// if ctx ends or the follower is not there within followWait, the caller
// still gets success, and the change takes effect here when the follower
// reads it, as it does in other processes.
//
// The rule is that the follower applied w's stream entry, by its id, not
// that it reached w's version: a Redis that lost its last writes but kept
// its epoch (a failover to a replica that lacked them) gives their
// versions again, so the follower may hold w.v from the lost history.
// Comparing entry ids by order is not enough either: the new master's ids
// follow its own last entry, and may be below ids of the lost history
// (clocks differ). So the follower keeps the ids of the last entries its
// state includes (r.applied): those it applied, and after a resync the
// last ones of the stream it read, atomically with the tenants; w's id
// among them, the wait is over. The wake-up w published carries its id,
// so the follower does not take it for stale (follower.stale).
func (r *Redis) awaitFollowed(ctx context.Context, w written) {
	r.mu.Lock()
	if r.cancel == nil || r.closed {
		r.mu.Unlock()
		return
	}
	// A loss found meanwhile may have taken the write with it, and
	// versions may start again: then there is nothing left to wait for.
	done, losses := r.done, r.losses
	var timeout <-chan time.Time
	for !(r.synced && r.applied.has(w.sid)) && r.losses == losses {
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
			r.log.Warn("tenantsql: store: a write was not read back from Redis by this process in time; it takes effect here once it is",
				"store", r.name, "version", w.v, "entry", w.sid, "wait", followWait)
			return
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
}

// resyncEntries is how many of the stream's last entries a resync reads,
// to know that its snapshot includes them (awaitFollowed): a write whose
// entry is one of them has been read back.
const resyncEntries = 64

// maxApplied bounds the entry ids an entrySet keeps: a write waits to be
// read back right after it is made, when its entry is among the last few
// the follower applied.
const maxApplied = 1024

// An entrySet holds the ids of the last stream entries added to it, up to
// maxApplied. Its zero value is empty.
type entrySet struct {
	ids   map[string]struct{}
	order []string // ring of the ids in ids, the oldest at next
	next  int
}

func (s *entrySet) has(id string) bool {
	_, ok := s.ids[id]
	return id != "" && ok
}

func (s *entrySet) add(id string) {
	if s.ids == nil {
		s.ids = make(map[string]struct{})
	}
	if _, ok := s.ids[id]; ok {
		return
	}
	if len(s.order) < maxApplied {
		s.order = append(s.order, id)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % maxApplied
	}
	s.ids[id] = struct{}{}
}

func (s *entrySet) reset() {
	clear(s.ids)
	s.order, s.next = s.order[:0], 0
}

// wakeWritersLocked wakes the writes waiting to be read back. r.mu is
// held.
func (r *Redis) wakeWritersLocked() {
	close(r.followed)
	r.followed = make(chan struct{})
}
