package store

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Redis flushed (a private server: FLUSHALL), then written to until its
// version passes the one the follower had: the version never went back
// where the follower could see it (wake-ups for versions it had are stale,
// and the periodic check is an hour away), so only the new epoch tells
// that the data is not the data it followed. The follower must report the
// loss and keep t1 and t2.
func TestRedisDataLossVersionPassed(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	a := openRedis(t, srv.URL(), "flushed")
	b := openRedis(t, srv.URL(), "flushed", WithRedisCheckInterval(time.Hour))
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })
	if v := b.Status().Version; v != 2 {
		t.Fatalf("version before the flush = %d, want 2", v)
	}
	raw := rawRedis(t, srv.URL())
	if err := raw.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} { // versions 1, 2, 3
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the follower past version 3", func() bool { return b.Status().Version >= 3 && fb.has("n3") })
	if !b.Status().DataLoss {
		t.Error("Redis was flushed (new epoch) and written past the old version, but Status().DataLoss is false")
	}
	if !fb.has("t1", "t2", "n1", "n2", "n3") {
		t.Error("tenants the flushed Redis no longer lists were dropped without a delete: the new epoch was not taken as a data loss")
	}
}

// A follower that synced while the stream was empty (trimmed to nothing:
// it has no entry to check) sees the version counter go back, the last
// write lost with its tenant: only the version clause of the data-loss
// check tells a loss from a delete.
func TestRedisDataLossVersionBack(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a := openRedis(t, u, prefix)
	b := openRedis(t, u, prefix)
	ctx := context.Background()
	for _, id := range []string{"t1", "t2", "t3"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawRedis(t, u)
	k := newRedisKeys(prefix)
	if err := raw.XTrimMaxLen(ctx, k.events, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "t1..t3", func() bool { return fb.has("t1", "t2", "t3") })
	if st := b.Status(); st.Version != 3 || st.DataLoss {
		t.Fatalf("status before the rollback: %+v", st)
	}
	if _, err := raw.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k.tenants, "t3")
		p.Set(ctx, k.version, 2, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitChecks(t, b, 3)
	if v := b.Status().Version; v != 2 {
		t.Fatalf("three periodic checks after the version counter went back (3 to 2), the follower is at version %d: the check did not notice the counter going back", v)
	}
	if !b.Status().DataLoss {
		t.Error("the version counter went back (3 to 2, same epoch) but Status().DataLoss is false")
	}
	if !fb.has("t1", "t2", "t3") {
		t.Error("t3, lost with the version counter going back, was dropped as if deleted: the version clause of the data-loss check did not fire")
	}
}

// A rollback (the last write lost, its version reused), then writes past
// the old version, the follower woken by pub/sub only (the periodic check
// is an hour away). Catching up from the entry it applied last, which is
// gone, must resync (and find the loss), not skip the first entry it
// reads as if it were that one.
func TestRedisRollbackThenWakeUps(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	a, b, fb := rollBack(t, u, prefix, time.Hour, WithRedisCheckInterval(time.Hour))
	ctx := context.Background()
	for _, id := range []string{"x", "y"} { // versions 3 (reused) and 4
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the follower at version 4", func() bool { return b.Status().Version == 4 && fb.has("y") })
	if !fb.has("x") {
		t.Error("x, created at the reused version 3, was skipped: catching up from a stream entry that is gone did not resync")
	}
	if !b.Status().DataLoss {
		t.Error("Status().DataLoss is false after a rollback followed by new writes")
	}
	if !fb.has("t1", "t2", "t3") {
		t.Error("the rolled-back tenant t3 was dropped without a delete")
	}
}

// A follower that synced while the stream was empty (no entry to check)
// sees Redis flushed and written again up to the same version, the
// wake-ups lost: the version is the same; only the periodic check's epoch
// comparison notices, long before the next full resync.
func TestRedisDataLossSameVersion(t *testing.T) {
	srv := testenv.StartRedis(t, false)
	a := openRedis(t, srv.URL(), "same")
	b := openRedis(t, srv.URL(), "same", WithRedisResyncInterval(time.Hour))
	ctx := context.Background()
	for _, id := range []string{"t1", "t2"} {
		if _, err := a.Create(ctx, newTenant(id, "db")); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawRedis(t, srv.URL())
	if err := raw.XTrimMaxLen(ctx, newRedisKeys("same").events, 0).Err(); err != nil {
		t.Fatal(err)
	}
	fb := startFollow(t, b)
	waitFor(t, 5*time.Second, "t1 and t2", func() bool { return fb.has("t1", "t2") })
	if err := raw.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Written as the scripts do, but without the wake-ups: a wake-up
	// carries its stream entry's id, which the follower has not applied,
	// so it would catch up, and might find the loss otherwise.
	k := newRedisKeys("same")
	for i, id := range []string{"n1", "n2"} { // versions 1 and 2 again
		tn := newTenant(id, "db")
		tn.Version, tn.CreatedAt, tn.UpdatedAt = 1, now(), now()
		rec, err := encodeRecord(tn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetNX(ctx, k.epoch, newEpoch(), 0)
			p.HSet(ctx, k.tenants, id, rec)
			p.Incr(ctx, k.version)
			p.XAdd(ctx, &redis.XAddArgs{Stream: k.events, Values: []any{"v", i + 1, "t", "create", "id", id}})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitChecks(t, b, 3)
	if !b.Status().DataLoss || !fb.has("t1", "t2", "n1", "n2") {
		t.Errorf("three periodic checks after Redis was flushed and written up to the same version: DataLoss %v, t1, t2, n1, n2 known %v; "+
			"the periodic check did not notice the new epoch", b.Status().DataLoss, fb.has("t1", "t2", "n1", "n2"))
	}
}

// A write made through a store that follows Redis, right after a rollback
// that kept the epoch (a failover to a replica that lacked the last
// writes): the write reuses a version the follower already holds from the
// lost history. The follower must have read the write back before the
// call returns (Sequencer), which comparing versions cannot tell: only
// the stream entry the write added can. Wake-ups for reused versions look
// stale and the periodic check is an hour away, so nothing but the wait
// itself makes the follower read the write.
func TestRedisReadYourWritesAfterRollback(t *testing.T) {
	u := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t)
	_, b, _ := rollBack(t, u, prefix, time.Hour, WithRedisCheckInterval(time.Hour))
	ctx := context.Background()
	if _, err := b.Create(ctx, newTenant("x", "db")); err != nil { // reuses version 3
		t.Fatal(err)
	}
	b.mu.Lock()
	_, ok := b.st.tenants["x"]
	v := b.st.version
	b.mu.Unlock()
	if !ok {
		t.Fatalf("Create returned, but the store's followed state (version %d) lacks x: the write reused version 3 of the lost history, "+
			"and the wait for the follower took the old version 3 for it", v)
	}
	if !b.Status().DataLoss {
		t.Error("the follower read the write back but did not report the rollback")
	}
}
