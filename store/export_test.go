package store

import (
	"testing"
	"time"
)

// resyncCount returns how many full resyncs r's follower completed.
func (r *Redis) resyncCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// waitResyncs waits until r's follower has completed n more full resyncs
// than when it was called: "nothing changes over several resyncs" is then
// established by the follower's own progress, not by a sleep.
func waitResyncs(t *testing.T, r *Redis, n int) {
	t.Helper()
	want := r.resyncCount() + n
	waitFor(t, 30*time.Second, "the follower's next full resyncs", func() bool { return r.resyncCount() >= want })
}

// waitPolls waits until f's poller has completed n more polls than when
// it was called: "nothing happens over n polls" instead of "over 200 ms".
func waitPolls(t *testing.T, f *File, n int64) {
	t.Helper()
	want := f.polls.Load() + n
	waitFor(t, 30*time.Second, "the file store's next polls", func() bool { return f.polls.Load() >= want })
}

// hubOf returns the hub of one of the package's stores.
func hubOf(t *testing.T, s Store) *hub {
	t.Helper()
	switch s := s.(type) {
	case *Memory:
		return &s.hub
	case *File:
		return &s.hub
	case *Redis:
		return &s.hub
	}
	t.Fatalf("no hub in %T", s)
	return nil
}

// setMaxQueued makes the watchers added to s from now on overflow past n
// queued events.
func setMaxQueued(t *testing.T, s Store, n int) {
	h := hubOf(t, s)
	h.mu.Lock()
	h.maxQueued = n
	h.mu.Unlock()
}

// waitChecks waits until r's follower has done n more periodic checks
// than when it was called.
func waitChecks(t *testing.T, r *Redis, n int) {
	t.Helper()
	count := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.checks
	}
	want := count() + n
	waitFor(t, 30*time.Second, "the follower's next periodic checks", func() bool { return count() >= want })
}
