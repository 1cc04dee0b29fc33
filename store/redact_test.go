package store

import (
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/pgurl"
)

const sekret = "s3cr3t-pw"

// URLs that pgx and net/url read differently are refused by Validate and,
// wherever they still turn up (an old file, a log of a refused request),
// never shown.
func TestAmbiguousURLs(t *testing.T) {
	for _, u := range []string{
		"postgres://app:1234?" + sekret + "@10.0.0.1/c",
		"postgres://app@10.0.0.1/d?a=b#&password=" + sekret,
		"postgres://app:p@" + sekret + "@h/db",
	} {
		if got := RedactURL(u); got != pgurl.AmbiguousText {
			t.Errorf("RedactURL(%q) = %q, want it hidden", u, got)
		}
		err := Validate(Tenant{ID: "t", DeployInfo: map[string]string{KeyPostgresURL: u}})
		if err == nil {
			t.Errorf("Validate accepted %q", u)
		} else if strings.Contains(err.Error(), sekret) {
			t.Errorf("Validate's error shows the password: %v", err)
		}
	}
}
