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

// Escaped password keys, which pgx unescapes, are masked wherever they
// stand: in the query, and in a path that pgx reads as key=value settings.
// So is the URL of a tenant with one, in its String and Redacted forms.
func TestRedactEscapedPasswordKeys(t *testing.T) {
	for u, want := range map[string]string{
		"postgres://u@h/db?pass%77ord=" + sekret:     "postgres://u@h/db?pass%77ord=xxxxx",
		"postgres://u@h/db?a=1&%70assword=" + sekret: "postgres://u@h/db?a=1&%70assword=xxxxx",
		"postgres://u@h/db?ssl%70assword=" + sekret:  "postgres://u@h/db?ssl%70assword=xxxxx",
		"postgres:/pass%77ord=" + sekret:             "postgres:/pass%77ord=xxxxx",
	} {
		if got := RedactURL(u); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", u, got, want)
		}
		tn := Tenant{ID: "t", DeployInfo: map[string]string{KeyPostgresURL: u}}
		for what, s := range map[string]string{"String": tn.String(), "Redacted": tn.Redacted().PostgresURL()} {
			if strings.Contains(s, sekret) {
				t.Errorf("%s of a tenant with URL %q shows the password: %s", what, u, s)
			}
		}
	}
}
