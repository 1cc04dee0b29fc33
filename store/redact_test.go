package store

import (
	"strings"
	"testing"
)

const sekret = "s3cr3t-pw"

func TestAmbiguousUserinfo(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"postgres://u:p@h/db", false},
		{"postgres://u@h/db", false},
		{"postgres://h/db?x=@", false},
		{"postgres://h/db", false},
		{"postgres://u:p%40x@h/db", false},
		{"postgres://u:p@x@h/db", true},
		{"postgres://u:12?34@h/db", true},
		{"postgres://u:12#34@h/db", true},
		{"postgres://h?x=1@y/db", true},
		{"not a url", false},
	}
	for _, tt := range tests {
		if got := ambiguousUserinfo(tt.url); got != tt.want {
			t.Errorf("ambiguousUserinfo(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestMaskPasswordValues(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://h/db":                          "postgres://h/db",
		"a:/pAssword=" + sekret:                    "a:/pAssword=xxxxx",
		"postgres://h/password=" + sekret + "/x":   "postgres://h/password=xxxxx/x",
		"x?sslpassword=" + sekret + "&PASSWORD=ab": "x?sslpassword=xxxxx&PASSWORD=xxxxx",
		"İpassword=" + sekret:                      "İpassword=xxxxx",
		"password=":                                "password=xxxxx",
	} {
		if got := maskPasswordValues(in); got != want {
			t.Errorf("maskPasswordValues(%q) = %q, want %q", in, got, want)
		}
	}
}

// URLs that pgx and net/url read differently are refused by Validate and,
// wherever they still turn up (an old file, a log of a refused request),
// never shown.
func TestAmbiguousURLs(t *testing.T) {
	for _, u := range []string{
		"postgres://app:1234?" + sekret + "@10.0.0.1/c",
		"postgres://app@10.0.0.1/d?a=b#&password=" + sekret,
		"postgres://app:p@" + sekret + "@h/db",
	} {
		if got := RedactURL(u); got != ambiguousURL {
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
