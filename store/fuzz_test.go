package store

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// FuzzValidateID checks ValidateID against the rule written out by hand:
// 1 to 128 bytes of [a-z0-9._-], the first a letter or digit. It must never
// panic, and its error must be a *ValidationError wrapping ErrInvalid whose
// message is bounded, whatever the input.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"", "a", "tenant-1.test.com", "A", ".a", "-a", "_a", "a b", "a\x00", "é", strings.Repeat("a", 128), strings.Repeat("a", 129), "a-b", "a.b", "a_b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateID(id)
		want := len(id) >= 1 && len(id) <= MaxIDLen && isLowerAlnum(id[0]) &&
			strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789._-") == ""
		if (err == nil) != want {
			t.Fatalf("ValidateID(%q) = %v, want valid=%v", id, err, want)
		}
		if err == nil {
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateID(%q) error %T is not a *ValidationError wrapping ErrInvalid", id, err)
		}
		if len(err.Error()) > 400 {
			t.Fatalf("ValidateID error is %d bytes long: the input is echoed unbounded", len(err.Error()))
		}
		if !utf8.ValidString(err.Error()) {
			t.Fatalf("ValidateID(%q) error %q is not valid UTF-8: the input is echoed unescaped", id, err)
		}
	})
}

// FuzzValidateURL checks that whatever pgx would send as the password of
// a URL never shows in Validate's error, whatever surrounds it. (How
// RedactURL hides it is fuzzed in internal/pgurl, by FuzzRedactURL.)
func FuzzValidateURL(f *testing.F) {
	// One seed a reason to refuse, and one URL that passes.
	f.Add("app", "db.internal:5432", "tenant_1?sslmode=disable")
	f.Add("a@b", "h", "d")
	f.Add("u", "h", "d#x")
	f.Add("u", "h:port", "d")
	f.Add("u", "h", "d?pass%77ord=x")
	f.Add("u", "h", "d%zz")
	f.Fuzz(func(t *testing.T, user, host, rest string) {
		const pw = "Zq9secretPW"
		u := "postgres://" + user + ":" + pw + "@" + host + "/" + rest
		cfg, err := pgconn.ParseConfig(u)
		if err != nil || cfg.Password != pw || strings.Count(u, pw) != 1 {
			return // the marker is not the password, or not only that
		}
		if err := Validate(Tenant{ID: "t", DeployInfo: map[string]string{KeyPostgresURL: u}}); err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("Validate(%q) error %q shows the password", u, err)
		}
	})
}
