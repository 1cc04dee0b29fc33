package driver

import (
	"strings"
	"testing"
)

// Spellings of one server name one budget; aliases, which only a resolver
// could tell apart, do not.
func TestServerKey(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"postgres://localhost/app", "localhost:5432"},
		{"postgres://LOCALHOST:5432/app", "localhost:5432"},
		{"postgres://Localhost.:5432/app", "localhost:5432"},
		{"postgres://DB1.Internal.Example./app", "db1.internal.example:5432"},
		{"postgres://db1:05432/app", "db1:5432"},
		{"postgres://db1:6432/app", "db1:6432"},
		{"postgres://127.0.0.1/app", "127.0.0.1:5432"},
		{"postgres://[::1]/app", "[::1]:5432"},
		{"postgres://[0:0::1]:5432/app", "[::1]:5432"},
		{"postgres://[0000:0000:0000:0000:0000:0000:0000:0001]/app", "[::1]:5432"},
		{"postgres://[FD00::A]/app", "[fd00::a]:5432"},
		{"postgres://[::ffff:127.0.0.1]/app", "127.0.0.1:5432"},
		{"postgres://[::ffff:7f00:1]/app", "127.0.0.1:5432"},
		{"postgres://[fe80::1%25eth0]/app", "[fe80::1%eth0]:5432"},
		// Non-ASCII letters are not folded: DNS compares them as bytes.
		{"postgres://xn--DB-ÄÖ/app", "xn--db-ÄÖ:5432"},
		// Aliases stay apart: telling them apart needs DNS.
		{"postgres://localhost6/app", "localhost6:5432"},
		// Fallback hosts are part of the server, in order, each once
		// (sslmode=prefer makes pgx list each host twice).
		{"postgres://H1,h2:5433/app", "h1:5432,h2:5433"},
		{"postgres://h2:5433,H1/app", "h2:5433,h1:5432"},
		{"postgres://h1,H1./app", "h1:5432"},
		{"postgres://h1,h2/app?sslmode=prefer", "h1:5432,h2:5432"},
		{"postgres://[::1],127.0.0.1/app", "[::1]:5432,127.0.0.1:5432"},
		// A Unix socket directory is a path: case matters.
		{"postgres:///app?host=/var/run/PostgreSQL", "/var/run/PostgreSQL:5432"},
		{"postgres:///app?host=/tmp&port=6432", "/tmp:6432"},
	}
	for _, tt := range tests {
		cc, err := parseDSN("t1", "POSTGRES_URL", tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got := serverKey(cc); got != tt.want {
			t.Errorf("serverKey(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
	if got := serverKey(nil); got != "(unusable URL)" {
		t.Errorf("serverKey(nil) = %q", got)
	}
}

// WithServerBudget names a server as the URLs may spell it, and reaches
// the budget of every tenant whose URL names that server, however spelled.
func TestServerBudgetKey(t *testing.T) {
	tests := []struct {
		option string
		urls   []string // URLs the budget must cover
	}{
		{"localhost:5432", []string{"postgres://localhost/app", "postgres://LOCALHOST:5432/app", "postgres://Localhost./app"}},
		{"LocalHost.:5432", []string{"postgres://localhost/app"}},
		{"db1.internal:05432", []string{"postgres://DB1.Internal/app"}},
		{"[::1]:5432", []string{"postgres://[0:0::1]/app"}},
		{"[0:0::1]:5432", []string{"postgres://[::1]/app"}},
		{"[::ffff:10.0.0.1]:5432", []string{"postgres://10.0.0.1/app"}},
		{"10.0.0.1:5432", []string{"postgres://[::ffff:a00:1]/app"}},
		{"h1:5432,H2.:5433", []string{"postgres://h1,h2:5433/app", "postgres://h1,h2:5433/app?sslmode=prefer"}},
		{"/tmp:6432", []string{"postgres:///app?host=/tmp&port=6432"}},
	}
	for _, tt := range tests {
		cfg := defaultConfig()
		WithMaxConns(7)(&cfg)
		WithServerBudget(tt.option, 3)(&cfg)
		if err := cfg.validate(); err != nil {
			t.Errorf("WithServerBudget(%q): %v", tt.option, err)
			continue
		}
		for _, u := range tt.urls {
			cc, err := parseDSN("t1", "POSTGRES_URL", u)
			if err != nil {
				t.Fatal(err)
			}
			if b := newBudget(&cfg, serverKey(cc)); b.max != 3 {
				t.Errorf("WithServerBudget(%q, 3): tenant %s (server %q) has a budget of %d", tt.option, u, serverKey(cc), b.max)
			}
		}
	}

	// An alias is a server of its own, under the default budget.
	cfg := defaultConfig()
	WithMaxConns(7)(&cfg)
	WithServerBudget("127.0.0.1:5432", 3)(&cfg)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	cc, _ := parseDSN("t1", "POSTGRES_URL", "postgres://localhost/app")
	if b := newBudget(&cfg, serverKey(cc)); b.max != 7 {
		t.Errorf("localhost got the budget of 127.0.0.1: %d", b.max)
	}

	// Two spellings of one server: the later option applies.
	cfg = defaultConfig()
	WithServerBudget("DB1:5432", 3)(&cfg)
	WithServerBudget("db1.:5432", 4)(&cfg)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if n := cfg.serverBudgets["db1:5432"]; n != 4 || len(cfg.serverBudgets) != 1 {
		t.Errorf("budgets %v, want db1:5432 at 4", cfg.serverBudgets)
	}
}

// A server that is not host:port is refused, with what is wrong with it.
func TestServerBudgetInvalid(t *testing.T) {
	tests := []struct {
		server string
		want   string
	}{
		{"db1", `"db1" is not host:port: missing port in address`},
		{"db1:", `port "" is not a number from 1 to 65535`},
		{"db1:pg", `port "pg" is not a number from 1 to 65535`},
		{"db1:0", `port "0" is not a number from 1 to 65535`},
		{"db1:65536", `port "65536" is not a number from 1 to 65535`},
		{":5432", `":5432" is not host:port: no host`},
		{"", `"" is not host:port: missing port in address`},
		{"::1:5432", `too many colons in address (an IPv6 address goes in brackets: [::1]:5432)`},
		{"db1:5432,db2", `"db2" is not host:port: missing port in address`},
		{"postgres://db1:5432", `"postgres://db1:5432" is not host:port: too many colons`},
	}
	for _, tt := range tests {
		cfg := defaultConfig()
		WithServerBudget(tt.server, 3)(&cfg)
		err := cfg.validate()
		if err == nil {
			t.Errorf("WithServerBudget(%q): no error", tt.server)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "tenantsql: WithServerBudget(") {
			t.Errorf("WithServerBudget(%q): %v, want it to say %s", tt.server, err, tt.want)
		}
	}
}
