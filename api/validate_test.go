package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

func TestAllowedHosts(t *testing.T) {
	dns := fakeDNS(map[string][]string{
		"db.internal":    {"172.16.0.9"},                // an allowed name
		"alias.internal": {"172.16.0.9"},                // another name for it
		"pool.internal":  {"10.1.1.1", "10.2.2.2"},      // all inside 10/8
		"mixed.internal": {"10.1.1.1", "93.184.216.34"}, // one outside
		"meta.example":   {"169.254.169.254"},
		"v6.internal":    {"fd00::5"},
	})
	opts := []Option{withLookup(dns), WithAllowedHosts("10.0.0.0/8", "192.168.1.5", " db.internal ", "fd00::/64")}
	tests := []struct {
		url     string
		wantErr string // "" when allowed
	}{
		{pgURL("10.2.3.4/one"), ""},
		{pgURL("10.2.3.4:6543/one"), ""},
		{pgURL("192.168.1.5/one"), ""},
		{pgURL("[fd00::1]/one"), ""},
		{pgURL("[::ffff:10.0.0.1]/one"), ""},
		{pgURL("db.internal/one"), ""},
		{pgURL("alias.internal/one"), ""},
		{pgURL("pool.internal/one"), ""},
		{pgURL("v6.internal/one"), ""},
		{pgURL("10.0.0.1,10.0.0.2:5433/one"), ""},
		{pgURL("10.0.0.1/one?host=10.0.0.9"), ""},
		{pgURL("11.0.0.1/one"), `host "11.0.0.1" is not among the allowed hosts`},
		{pgURL("192.168.1.6/one"), `host "192.168.1.6" is not among the allowed hosts`},
		{pgURL("127.0.0.1/one"), `host "127.0.0.1" is not among the allowed hosts`},
		{pgURL("[::1]/one"), `host "::1" is not among the allowed hosts`},
		{pgURL("169.254.169.254/one"), `host "169.254.169.254" is not among the allowed hosts`},
		{pgURL("10.0.0.1,11.0.0.1/one"), `host "11.0.0.1" is not among`},
		{pgURL("10.0.0.1/one?host=11.0.0.1"), `host "11.0.0.1" is not among`},
		{pgURL("10.0.0.1/one?host=10.0.0.2,meta.example"), `host "meta.example" resolves to 169.254.169.254, which is not among the allowed hosts`},
		{pgURL("mixed.internal/one"), `host "mixed.internal" resolves to 93.184.216.34`},
		{pgURL("meta.example/one"), `host "meta.example" resolves to 169.254.169.254`},
		{pgURL("nx.example/one"), `host "nx.example" cannot be resolved`},
		{pgURL("10.0.0.1/one?host=/var/run/postgresql"), `host "/var/run/postgresql" is a Unix socket`},
		{pgURL("%2Ftmp/one"), "not a URL"}, // net/url refuses an escaped host
		// No host: pgx's default, a local socket or localhost; neither is
		// allowed here.
		{"postgres://app:" + secret + "@/one", "invalid deploy_info.POSTGRES_URL: host"},
	}
	for _, tt := range tests {
		e := newEnv(t, nil, opts...)
		w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t1.test", tt.url)})
		if tt.wantErr == "" {
			if w.Code != http.StatusCreated {
				t.Errorf("POST with %s: %d %s, want 201", tt.url, w.Code, w.Body)
			}
			continue
		}
		if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), tt.wantErr) {
			t.Errorf("POST with %s: %d %s, want 400 %q", tt.url, w.Code, w.Body, tt.wantErr)
		}
		// PUT is checked the same way.
		mustCreate(t, e.s, "t2.test", pgURL("10.0.0.1/two"))
		w = e.do(request{method: "PUT", path: "/tenant/t2.test/", body: `{"deploy_info": {"POSTGRES_URL": "` + tt.url + `"}}`})
		if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), tt.wantErr) {
			t.Errorf("PUT with %s: %d %s, want 400 %q", tt.url, w.Code, w.Body, tt.wantErr)
		}
	}

	// Without an allow-list any TCP host goes; a socket only with
	// WithServerCredentials, as it may lend the program's own identity.
	e := newEnv(t, nil)
	for i, u := range []string{pgURL("127.0.0.1/one"), pgURL("169.254.169.254/one")} {
		if w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t"+string(rune('a'+i)), u)}); w.Code != http.StatusCreated {
			t.Errorf("POST with %s and no allow-list: %d %s", u, w.Code, w.Body)
		}
	}
	socket := pgURL("10.0.0.1/one?host=/tmp")
	if w := e.do(request{method: "POST", path: "/tenant/", body: createBody("tc", socket)}); w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), `host "/tmp" is a Unix socket`) {
		t.Errorf("POST with %s and no allow-list: %d %s, want 400", socket, w.Code, w.Body)
	}
	e = newEnv(t, nil, WithServerCredentials())
	if w := e.do(request{method: "POST", path: "/tenant/", body: createBody("tc", socket)}); w.Code != http.StatusCreated {
		t.Errorf("POST with %s, no allow-list and WithServerCredentials: %d %s", socket, w.Code, w.Body)
	}
}

