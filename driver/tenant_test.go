package driver

import (
	"errors"
	"strings"
	"testing"
)

// TestParseDSNError checks the error for a URL pgx cannot parse: the URL
// is redacted where its password stands, and nothing else is touched, so
// a password of one letter, or one that other words contain, leaves the
// message readable.
func TestParseDSNError(t *testing.T) {
	const prefix = `tenantsql: bad tenant configuration: tenant "t1": POSTGRES_URL: `
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:p@127.0.0.1:99999/db", "cannot parse `postgres://u:xxxxx@127.0.0.1:99999/db`: invalid port"},
		{"postgres://u:a@127.0.0.1:99999/db", "cannot parse `postgres://u:xxxxx@127.0.0.1:99999/db`: invalid port"},
		{"postgres://postgres:postgres@127.0.0.1:99999/postgres", "cannot parse `postgres://postgres:xxxxx@127.0.0.1:99999/postgres`: invalid port"},
		{"postgres://u:tcp@127.0.0.1:99999/db", "cannot parse `postgres://u:xxxxx@127.0.0.1:99999/db`: invalid port"},
		{"postgres://u:s@127.0.0.1/db?sslmode=bogus", "cannot parse `postgres://u:xxxxx@127.0.0.1/db?sslmode=bogus`: failed to configure TLS (sslmode is invalid)"},
		{"postgres://u@127.0.0.1/db?password=p&x", "cannot parse `postgres://u@127.0.0.1/db?password=xxxxx&x`: " + `failed to parse as URL (missing key/value separator "=" in URI query parameter: "x")`},
		// The password's text as another parameter's value is that value.
		{"postgres://u:p@127.0.0.1/db?connect_timeout=p", "cannot parse `postgres://u:xxxxx@127.0.0.1/db?connect_timeout=p`: " + `invalid connect_timeout (strconv.ParseInt: parsing "p": invalid syntax)`},
		// pgx quotes this value; a key that names a password hides it.
		{"postgres://u@127.0.0.1/db?PASSWORD=sek ret", "cannot parse `postgres://u@127.0.0.1/db?PASSWORD=xxxxx`: the password is malformed (percent-encode reserved characters, and do not use %00)"},
		{"postgres://u:sek%zz@127.0.0.1/db", "cannot parse `(unparsable URL)`: the password is malformed (percent-encode reserved characters, and do not use %00)"},
		// Where the password ends is unclear: neither is shown.
		{"postgres://u:sek%zz/ret@127.0.0.1/db", "cannot parse `(unparsable URL)`: it does not parse, and where its password ends is unclear (percent-encode '@', '/', '?' and '#' in the user name and password: %40, %2F, %3F, %23)"},
	}
	for _, tt := range tests {
		cc, err := parseDSN("t1", "POSTGRES_URL", tt.dsn)
		if cc != nil || !errors.Is(err, ErrTenantConfig) {
			t.Errorf("parseDSN(%q) = %v, %v; want ErrTenantConfig", tt.dsn, cc, err)
			continue
		}
		if got, ok := strings.CutPrefix(err.Error(), prefix); !ok || got != tt.want {
			t.Errorf("parseDSN(%q) error:\n got %s\nwant %s%s", tt.dsn, err, prefix, tt.want)
		}
	}
	if _, err := parseDSN("t1", "POSTGRES_URL", "postgres://u:p@127.0.0.1/db"); err != nil {
		t.Errorf("parseDSN of a good URL: %v", err)
	}
}
