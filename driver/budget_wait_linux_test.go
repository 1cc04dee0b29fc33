package driver_test

import (
	"syscall"
	"testing"
	"time"
)

// waiterUsage returns the calling OS thread's usage; the caller has locked
// its goroutine to the thread.
func waiterUsage(t *testing.T) (u usage, perThread bool) {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), wakeups: ru.Nvcsw}, true
}
