package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// A change made through one store reaches the watchers of another, and no
// password travels in the event stream or on the channel.
func TestRedisPropagation(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a, b := openRedis(t, u, prefix), openRedis(t, u, prefix)
	fb := startFollow(t, b)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the first sync", func() bool { return fb.has() })

	spy := rawRedis(t, u)
	sub := spy.Subscribe(ctx, "{"+prefix+"}:changes")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := a.Create(ctx, newTenant("t1", "one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t1 in the other store", func() bool { return fb.has("t1") })
	if _, err := a.Update(ctx, newTenant("t1", "uno")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t1's update", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		tn, _ := fb.tr.Get("t1")
		return strings.HasSuffix(tn.PostgresURL(), "/uno")
	})
	if ok, err := a.Delete(ctx, "t1"); err != nil || !ok {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	if ok, err := a.Delete(ctx, "t1"); err != nil || ok {
		t.Fatalf("second delete: %v, %v; want false, nil", ok, err)
	}
	waitFor(t, 5*time.Second, "t1's delete", func() bool { return fb.count() == 0 })

	msg, err := sub.ReceiveTimeout(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := msg.(*redis.Message); !ok || strings.Contains(m.Payload, "hunter2") {
		t.Errorf("channel message %v", msg)
	}
	ents, err := spy.XRange(ctx, "{"+prefix+"}:events", "-", "+").Result()
	if err != nil || len(ents) != 3 {
		t.Fatalf("stream: %d entries, %v; want 3", len(ents), err)
	}
	for _, e := range ents {
		if strings.Contains(fmt.Sprint(e.Values), "hunter2") {
			t.Errorf("stream entry %v holds a password", e.Values)
		}
	}
}

// A wake-up lost on the way (a change written without PUBLISH, as when
// pub/sub drops it) is found by the periodic version check; a gap in the
// stream's versions right after the entry the follower applied last (that
// entry still there, the next version's entry deleted) leads to a resync.
func TestRedisLostWakeUpAndGap(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	s := openRedis(t, u, prefix)
	fs := startFollow(t, s)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the first sync", func() bool { return fs.has() })
	raw := rawRedis(t, u)
	k := newRedisKeys(prefix)
	record := func(id string) string {
		t.Helper()
		rec, err := encodeRecord(Tenant{ID: id, DeployInfo: dbInfo(id), Version: 1, CreatedAt: now(), UpdatedAt: now()})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	// Lost wake-up: the stream and counter are right, the message never came.
	v, err := raw.Incr(ctx, k.version).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, k.tenants, "silent", record("silent")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.XAdd(ctx, &redis.XAddArgs{Stream: k.events, Values: []any{"v", v, "t", "create", "id", "silent"}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the silently created tenant", func() bool { return fs.has("silent") })

	// Gap: versions v+1 (tenant hidden) and v+2 (tenant after) are
	// written in one transaction, and v+1's stream entry deleted. The
	// entry of v, which the follower applied last, stays: catching up
	// from it reads v+2 next, which only the gap check notices.
	last, err := raw.XRevRangeN(ctx, k.events, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("the stream's last entry: %v, %v", last, err)
	}
	ms, seq := splitStreamID(last[0].ID)
	id1, id2 := fmt.Sprintf("%d-%d", ms, seq+1), fmt.Sprintf("%d-%d", ms, seq+2)
	if _, err := raw.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.tenants, "hidden", record("hidden"), "after", record("after"))
		p.XAdd(ctx, &redis.XAddArgs{Stream: k.events, ID: id1, Values: []any{"v", v + 1, "t", "create", "id", "hidden"}})
		p.XAdd(ctx, &redis.XAddArgs{Stream: k.events, ID: id2, Values: []any{"v", v + 2, "t", "create", "id", "after"}})
		p.XDel(ctx, k.events, id1)
		p.Set(ctx, k.version, v+2, 0)
		p.Publish(ctx, k.channel, v+2)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.XLen(ctx, k.events).Result(); err != nil || n < 2 {
		t.Fatalf("XLEN = %d, %v: the fixture must leave the entry applied last in the stream", n, err)
	}
	waitFor(t, 5*time.Second, "the tenant after the gap", func() bool { return fs.has("after") })
	if !fs.has("silent", "hidden", "after") {
		t.Fatal("a gap in the stream's versions was not detected: the follower applied the entry after the gap " +
			"and never resynced, so tenant \"hidden\" (created at the missing version) is unknown to it")
	}
}

// Redis restarted (with its data) while a process followed it, and a
// tenant created in between: the process has it within seconds of Redis
// coming back, and never dropped the others meanwhile.
func TestRedisRestart(t *testing.T) {
	srv := testenv.StartRedis(t, true)
	prefix := "restart"
	a := openRedis(t, srv.URL(), prefix)
	b := openRedis(t, srv.URL(), prefix)
	ctx := context.Background()
	if _, err := a.Create(ctx, newTenant("before", "db")); err != nil {
		t.Fatal(err)
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "the tenant created before", func() bool { return fb.has("before") })

	srv.Kill()
	waitFor(t, 5*time.Second, "the follower to notice", func() bool { return !b.Status().Connected })
	if !fb.has("before") {
		t.Fatal("tenants were dropped while Redis was down")
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping while Redis is down: nil")
	}
	srv.Start()
	if _, err := a.Create(ctx, newTenant("during", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the tenant created after the restart", func() bool { return fb.has("before", "during") })
	if st := b.Status(); !st.Connected || st.DataLoss {
		t.Errorf("status after recovery: %+v", st)
	}
}

// loseData creates t1 and t2 through a, has b (made with opts) follow
// them, then restarts Redis empty, as one without persistence comes back,
// and creates t3 through a. It returns once b has t3; b should keep t1
// and t2, which Redis no longer lists.
func loseData(t *testing.T, opts ...RedisOption) (srv *testenv.RedisServer, a, b *Redis, fb *follow) {
	t.Helper()
	srv = testenv.StartRedis(t, false)
	a = openRedis(t, srv.URL(), "loss")
	b = openRedis(t, srv.URL(), "loss", opts...)
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	fb = startFollow(t, b)
	waitFor(t, 5*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })
	srv.Kill()
	srv.Start() // empty
	if _, err := a.Create(ctx, newTenant("t3", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "t3 after the loss", func() bool { return fb.has("t3") })
	return srv, a, b, fb
}

// Redis restarted empty: processes keep the tenants they know, say so
// loudly, keep applying new changes, and drop tenants only when an
// operator accepts the loss.
func TestRedisDataLoss(t *testing.T) {
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the follower's log:\n%s", logs.String())
		}
	})
	_, a, b, fb := loseData(t, WithRedisLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()
	if !fb.has("t1", "t2", "t3") {
		t.Fatal("tenants the empty Redis no longer lists were dropped")
	}
	if !b.Status().DataLoss {
		t.Error("Status().DataLoss is false after Redis came back empty")
	}
	if !strings.Contains(logs.String(), "lost data") {
		t.Errorf("no error logged about the loss:\n%s", logs.String())
	}
	// Changes after the loss still apply, deletes included.
	if _, err := a.Create(ctx, newTenant("t4", "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete(ctx, "t3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t4 in and t3 out", func() bool { return fb.has("t1", "t2", "t4") && !fb.has("t3") })

	if err := a.AcceptLoss(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the accepted resync", func() bool { return fb.has("t4") && fb.count() == 1 })
	if b.Status().DataLoss {
		t.Error("DataLoss still set after the accepted resync")
	}
}

// An operator's AcceptLoss must reach a follower that resyncs past the
// marker instead of reading it (here: its subscription dropped at that
// moment), not leave it in data-loss mode for good.
func TestRedisAcceptLossMissedMarker(t *testing.T) {
	srv, a, b, fb := loseData(t)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the loss noticed", func() bool { return fb.has("t1", "t2", "t3") && b.Status().DataLoss })

	raw := rawRedis(t, srv.URL())
	if err := raw.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.AcceptLoss(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the accepted resync", func() bool { return !b.Status().DataLoss && fb.count() == 1 && fb.has("t3") })
}

// rollBack creates t1, t2 and t3 through a, has b (resyncing every
// resync) follow them, then makes Redis lose the last write, the create
// of t3, as a failover to a replica that lacked it would: the record, its
// stream entry and its version go, the epoch stays.
func rollBack(t *testing.T, u, prefix string, resync time.Duration, opts ...RedisOption) (a, b *Redis, fb *follow) {
	t.Helper()
	a = openRedis(t, u, prefix)
	b = openRedis(t, u, prefix, append([]RedisOption{WithRedisResyncInterval(resync)}, opts...)...)
	ctx := context.Background()
	for _, id := range []string{"t1", "t2", "t3"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	fb = startFollow(t, b)
	waitFor(t, 5*time.Second, "t1..t3", func() bool { return fb.has("t1", "t2", "t3") })
	raw := rawRedis(t, u)
	k := newRedisKeys(prefix)
	lastEnts, err := raw.XRevRangeN(ctx, k.events, "+", "-", 1).Result()
	if err != nil || len(lastEnts) != 1 {
		t.Fatalf("the stream's last entry: %v, %v", lastEnts, err)
	}
	last := lastEnts[0]
	if _, err := raw.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k.tenants, "t3")
		p.XDel(ctx, k.events, last.ID)
		p.Set(ctx, k.version, 2, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return a, b, fb
}

// A Redis that loses its last writes but keeps its epoch (a failover to a
// replica that had not received them) then reuses their versions. The
// follower must see the new writes and report the loss, not skip them as
// applied, nor later read the lost tenant as deleted.
func TestRedisRollbackDetected(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	// Wake-ups for reused versions look stale; the periodic check (every
	// 100ms here) is what must notice.
	a, b, fb := rollBack(t, u, prefix, 500*time.Millisecond)
	ctx := context.Background()
	if _, err := a.Create(ctx, newTenant("x", "db")); err != nil { // reuses version 3
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "x, created after the rollback", func() bool { return fb.has("x") })
	if !b.Status().DataLoss {
		t.Error("Status().DataLoss is false after a rollback")
	}
	// Several full resyncs later the rolled-back tenant is still served.
	waitResyncs(t, b, 3)
	if !fb.has("t1", "t2", "t3", "x") {
		t.Error("the rolled-back tenant t3 was dropped without an explicit delete")
	}
}

// A record nobody can read (edited by hand) is skipped and logged: other
// tenants still sync, and a tenant known before keeps its last good value.
func TestRedisMalformedRecord(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	var logs syncBuffer
	a := openRedis(t, u, prefix)
	b := openRedis(t, u, prefix, WithRedisLogger(slog.New(slog.NewTextHandler(&logs, nil))), WithRedisResyncInterval(300*time.Millisecond))
	ctx := context.Background()
	for _, id := range []string{"good", "known"} {
		if _, err := a.Create(ctx, newTenant(id, "db_"+id)); err != nil {
			t.Fatal(err)
		}
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "good and known", func() bool { return fb.has("good", "known") })

	raw := rawRedis(t, u)
	k := newRedisKeys(prefix)
	raw.HSet(ctx, k.tenants, "bad", "not json", "known", `{"deploy_info": {"POSTGRES_URL": "mysql://h/x"}}`)
	if _, err := a.Create(ctx, newTenant("later", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a tenant created after the bad records", func() bool { return fb.has("later") })
	waitResyncs(t, b, 1)
	fb.mu.Lock()
	known, ok := fb.tr.Get("known")
	_, hasBad := fb.tr.Get("bad")
	fb.mu.Unlock()
	if !ok || !strings.HasSuffix(known.PostgresURL(), "/db_known") {
		t.Errorf("known = %v, %v; want its last good record", known, ok)
	}
	if hasBad {
		t.Error("the malformed record was delivered as a tenant")
	}
	for _, want := range []string{`tenant \"bad\": malformed record`, `tenant \"known\": invalid record`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// A fresh process starts from what can be read.
	c := openRedis(t, u, prefix)
	got, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(ids(got), ","); g != "good,later" {
		t.Errorf("List = %s, want good,later", g)
	}
}

// A worker whose ACL user may read the keys but not subscribe (Redis 7's
// default for new users is resetchannels) still follows the store, by
// polling, and says why it cannot subscribe.
func TestRedisFollowsWithoutSubscribe(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	ctx := context.Background()
	raw := rawRedis(t, srv.URL())
	if err := raw.Do(ctx, "ACL", "SETUSER", "worker", "on", ">pw", "~{acl}:*", "+@all", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	admin := openRedis(t, srv.URL(), "acl")
	if _, err := admin.Create(ctx, newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	w := openRedis(t, strings.Replace(srv.URL(), "redis://", "redis://worker:pw@", 1), "acl")
	fw := startFollow(t, w)
	waitFor(t, 5*time.Second, "the first sync", func() bool { return fw.has("t1") })
	if _, err := admin.Create(ctx, newTenant("t2", "db")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "t2 by polling", func() bool { return fw.has("t2") })
	if st := w.Status(); !strings.Contains(st.LastError, "NOPERM") {
		t.Errorf("Status().LastError = %q, want the subscribe error", st.LastError)
	}
}

// Close does not wait for the follower's next check.
func TestRedisCloseDoesNotWaitForCheck(t *testing.T) {
	s, err := OpenRedis(context.Background(), testenv.RedisURL(t), WithRedisPrefix(testenv.RedisPrefix(t)), WithRedisCheckInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still blocked after 10s with a check interval of an hour")
	}
}

// A tenant kept after a data loss (Redis no longer has it) goes away when
// it is deleted: Delete reports that Redis had nothing, but every process
// that kept it drops it.
func TestRedisKeptTenantDeleted(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a, b, fb := rollBack(t, u, prefix, 300*time.Millisecond)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the loss noticed", func() bool { return b.Status().DataLoss })
	if !fb.has("t3") {
		t.Fatal("t3 was dropped by the loss")
	}
	deleted, err := a.Delete(ctx, "t3")
	if err != nil || deleted {
		t.Errorf("Delete(t3) = %v, %v; want false (Redis lacks it), nil", deleted, err)
	}
	waitFor(t, 5*time.Second, "t3 deleted", func() bool { return fb.has("t1", "t2") && !fb.has("t3") })
	waitResyncs(t, b, 2) // full resyncs must not bring it back
	if fb.has("t3") {
		t.Error("t3 came back after its delete")
	}
}

// After a failover that lost writes, the new primary may give its next
// change the very stream id and version of a lost one the follower
// applied (ids are milliseconds of one clock, versions count on from the
// same replicated value): only what the entry did tells the histories
// apart, and the follower must take it for a rollback, not carry on.
func TestFollowerSeesAnotherHistoryAtItsPosition(t *testing.T) {
	at := func(id, typ, tenant string, v int64) redis.XMessage {
		return redis.XMessage{ID: id, Values: map[string]any{"v": strconv.FormatInt(v, 10), "t": typ, "id": tenant}}
	}
	f := &follower{lastID: "1700000000000-0", version: 7, lastKey: streamEntry{typ: "create", id: "w0-228"}.key()}
	first := []redis.XMessage{at("1600000000000-0", "create", "a", 1)}
	tests := []struct {
		name    string
		applied []redis.XMessage
		want    bool
	}{
		{"the entry applied", []redis.XMessage{at(f.lastID, "create", "w0-228", 7)}, false},
		{"same id and version, another change", []redis.XMessage{at(f.lastID, "update", "w1-78", 7)}, true},
		{"same id, another version", []redis.XMessage{at(f.lastID, "create", "w0-228", 6)}, true},
		{"gone, older than the stream's first", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.rolledBack(tt.applied, first); got != tt.want {
				t.Errorf("rolledBack = %v, want %v", got, tt.want)
			}
		})
	}
	// A follower that does not know what its entry did (a resync found
	// none) goes by id and version, as before.
	unknown := &follower{lastID: f.lastID, version: 7}
	if unknown.rolledBack([]redis.XMessage{at(f.lastID, "update", "w1-78", 7)}, first) {
		t.Error("without a known entry, the same id and version must not count as a rollback")
	}
}
