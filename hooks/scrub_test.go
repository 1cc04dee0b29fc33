package hooks

import (
	"errors"
	"testing"
)

func TestScrub(t *testing.T) {
	plain := errors.New("dial tcp: connection refused")
	if got := scrub(plain, []string{"pw", ""}); got != plain {
		t.Errorf("scrub changed an error without secrets: %v", got)
	}
	quoting := errors.New(`FATAL: role "pw" does not exist`)
	got := scrub(quoting, []string{"pw"})
	if got.Error() != `FATAL: role "xxxxx" does not exist` {
		t.Errorf("scrub = %q", got)
	}
	if errors.Is(got, quoting) {
		t.Error("the scrubbed error unwraps to the one that holds the password")
	}
}
