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
		_ = utf8.ValidString(err.Error())
	})
}

// FuzzRedactURL checks that whatever pgx would send as the password of a
// URL never survives redaction or a validation error, whatever surrounds
// it.
func FuzzRedactURL(f *testing.F) {
	f.Add("app", "db.internal:5432", "tenant_1?sslmode=disable")
	f.Add("a@b", "h", "d#x")
	f.Add("", "", "")
	f.Add("@?", "0", "0")
	f.Add("u", "h", "d?password=x&sslmode=disable")
	f.Fuzz(func(t *testing.T, user, host, rest string) {
		u := "postgres://" + user + ":Zq9secretPW@" + host + "/" + rest
		cfg, err := pgconn.ParseConfig(u)
		if err != nil || cfg.Password == "" {
			return // pgx would send no password
		}
		got := RedactURL(u)
		// Read back by pgx, the redacted URL must not carry the password;
		// and the fuzzer's own marker, when it is the password, must not
		// appear anywhere (other values may contain a short password by
		// chance, so only the marker is searched for).
		if red, err := pgconn.ParseConfig(got); err == nil && red.Password == cfg.Password {
			t.Fatalf("RedactURL(%q) = %q still gives pgx the password %q", u, got, cfg.Password)
		}
		if cfg.Password == "Zq9secretPW" && strings.Contains(got, cfg.Password) {
			t.Fatalf("RedactURL(%q) = %q shows the password", u, got)
		}
		if err := Validate(Tenant{ID: "t", DeployInfo: map[string]string{KeyPostgresURL: u}}); err != nil && cfg.Password == "Zq9secretPW" && strings.Contains(err.Error(), cfg.Password) {
			t.Fatalf("Validate(%q) error %q shows the password", u, err)
		}
	})
}
