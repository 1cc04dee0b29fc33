package store

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// Behind a Sentinel, go-redis gives the password before the host to the
// Sentinel only; the primary's goes in password=. The natural mistake, the
// primary's password before the host, must be met by an error that says
// where it goes (and does not show it); the right URL works.
func TestRedisSentinelPassword(t *testing.T) {
	const pw = "hunter2"
	s := testenv.StartRedisSentinel(t, testenv.WithPrimaryPassword(pw))
	ctx := context.Background()
	host := strings.TrimPrefix(s.URL(), "redis://")

	_, err := OpenRedis(ctx, "redis://:"+pw+"@"+host)
	if err == nil {
		t.Fatal("OpenRedis with the primary's password before the Sentinel's host: nil error, want NOAUTH")
	}
	if msg := err.Error(); !strings.Contains(msg, "password=") || strings.Contains(msg, pw) {
		t.Errorf("error %q: want a hint that the primary's password goes in password=, without the password", msg)
	}

	r := openRedis(t, testenv.WithQuery(s.URL(), "password", pw), newPrefix())
	if _, err := r.Create(ctx, newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Primary().Client().HGet(ctx, r.keys.tenants, "t1").Result(); err != nil || got == "" {
		t.Errorf("the primary holds t1: %q, %v", got, err)
	}
}
