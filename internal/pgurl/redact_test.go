package pgurl

import "testing"

const sekret = "s3cr3t-pw"

func TestRedact(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"postgres://app:" + sekret + "@db:5432/app", "postgres://app:xxxxx@db:5432/app"},
		{"postgres://app@db/app?sslmode=disable", "postgres://app@db/app?sslmode=disable"},
		{"postgres://db/app?password=" + sekret + "&sslpassword=" + sekret, "postgres://db/app?password=xxxxx&sslpassword=xxxxx"},
		// Escaped keys: pgx decodes them, so pass%77ord is password.
		{"postgres://u@h/db?pass%77ord=x", "postgres://u@h/db?pass%77ord=xxxxx"},
		{"postgres://u@h/db?PASS%57ORD=" + sekret, "postgres://u@h/db?PASS%57ORD=xxxxx"},
		{"postgres://u@h/db?%70assword=" + sekret + "&a=b", "postgres://u@h/db?%70assword=xxxxx&a=b"},
		{"postgres://u@h/db?ssl%70assword=" + sekret, "postgres://u@h/db?ssl%70assword=xxxxx"},
		{"postgres://u@h/db?%20pass%77ord%20=" + sekret, "postgres://u@h/db?%20pass%77ord%20=xxxxx"},
		// A key with a bad escape: pgx refuses it, url.ParseQuery drops it.
		{"postgres://db/app?pass%zzword=" + sekret, "postgres://db/app?pass%zzword=xxxxx"},
		// pgx's value runs to the next '&', whatever it holds.
		{"postgres://db/app?password=a;b?c&x=1", "postgres://db/app?password=xxxxx&x=1"},
		// A key as net/url before Go 1.17 reads it, with a '?' inside.
		{"postgres://db/app?a=1;pass%?word=" + sekret, "postgres://db/app?a=1;pass%?word=xxxxx"},
		// A bad escape in the value.
		{"postgres://db/app?password=" + sekret + "%off", "postgres://db/app?password=xxxxx"},
		// Any reader's separators: ';' (older net/url) and a second '?'.
		{"postgres://db/app?a=1;pass%77ord=" + sekret, "postgres://db/app?a=1;pass%77ord=xxxxx"},
		{"postgres://db/app?a=1?pass%77ord=" + sekret, "postgres://db/app?a=1?pass%77ord=xxxxx"},
		// Outside the query, the last resort.
		{"a:/pAssword=" + sekret, "a:/pAssword=xxxxx"},
		{"postgres://h/password=" + sekret + "/x", "postgres://h/password=xxxxx/x"},
		{"postgres:/pass%77ord=" + sekret, "postgres:/pass%77ord=xxxxx"},
		// Not shown at all.
		{"postgres://app:" + sekret + "/x@db/app", UnparsableText},
		{"postgres:app:" + sekret + "@db/app", UnparsableText},
		{"host=db password=" + sekret, UnparsableText},
		{"postgres://app:p@" + sekret + "@h/db", AmbiguousText},
		{"postgres://app@h/db?a=b#&password=" + sekret, AmbiguousText},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskOutside(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://h/db":                         "postgres://h/db",
		"a:/pAssword=" + sekret:                   "a:/pAssword=xxxxx",
		"postgres://h/password=" + sekret + "/x":  "postgres://h/password=xxxxx/x",
		"x?sslpassword=" + sekret + "&PASSWORD=a": "x?sslpassword=xxxxx&PASSWORD=xxxxx",
		"İpassword=" + sekret:                     "İpassword=xxxxx",
		"password=":                               "password=xxxxx",
		"password=" + sekret + " x":               "password=xxxxx x",
		"postgres:/pass%77ord=" + sekret:          "postgres:/pass%77ord=xxxxx",
		"a=password=" + sekret:                    "a=password=xxxxx",
		"x/%50ASSWORD=" + sekret + "/y":           "x/%50ASSWORD=xxxxx/y",
	} {
		if got := maskOutside(in); got != want {
			t.Errorf("maskOutside(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskParams(t *testing.T) {
	tests := []struct {
		in, seps, want string
	}{
		{"", anySeps, ""},
		{"a=1&password=2", pgxSeps, "a=1&password=M"},
		// pgx's split replaces a value whole; any reader's, up to the next
		// separator.
		{"password=a;b?c#d&e=f", pgxSeps, "password=M&e=f"},
		{"password=a;b?c#d&e=f", anySeps, "password=M;b?c#d&e=f"},
		{"password&password=&=x&&", anySeps, "password&password=M&=x&&"},
	}
	for _, tt := range tests {
		if got := maskParams(tt.in, tt.seps, "M"); got != tt.want {
			t.Errorf("maskParams(%q, %q) = %q, want %q", tt.in, tt.seps, got, tt.want)
		}
	}
}

func TestMaskQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"a=1&b=2":                   "a=1&b=2",
		"password=a;b?c#d&e=f":      "password=M&e=f",
		"a=1;password=b&c=d":        "a=1;password=M&c=d",
		"a=1;password?x=b":          "a=1;password?x=M",
		"a=1?pass%77ord=b":          "a=1?pass%77ord=M",
		"pass%77ord=a&sslmode=x":    "pass%77ord=M&sslmode=x",
		"password&password=&=x&&":   "password&password=M&=x&&",
		"application_name=password": "application_name=password",
	} {
		if got := maskQuery(in, "M"); got != want {
			t.Errorf("maskQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedactKeepsTheRest checks that a URL without secrets comes back as
// it was, so that what is shown is what was given.
func TestRedactKeepsTheRest(t *testing.T) {
	for _, u := range []string{
		"postgres://app@db:5432/app?sslmode=verify-full&application_name=a%20b",
		"postgresql://db1,db2:5433/app?target_session_attrs=read-write",
		"postgres://[::1]:5432/app",
		"postgres://db/app?a=1;b=2",
	} {
		if got := Redact(u); got != u {
			t.Errorf("Redact(%q) = %q", u, got)
		}
	}
}
