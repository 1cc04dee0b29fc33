//go:build unix && !linux

package driver_test

import (
	"syscall"
	"testing"
	"time"
)

// waiterUsage has no per-thread count outside Linux: it returns the whole
// process's CPU time, and TestWaiterAtTenantCapDoesNotSpin bounds it more
// loosely.
func waiterUsage(t *testing.T) (u usage, perThread bool) {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}, false
}
