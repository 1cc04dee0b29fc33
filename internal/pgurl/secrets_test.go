package pgurl

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestSecrets(t *testing.T) {
	tests := []struct {
		url       string
		want, not []string
	}{
		{url: "postgres://u@h/db?sslmode=require&application_name=x"},
		{url: "postgres://app:" + sekret + "@h/db?sslpassword=other%21pw", want: []string{sekret, "other%21pw", "other!pw"}},
		{url: "postgres://u:p%40ss@h/db", want: []string{"p%40ss", "p@ss"}},
		// pgx's value runs to the next '&'; any reader's, to the next of
		// "?&;#".
		{url: "postgres://h/db?password=a;b?c&x=1", want: []string{"a;b?c", "a"}, not: []string{"x=1", "1"}},
		// pgx and net/url split this user info differently.
		{url: "postgres://u:p@x@h/db", want: []string{"p", "p@x"}},
		{url: "postgres://h/db?pass%77ord=" + sekret, want: []string{sekret}},
		{url: "postgres://h/db?a=b#&PASSWORD=" + sekret, want: []string{sekret}},
		{url: "postgres://h/db;db_password=" + sekret, want: []string{sekret}},
		{url: "POSTGRES://u:" + sekret + "@h/db", want: []string{sekret}},
		// Not a parameter for any reader: the path before any separator.
		{url: "postgres://h/password=" + sekret, not: []string{sekret}},
	}
	for _, tt := range tests {
		got := Secrets(tt.url)
		for _, s := range tt.want {
			if !slices.Contains(got, s) {
				t.Errorf("Secrets(%q) = %q, misses %q", tt.url, got, s)
			}
		}
		for _, s := range tt.not {
			if slices.Contains(got, s) {
				t.Errorf("Secrets(%q) = %q, holds %q", tt.url, got, s)
			}
		}
		if tt.want == nil && tt.not == nil && len(got) != 0 {
			t.Errorf("Secrets(%q) = %q, want none", tt.url, got)
		}
	}
}

func TestGivesPassword(t *testing.T) {
	tests := []struct {
		url, pw string
		want    bool
	}{
		{"postgres://u:pw@h/db", "pw", true},
		{"postgres://u:p%40ss@h/db", "p@ss", true},
		{"postgres://h/db?password=%20pw%20", " pw ", true},
		{"postgres://h/db?password= pw ", "pw", true},
		{"postgres://h/db?password=a;b&x=1", "a;b", true},
		{"postgres://h/db?pass%77ord=pw", "pw", true},
		{"postgres://u@h/db", "from-the-environment", false},
		{"postgres://u:pw@h/db", "pw2", false},
	}
	for _, tt := range tests {
		if got := GivesPassword(tt.url, tt.pw); got != tt.want {
			t.Errorf("GivesPassword(%q, %q) = %v, want %v", tt.url, tt.pw, got, tt.want)
		}
	}
}

func TestWithoutSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://h/db": "postgres://h/db",
		"postgres://u:pw@h:5432/db?sslmode=disable":  "postgres://u@h:5432/db?sslmode=disable",
		"postgres://:pw@h/db":                        "postgres://@h/db",
		"postgres://u@h/db?password=a;b?c&sslmode=x": "postgres://u@h/db?password=x&sslmode=x",
		"postgres://u@h/db?a=1;pass%77ord=pw&b=2":    "postgres://u@h/db?a=1;pass%77ord=x&b=2",
		"postgres://u@h/db?a=1#PASSWORD=pw":          "postgres://u@h/db?a=1#PASSWORD=x",
		"postgres://u:pw@[::1]:5432/db?password=pw":  "postgres://u@[::1]:5432/db?password=x",
		"host=h password=pw":                         "host=h password=pw", // not a URL: pgx refuses it anyway
	} {
		if got := withoutSecrets(in); got != want {
			t.Errorf("withoutSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}

func pgxParse(raw string) error {
	_, err := pgx.ParseConfig(raw)
	return err
}

// TestParseFailure checks what is said of URLs that pgx cannot parse. The
// password is hidden where it stands, never searched for in the message:
// a one-letter or common password does not garble the rest of it, and
// the same letters elsewhere (a port, a parameter) are shown as they are.
func TestParseFailure(t *testing.T) {
	const (
		unclear   = "it does not parse, and where its password ends is unclear (percent-encode '@', '/', '?' and '#' in the user name and password: %40, %2F, %3F, %23)"
		malformed = "the password is malformed (percent-encode reserved characters, and do not use %00)"
	)
	tests := []struct {
		url, want string
	}{
		{"postgres://u:p@h/db", ""},
		{"postgres://u:p@h:99999/db", "invalid port"},
		{"postgres://u:a@h:99999/db", "invalid port"},
		{"postgres://u:postgres@h:99999/db", "invalid port"},
		{"postgres://u:tcp@h:99999/db", "invalid port"},
		{"postgres://u:p@h/db?sslmode=bogus", "failed to configure TLS (sslmode is invalid)"},
		// The password's text as another parameter's value is that value,
		// which Redact shows too.
		{"postgres://u:p@h/db?connect_timeout=p", `invalid connect_timeout (strconv.ParseInt: parsing "p": invalid syntax)`},
		{"postgres://u:" + sekret + "@h/db?target_session_attrs=" + sekret, "unknown target_session_attrs value: " + sekret},
		{"postgres://postgres:postgres@h/postgres?x", `failed to parse as URL (missing key/value separator "=" in URI query parameter: "x")`},
		{"postgres://u@h/db?password=p&y", `failed to parse as URL (missing key/value separator "=" in URI query parameter: "y")`},
		{"postgres://u:p%zz@h/db", malformed},
		{"postgres://u:p%00@h/db", malformed},
		{"postgres://u:a b@h/db", malformed},
		// pgx quotes the value of a key it does not take for a password.
		{"postgres://u@h/db?PASSWORD=a b", malformed},
		{"postgres://u@h/db?db_password=a%zz", malformed},
		// Where the password ends is unclear: nothing is quoted.
		{"postgres://u:p%zz/ss@h/db", unclear},
		{"postgres://u:12/s?s@h/db", unclear},
		{"postgres://u:p@x@h:99999/db", unclear},
		{"postgres://u:12?34@h:99999/db", unclear},
		{"host=h port=99999 password=p", "it is not a postgres:// or postgresql:// URL"},
	}
	for _, tt := range tests {
		if got := ParseFailure(tt.url, pgxParse); got != tt.want {
			t.Errorf("ParseFailure(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// TestParseFailureHidesPasswords feeds pgx URLs it cannot parse, with the
// password in every position it can be.
func TestParseFailureHidesPasswords(t *testing.T) {
	for _, u := range []string{
		"postgres://app:" + sekret + "@h:99999/db",
		"postgres://app:" + sekret + "@h:" + sekret + "/db",
		"postgres://app:" + sekret + "%zz@h/db",
		"postgres://app:" + sekret + "%00@h/db",
		"postgres://app:" + sekret + "@h/db?x",
		"postgres://app:" + sekret + "@h/db?a=b=c",
		"postgres://app@h/db?password=" + sekret + "&x",
		"postgres://app@h/db?sslpassword=" + sekret + "%zz",
		"postgres://app@h/db?pass%77ord=" + sekret + "%zz",
		"postgres://app@h/db?Password=" + sekret + " x",
		"postgres://app@h/db?a=1;password=" + sekret + " x",
		"postgres://app:" + sekret + "@[::1/db",
		"postgres://app:" + sekret + "/x@h/db?a",
		"postgres://app:" + sekret + "@h/db?statement_cache_capacity=x",
	} {
		msg := ParseFailure(u, pgxParse)
		if msg == "" || strings.Contains(msg, sekret) {
			t.Errorf("ParseFailure(%q) = %q", u, msg)
		}
	}
}
