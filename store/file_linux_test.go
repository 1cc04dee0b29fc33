package store

import (
	"syscall"
	"testing"
)

// A write that fails half way (here: the process may not write files
// longer than 64 bytes) leaves the old file, the old state and no
// temporary file. This works as root, which ignores a read-only directory.
//
// Not parallel: the limit applies to the whole process, and the go command
// runs no parallel test while a sequential one runs.
func TestFileFailedWriteFileSizeLimit(t *testing.T) {
	failedWrite(t, func(string) func() {
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Skip("cannot read RLIMIT_FSIZE:", err)
		}
		lim := old
		lim.Cur = 64
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Skip("cannot lower RLIMIT_FSIZE:", err)
		}
		return func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	})
}
