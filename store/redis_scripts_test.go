package store

import (
	"context"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Each script answers what it did, and the version it wrote at, as the
// Store methods built on them expect.
func TestRedisScriptResults(t *testing.T) {
	s := openRedis(t, testenv.RedisURL(t), "")
	ctx := context.Background()
	check := func(what string, want scriptResult, wantV int64) func(scriptResult, written, error) {
		return func(res scriptResult, w written, err error) {
			t.Helper()
			v := w.v
			if err != nil || res != want || v != wantV {
				t.Errorf("%s = %d, version %d, %v; want %d, version %d", what, res, v, err, want, wantV)
			}
		}
	}
	check("create", scriptWrote, 1)(s.runCreate(ctx, "t", "one"))
	check("create of a taken id", scriptExists, 0)(s.runCreate(ctx, "t", "other"))
	check("update from a record not read", scriptChanged, 0)(s.runUpdate(ctx, "t", "other", "two"))
	check("update of a missing tenant", scriptNotFound, 0)(s.runUpdate(ctx, "missing", "one", "two"))
	check("update", scriptWrote, 2)(s.runUpdate(ctx, "t", "one", "two"))
	check("delete", scriptWrote, 3)(s.runDelete(ctx, "t"))
	check("delete of a missing tenant", scriptNotFound, 0)(s.runDelete(ctx, "t"))

	// A process keeps tenants Redis lost: deletes of missing tenants are
	// recorded, until an operator accepts the loss.
	if err := s.runMarkLost(ctx, 3); err != nil {
		t.Fatal(err)
	}
	check("delete of a kept tenant", scriptRecorded, 4)(s.runDelete(ctx, "t"))
	if err := s.runResync(ctx); err != nil { // version 5
		t.Fatal(err)
	}
	check("delete after the loss was accepted", scriptNotFound, 0)(s.runDelete(ctx, "t"))
	// A mark for a loss older than the acceptance is not set.
	if err := s.runMarkLost(ctx, 4); err != nil {
		t.Fatal(err)
	}
	check("delete after a stale mark", scriptNotFound, 0)(s.runDelete(ctx, "t"))
}