// TestAllowedHostsResolvedAtNew checks that a name entry stands for the
// addresses it had when New ran, not for the name.
func TestAllowedHostsResolvedAtNew(t *testing.T) {
	answers := map[string][]string{"db.internal": {"10.1.1.1"}}
	e := newEnv(t, nil, withLookup(fakeDNS(answers)), WithAllowedHosts("db.internal"))
	answers["db.internal"] = []string{"10.6.6.6"} // the name moved
	answers["old.internal"] = []string{"10.1.1.1"}
	for _, c := range []struct {
		url  string
		want int
	}{
		{pgURL("10.1.1.1/one"), 201},
		{pgURL("old.internal/two"), 201},
		{pgURL("db.internal/three"), 400},
		{pgURL("10.6.6.6/four"), 400},
	} {
		w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t"+c.url[len(c.url)-3:], c.url)})
		if w.Code != c.want {
			t.Errorf("POST with %s: %d %s, want %d", c.url, w.Code, w.Body, c.want)
		}
	}
}

// TestWithResolver goes through a real *net.Resolver that has no DNS
// server to ask: localhost is in /etc/hosts; other names fail.
func TestWithResolver(t *testing.T) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			return nil, errors.New("no DNS in tests")
		},
	}
	if _, err := New(store.NewMemory(), WithoutAuth(), WithLogger(discard()), WithResolver(r), WithAllowedHosts("db.invalid")); err == nil || !strings.Contains(err.Error(), `cannot resolve "db.invalid"`) {
		t.Fatalf("New with an unresolvable name: %v", err)
	}
	e := newEnv(t, nil, WithResolver(r), WithAllowedHosts("localhost"))
	for _, c := range []struct {
		id, url string
		want    int
	}{
		{"a", pgURL("localhost/one"), 201},
		{"b", pgURL("127.0.0.1/one"), 201},
		{"c", pgURL("db.invalid/one"), 400},
		{"d", pgURL("10.0.0.1/one"), 400},
	} {
		if w := e.do(request{method: "POST", path: "/tenant/", body: createBody(c.id, c.url)}); w.Code != c.want {
			t.Errorf("POST with %s: %d %s, want %d", c.url, w.Code, w.Body, c.want)
		}
	}
}

// TestParseFailureShortPasswords checks the message for a URL pgx cannot
// parse when its password is short or common: the URL is redacted where
// the password stands, and pgx's reason is shown, not withheld because it
// happens to contain the password's letters ("invalid port" holds "p").
func TestParseFailureShortPasswords(t *testing.T) {
	e := newEnv(t, nil)
	for i, pw := range []string{"p", "a", "o", "postgres", "tcp", secret} {
		u := "postgres://app:" + pw + "@10.0.0.1:99999/one"
		w := e.do(request{method: "POST", path: "/tenant/", body: createBody(fmt.Sprintf("t%d", i), u)})
		want := `invalid deploy_info.POSTGRES_URL "postgres://app:xxxxx@10.0.0.1:99999/one": pgx cannot use it: invalid port`
		if got := errorOf(t, w); w.Code != http.StatusBadRequest || got != want {
			t.Errorf("POST with password %q: %d %q, want 400 %q", pw, w.Code, got, want)
		}
	}
}

