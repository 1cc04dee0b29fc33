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
