package pgurl

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactText(t *testing.T) {
	// What pgx answers for a wrong password, with the README's
	// postgres:postgres credentials.
	const authFailed = `failed to connect to ` + "`" + `user=postgres database=tenant_1` + "`" + `: 127.0.0.1:5432 (127.0.0.1): server error: FATAL: password authentication failed for user "postgres" (SQLSTATE 28P01)`
	tests := []struct {
		name    string
		text    string
		secrets []string
		want    string
	}{
		{"no secrets", "dial tcp: connection refused", nil, "dial tcp: connection refused"},
		{"empty secret", "dial tcp: connection refused", []string{""}, "dial tcp: connection refused"},
		{"secret absent", "dial tcp: connection refused", []string{sekret}, "dial tcp: connection refused"},
		{"secret present", "bad password " + sekret + " here", []string{sekret}, "bad password xxxxx here"},
		{"every occurrence", sekret + "," + sekret, []string{sekret}, "xxxxx,xxxxx"},
		// The password is also the user name: the name is masked too,
		// and the cause stays readable.
		{"password is the user name", authFailed, []string{"postgres"},
			`failed to connect to ` + "`" + `user=xxxxx database=tenant_1` + "`" + `: 127.0.0.1:5432 (127.0.0.1): server error: FATAL: password authentication failed for user "xxxxx" (SQLSTATE 28P01)`},
		// Longest first: the longer secret is masked whole, not as a
		// masked prefix and a visible tail.
		{"longest first", "pw=postgres123", []string{"postgres", "postgres123"}, "pw=xxxxx"},
		{"longest first, other order", "pw=postgres123", []string{"postgres123", "postgres"}, "pw=xxxxx"},
		// Encoded forms.
		{"query escaped", "url ?password=p%40ss+w%2Fd", []string{"p@ss w/d"}, "url ?password=xxxxx"},
		{"path escaped", "url /p@ss%20w%2Fd/", []string{"p@ss w/d"}, "url /xxxxx/"},
		{"userinfo escaped", "postgres://u:p%40ss%20w%2Fd@h", []string{"p@ss w/d"}, "postgres://u:xxxxx@h"},
		{"lower-case escapes", "postgres://u:p%40ss%20w%2fd@h", []string{"p@ss w/d"}, "postgres://u:xxxxx@h"},
		{"Go-quoted", `password "a\"b\\c"`, []string{`a"b\c`}, `password "xxxxx"`},
		// A short password masks its own occurrences only.
		{"short password", "cannot connect: timeout", []string{"t"}, "cannoxxxxx connecxxxxx: xxxxximeouxxxxx"},
		// A password with an 'x' gets another placeholder, which cannot
		// rebuild it.
		{"secret with x", "pw=xx!", []string{"x"}, "pw=**********!"},
		{"secret is the mask", "pw=xxxxx", []string{"xxxxx"}, "pw=*****"},
		{"secrets with x and *", "a=x* b=x", []string{"x*", "x"}, "a=##### b=#####"},
		// A replacement next to the text around it must not form the
		// secret again.
		{"overlap", "aaxx", []string{"ax"}, "a*****x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactText(tt.text, tt.secrets)
			if got != tt.want {
				t.Errorf("RedactText(%q, %q) = %q, want %q", tt.text, tt.secrets, got, tt.want)
			}
			for _, s := range tt.secrets {
				if s != "" && strings.Contains(got, s) {
					t.Errorf("RedactText(%q, %q) = %q still holds %q", tt.text, tt.secrets, got, s)
				}
			}
		})
	}
}

// Every printable byte in some secret: the occurrences are dropped, and
// none is left.
func TestRedactTextNoPlaceholder(t *testing.T) {
	var all []string
	for c := byte('!'); c <= '~'; c++ {
		all = append(all, string(c))
	}
	secret := strings.Join(all, "")
	got := RedactText("a "+secret+" b", []string{secret, "a"})
	if got != "  b" {
		t.Errorf("got %q, want %q", got, "  b")
	}
}

// FuzzRedactText checks that no secret, as written or percent-encoded,
// survives RedactText, whatever surrounds it; and that a text that holds
// none is returned as it is.
func FuzzRedactText(f *testing.F) {
	f.Add("password authentication failed for user \"postgres\"", "postgres", "")
	f.Add("aaxx", "ax", "x")
	f.Add("pw=postgres123 postgres", "postgres", "postgres123")
	f.Add("p%40ss%2fw p@ss/w", "p@ss/w", "%")
	f.Add("xxxxx*****", "x", "*")
	f.Fuzz(func(t *testing.T, text, s1, s2 string) {
		secrets := []string{s1, s2}
		got := RedactText(text, secrets)
		forms := textForms(secrets)
		for _, f := range forms {
			if strings.Contains(got, f) {
				t.Fatalf("RedactText(%q, %q) = %q holds %q", text, secrets, got, f)
			}
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(got, url.QueryEscape(s)) {
				t.Fatalf("RedactText(%q, %q) = %q holds %q escaped", text, secrets, got, s)
			}
		}
		clean := true
		for _, f := range forms {
			clean = clean && !strings.Contains(text, f)
		}
		if clean && got != text {
			t.Fatalf("RedactText(%q, %q) = %q changed a text without secrets", text, secrets, got)
		}
	})
}
