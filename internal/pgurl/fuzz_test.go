package pgurl

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// marker is the password the fuzz targets put in the user info. Only it
// is searched for in what they show: other values may contain a short
// password by chance.
const marker = "Zq9secretPW"

// addURLSeeds adds seeds for fuzz targets that build
// "postgres://" + user + ":" + marker + "@" + host + "/" + rest.
func addURLSeeds(f *testing.F) {
	f.Add("app", "db.internal:5432", "tenant_1?sslmode=disable")
	f.Add("a@b", "h", "d#x")
	f.Add("", "", "")
	f.Add("@?", "0", "0")
	f.Add("u", "h", "d?password=x&sslmode=disable")
	// Escaped keys: pgx decodes them.
	f.Add("u", "h", "d?pass%77ord=x")
	f.Add("u", "h", "d?PASS%57ORD=x&sslmode=disable")
	f.Add("u", "h", "d?a=1&%70assword="+marker)
	f.Add("u", "h", "d?a=1;pass%77ord=x")
	f.Add("u", "h:99999", "d?pass%77ord="+marker+"%zz")
	f.Add("u", "h", "d?connect_timeout=x&%20password%20=x")
	f.Add("u/x", "h", "d?x")
	f.Add("u", "[::1", "d")
}

// FuzzRedactURL checks that whatever pgx would send as the password of a
// URL never survives redaction, whatever surrounds it.
func FuzzRedactURL(f *testing.F) {
	addURLSeeds(f)
	f.Fuzz(func(t *testing.T, user, host, rest string) {
		u := "postgres://" + user + ":" + marker + "@" + host + "/" + rest
		cfg, err := pgconn.ParseConfig(u)
		if err != nil || cfg.Password == "" {
			return // pgx would send no password
		}
		got := Redact(u)
		// Read back by pgx, the redacted URL must not carry the password;
		// and the marker, when it is the password and nothing else, must
		// not appear at all.
		if red, err := pgconn.ParseConfig(got); err == nil && red.Password == cfg.Password {
			t.Fatalf("Redact(%q) = %q still gives pgx the password %q", u, got, cfg.Password)
		}
		if cfg.Password == marker && strings.Count(u, marker) == 1 && strings.Contains(got, marker) {
			t.Fatalf("Redact(%q) = %q shows the password", u, got)
		}
	})
}

// FuzzParseFailure checks ParseFailure and Secrets against pgx: of a URL
// pgx cannot parse, ParseFailure never shows the marker where it is a
// password; of one it can, pgx's password is among Secrets.
func FuzzParseFailure(f *testing.F) {
	addURLSeeds(f)
	f.Fuzz(func(t *testing.T, user, host, rest string) {
		u := "postgres://" + user + ":" + marker + "@" + host + "/" + rest
		msg := ParseFailure(u, pgxParse)
		cfg, err := pgx.ParseConfig(u)
		if err == nil {
			if msg != "" {
				t.Fatalf("ParseFailure(%q) = %q for a URL pgx parses", u, msg)
			}
			// A password the copy without secrets gets too came from the
			// environment, not from u.
			fromEnv := false
			if c, err := pgx.ParseConfig(withoutSecrets(u)); err == nil && c.Password == cfg.Password {
				fromEnv = true
			}
			if cfg.Password != "" && !fromEnv && !GivesPassword(u, cfg.Password) {
				t.Fatalf("pgx reads the password %q from %q; Secrets has only %q", cfg.Password, u, Secrets(u))
			}
			return
		}
		if msg == "" {
			t.Fatalf("ParseFailure(%q) is empty; pgx says %v", u, err)
		}
		if !strings.Contains(msg, marker) || strings.Count(u, marker) != 1 {
			return // elsewhere the marker is a name or a value, shown rightly
		}
		// Without '@' or '/' in the user name, pgx's user info ends at the
		// marker's '@': the marker is its password.
		if !strings.ContainsAny(user, "@/") {
			t.Fatalf("ParseFailure(%q) = %q shows the password", u, msg)
		}
		for _, s := range Secrets(u) {
			if strings.Contains(s, marker) {
				t.Fatalf("ParseFailure(%q) = %q shows the secret %q", u, msg, s)
			}
		}
	})
}
