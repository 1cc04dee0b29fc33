package store

import "testing"

func TestFileParam(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"postgres://h/db", ""},
		{"postgres://h/db?sslmode=verify-full&application_name=x", ""},
		{"postgres://h/db?sslkey=/k", "sslkey"},
		{"postgres://h/db?SSLRootCert=/k", "sslrootcert"},
		{"postgres://h/db?x=1&pass%66ile=/k", "passfile"},
		{"postgres://h/db?x=1&%20service=a", "service"},
		{"postgres://h/db?x=1#&servicefile=/k", "servicefile"},
		{"postgres://h/db?x=1;sslcrl=/k", "sslcrl"},
		{"postgres://h/db?sslkeyx=/k", ""},
		{"postgres://h/db?x=sslkey", ""},
		{"postgres://h/db?%zzsslkey=/k", ""}, // not a key pgx would read as sslkey
	}
	for _, tt := range tests {
		if got := fileParam(tt.url); got != tt.want {
			t.Errorf("fileParam(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
