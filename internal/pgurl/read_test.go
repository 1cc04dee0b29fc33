package pgurl

import (
	"slices"
	"testing"
)

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
		if got := AmbiguousUserinfo(tt.url); got != tt.want {
			t.Errorf("AmbiguousUserinfo(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		url                              string
		userinfo, hostPath, query, again string
	}{
		{url: "postgres://h/db", hostPath: "h/db"},
		{url: "postgres://u:p@h:5432/db?a=1&b=2", userinfo: "u:p", hostPath: "h:5432/db", query: "a=1&b=2"},
		{url: "postgres://u:p@h?a=1", userinfo: "u:p", hostPath: "h", query: "a=1"},
		// pgx ends the user info at the first '@' before any '/', past a
		// '?' or '#'.
		{url: "postgres://u:p?q#r@h/db", userinfo: "u:p?q#r", hostPath: "h/db"},
		{url: "postgres://u:p/q@h/db", hostPath: "u:p/q@h/db"},
		// A '?' inside an IPv6 address is host data; a '#' is query data.
		{url: "postgres://[::1?]:5432,h2/db?a=1#b=2", hostPath: "[::1?]:5432,h2/db", query: "a=1#b=2"},
		{url: "postgres://h/db?a=1?b=2", hostPath: "h/db", query: "a=1?b=2"},
		{url: "postgres://[::1/db?a=1", hostPath: "[::1/db", query: "a=1"},
		{url: "postgres://h/db?", hostPath: "h/db", query: ""},
	}
	for _, tt := range tests {
		p, ok := split(tt.url)
		if !ok || p.userinfo != tt.userinfo || p.hostPath != tt.hostPath || p.query != tt.query {
			t.Errorf("split(%q) = %+v, %v; want user info %q, hosts and path %q, query %q", tt.url, p, ok, tt.userinfo, tt.hostPath, tt.query)
		}
		if got := p.String(); got != tt.url {
			t.Errorf("split(%q).String() = %q", tt.url, got)
		}
	}
	if _, ok := split("host=h password=p"); ok {
		t.Error("split of a key=value string succeeded")
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"postgres://h/db", nil},
		{"postgres://h/db?sslmode=require&application_name=x", []string{"sslmode", "application_name"}},
		{"postgres://h/db?pass%66ile=/k&%20Service%20=a", []string{"passfile", "Service"}},
		{"postgres://h/db?x=1#servicefile=/k;sslcrl=/c?sslkey", []string{"x", "servicefile", "sslcrl", "sslkey"}},
		{"postgres://h/db;sslkey=/k", []string{"sslkey"}},
		{"postgres://h/db?%zzsslkey=/k", []string{"%zzsslkey"}}, // pgx would refuse it, not read sslkey
		{"postgres://h/db?a&&b=", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		if got := slices.Collect(Keys(tt.url)); !slices.Equal(got, tt.want) {
			t.Errorf("Keys(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestNamesPassword(t *testing.T) {
	for key, want := range map[string]bool{
		"password":     true,
		"sslpassword":  true,
		"PASSWORD":     true,
		"db_Password":  true,
		"pass%77ord":   true,
		"PASS%57ORD":   true,
		"%70assword":   true,
		"%20password":  true,
		"pass%zzword":  true, // a bad escape: readers disagree on it
		"password%":    true,
		"sslmode":      false,
		"pass word":    false,
		"pass%2bword":  false,
		"application":  false,
		"passwor%64":   true,
		"pass%25word":  false, // decodes to "pass%word"
		"passwd":       false,
		"":             false,
		"%2570assword": false, // decodes once, to "%70assword", as pgx does
	} {
		if got := namesPassword(key); got != want {
			t.Errorf("namesPassword(%q) = %v, want %v", key, got, want)
		}
	}
}
