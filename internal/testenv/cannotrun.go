package testenv

import (
	"fmt"
	"os"
	"testing"
)

// CannotRun reports that this machine cannot run the test's real check
// (a missing program, a refused privilege, ...). Locally the test is
// skipped with the reason; when the CI environment variable is set it
// fails, so CI never passes by skipping.
func CannotRun(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("cannot run the real check here, and CI is set, so this is a failure, not a skip: %s", msg)
	}
	t.Skipf("cannot run the real check here: %s", msg)
}