func TestSafeErrorText(t *testing.T) {
	secrets := pgurl.Secrets("postgres://app:" + secret + "@h/db?sslpassword=other%21pw")
	for _, s := range []string{secret, "other%21pw", "other!pw"} {
		if !strings.Contains(strings.Join(secrets, " "), s) {
			t.Errorf("secretsOf misses %q: %q", s, secrets)
		}
	}
	if got := safeErrorText(errors.New("dial: connection refused"), secrets); got != "dial: connection refused" {
		t.Errorf("plain error: %q", got)
	}
	// The cause is shown, with the password masked.
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("cannot parse `postgres://app:" + secret + "@h/db`"), "cannot parse `postgres://app:xxxxx@h/db`"},
		{errors.New("bad sslpassword other!pw"), "bad sslpassword xxxxx"},
		{errors.New("bad sslpassword other%21pw\n\tat h"), "bad sslpassword xxxxx at h"},
	} {
		if got := safeErrorText(tt.err, secrets); got != tt.want {
			t.Errorf("safeErrorText(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got := safeErrorText(errors.New(strings.Repeat("y", 1000)), nil); len(got) > 310 {
		t.Errorf("long error kept %d bytes", len(got))
	}
	// A secret that the cut and its "..." could form again.
	if got := safeErrorText(errors.New(strings.Repeat("y", 299)+"z.."), []string{"z..."}); strings.Contains(got, "z...") {
		t.Errorf("cut error = %q, holds the secret", got)
	}
	// A password with whitespace in it: masked before the lines are
	// joined, which collapses whitespace.
	spaced := pgurl.Secrets("postgres://app:pa%20%20ss%09word@h/db")
	if got := safeErrorText(errors.New("password \"pa  ss\tword\" refused"), spaced); strings.Contains(got, "pa ss") || strings.Contains(got, "word\"") {
		t.Errorf("safeErrorText = %q, holds the spaced password", got)
	}
	// The cut never splits a character.
	if got := safeErrorText(errors.New(strings.Repeat("y", 299)+"é tail"), nil); !utf8.ValidString(got) {
		t.Errorf("cut error = %q, not valid UTF-8", got)
	}
}

func TestLineCol(t *testing.T) {
	body := []byte("ab\ncd\n\nef")
	for _, c := range []struct {
		off             int64
		wantLine, wantC int
	}{{0, 1, 1}, {1, 1, 2}, {2, 1, 3}, {3, 2, 1}, {6, 3, 1}, {7, 4, 1}, {8, 4, 2}, {99, 4, 3}, {-5, 1, 1}} {
		if l, col := lineCol(body, c.off); l != c.wantLine || col != c.wantC {
			t.Errorf("lineCol(%d) = %d:%d, want %d:%d", c.off, l, col, c.wantLine, c.wantC)
		}
	}
}

func TestQuoteTable(t *testing.T) {
	for in, want := range map[string]string{
		"goose_db_version":     `"goose_db_version"`,
		"app.goose_db_version": `"app"."goose_db_version"`,
		`x"; DROP TABLE t; --`: `"x""; DROP TABLE t; --"`,
	} {
		if err := checkTableName(in); err != nil {
			t.Errorf("checkTableName(%q): %v", in, err)
		}
		if got := quoteTable(in); got != want {
			t.Errorf("quoteTable(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestBadTenantsShared checks that POST and PUT refuse the deploy info of
// testenv.BadTenants with exactly its message: the tenantsql command
// checks the same table (cmd/tenantsql), so the two cannot drift apart.
func TestBadTenantsShared(t *testing.T) {
	for _, tt := range testenv.BadTenants {
		t.Run(tt.Name, func(t *testing.T) {
			e := newEnv(t, nil)
			info, _ := json.Marshal(tt.DeployInfo)
			w := e.do(request{method: "POST", path: "/tenant/", body: `{"tenant_id": "t1.test", "deploy_info": ` + string(info) + `}`})
			if got := errorOf(t, w); w.Code != http.StatusBadRequest || got != tt.Want {
				t.Errorf("POST: %d %q\nwant 400 %q", w.Code, got, tt.Want)
			}
			mustCreate(t, e.s, "t2.test", pgURL("10.0.0.1/two"))
			w = e.do(request{method: "PUT", path: "/tenant/t2.test/", body: `{"deploy_info": ` + string(info) + `}`})
			if got := errorOf(t, w); w.Code != http.StatusBadRequest || got != tt.Want {
				t.Errorf("PUT: %d %q\nwant 400 %q", w.Code, got, tt.Want)
			}
			if strings.Contains(w.Body.String(), testenv.BadTenantPassword) {
				t.Errorf("the answer shows the password: %s", w.Body)
			}
		})
	}
}
