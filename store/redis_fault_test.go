package store

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// rawRedis returns a plain client on url, to change the store's keys
// behind its back.
func rawRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// An operator's AcceptLoss must reach a follower that resyncs past the
// marker instead of reading it (here: its subscription dropped at that
// moment), not leave it in data-loss mode for good.
func TestRedisAcceptLossMissedMarker(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	a := openRedis(t, srv.URL(), "loss")
	b := openRedis(t, srv.URL(), "loss")
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })
	srv.Kill()
	srv.Start() // empty
	if _, err := a.Create(ctx, newTenant("t3", "db")); err != nil {
		t.Fatal(err)
	}
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
func rollBack(t *testing.T, u, prefix string, resync time.Duration) (a, b *Redis, fb *follow) {
	t.Helper()
	a = openRedis(t, u, prefix)
	b = openRedis(t, u, prefix, WithRedisResyncInterval(resync))
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
	last := raw.XRevRangeN(ctx, k.events, "+", "-", 1).Val()[0]
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
	time.Sleep(1500 * time.Millisecond)
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
	time.Sleep(700 * time.Millisecond) // at least one full resync
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

// A Redis URL that does not parse is named redacted, and the reason does
// not quote the part net/url stumbled on, which may be the password.
func TestOpenRedisBadURLHidesPassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:s3cr/et@host:6379",
		"redis://:pa%zzs3cr@host:6379",
	} {
		_, err := OpenRedis(context.Background(), u)
		if err == nil {
			t.Fatalf("OpenRedis(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "s3cr") {
			t.Errorf("OpenRedis error shows the password: %v", err)
		}
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
	time.Sleep(700 * time.Millisecond) // full resyncs must not bring it back
	if fb.has("t3") {
		t.Error("t3 came back after its delete")
	}
}
