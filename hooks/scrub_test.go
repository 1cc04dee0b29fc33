package hooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestScrub(t *testing.T) {
	plain := errors.New("dial tcp: connection refused")
	if got := scrub(plain, []string{"pw", ""}); got != plain {
		t.Errorf("scrub changed an error without secrets: %v", got)
	}

	serverErr := &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `role "pw" does not exist`}
	tests := []struct {
		name    string
		err     error
		want    string // the scrubbed text
		is      error  // what errors.Is must still match, if anything
		sqlcode string // what SQLState must still report
	}{
		{name: "server error", err: fmt.Errorf("connect: %w", serverErr),
			want: `connect: FATAL: role "xxxxx" does not exist (SQLSTATE 28000)`, sqlcode: "28000"},
		{name: "cancelled", err: fmt.Errorf("create database for pw: %w", context.Canceled),
			want: "create database for xxxxx: context canceled", is: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scrub(tc.err, []string{"pw"})
			if got.Error() != tc.want {
				t.Errorf("scrub = %q, want %q", got, tc.want)
			}
			// The original's fields still hold the password: errors.As
			// must not reach them.
			var pe *pgconn.PgError
			if errors.As(got, &pe) {
				t.Errorf("errors.As reaches the *pgconn.PgError, whose message is %q", pe.Message)
			}
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Errorf("errors.Is(%v) = false: a caller cannot tell it apart any more", tc.is)
			}
			var coded interface{ SQLState() string }
			if !errors.As(got, &coded) || coded.SQLState() != tc.sqlcode {
				t.Errorf("SQLState is lost: want %q", tc.sqlcode)
			}
			if strings.Contains(got.Error(), "pw") {
				t.Errorf("the password survives: %q", got)
			}
		})
	}
}
