package store

import (
	"syscall"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// A write that fails half way (here: the process may not write files
// longer than 64 bytes) leaves the old file, the old state and no
// temporary file. This works as root, which ignores a read-only directory.
//
// The limit applies to the whole process: the test runs in a child
// process of its own, where it cannot make another test's write fail.
func TestFileFailedWriteFileSizeLimit(t *testing.T) {
	if !inChild(t.Name()) {
		t.Parallel()
		runInChild(t, t.Name(), nil)
		return
	}
	failedWrite(t, func(string) func() {
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal("cannot read RLIMIT_FSIZE:", err)
		}
		lim := old
		lim.Cur = 64
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			testenv.CannotRun(t, "cannot lower RLIMIT_FSIZE: %v", err)
		}
		return func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	})
}
