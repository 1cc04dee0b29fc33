package api

import (
	"context"
	"database/sql"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/store"
)

func TestNewOptions(t *testing.T) {
	db := &sql.DB{} // never used: New only checks it is there
	tests := []struct {
		name    string
		opts    []Option
		wantErr string // "" for success
	}{
		{"no auth chosen", nil, "WithToken"},
		{"no auth chosen names the opt-out", nil, "WithoutAuth"},
		{"empty token", []Option{WithToken("")}, "no bearer token"},
		{"token and no auth", []Option{WithToken("x"), WithoutAuth()}, "both"},
		{"token with spaces", []Option{WithToken(" x ")}, "white space"},
		{"token", []Option{WithToken("x")}, ""},
		{"no auth", []Option{WithoutAuth()}, ""},
		{"zero body", []Option{WithoutAuth(), WithMaxBodyBytes(0)}, "WithMaxBodyBytes"},
		{"negative body", []Option{WithoutAuth(), WithMaxBodyBytes(-1)}, "WithMaxBodyBytes"},
		{"allow nothing", []Option{WithoutAuth(), WithAllowedHosts()}, "at least one"},
		{"empty host entry", []Option{WithoutAuth(), WithAllowedHosts("")}, "empty entry"},
		{"bad CIDR", []Option{WithoutAuth(), WithAllowedHosts("10.0.0.0/99")}, "CIDR"},
		{"unresolvable name", []Option{WithoutAuth(), withLookup(fakeDNS(nil)), WithAllowedHosts("db.internal")}, `cannot resolve "db.internal"`},
		{"hosts", []Option{WithoutAuth(), withLookup(fakeDNS(map[string][]string{"db.internal": {"10.1.1.1"}})), WithAllowedHosts("10.0.0.0/8", "::1", "db.internal")}, ""},
		{"health without db", []Option{WithoutAuth(), WithHealth(nil)}, "WithHealth(nil)"},
		{"health concurrency", []Option{WithoutAuth(), WithHealth(db, WithHealthConcurrency(0))}, "WithHealthConcurrency"},
		{"health timeout", []Option{WithoutAuth(), WithHealth(db, WithHealthTimeout(0))}, "WithHealthTimeout"},
		{"empty table", []Option{WithoutAuth(), WithHealth(db, WithMigrationTable(""))}, "WithMigrationTable"},
		{"three-part table", []Option{WithoutAuth(), WithHealth(db, WithMigrationTable("a.b.c"))}, "WithMigrationTable"},
		{"long table", []Option{WithoutAuth(), WithHealth(db, WithMigrationTable(strings.Repeat("t", 64)))}, "WithMigrationTable"},
		{"health", []Option{WithoutAuth(), WithHealth(db, WithMigrationTable("app.goose"), WithHealthConcurrency(2), WithHealthTimeout(time.Second))}, ""},
		{"nil stats", []Option{WithoutAuth(), WithStats(nil)}, "WithStats"},
		{"nil logger and resolver mean the defaults", []Option{WithToken("x"), WithLogger(nil), WithResolver(nil)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(store.NewMemory(), append([]Option{WithLogger(discard())}, tt.opts...)...)
			if tt.wantErr == "" {
				if err != nil || h == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(nil, WithoutAuth(), WithLogger(discard())); err == nil {
		t.Error("New(nil store): no error")
	}
}

// everyRoute lists a request for every route and method, and for an
// unknown route.
var everyRoute = []request{
	{method: "GET", path: "/tenant/"},
	{method: "GET", path: "/tenant"},
	{method: "POST", path: "/tenant/", body: createBody("a.test", pgURL("10.0.0.1/a"))},
	{method: "GET", path: "/tenant/a.test/"},
	{method: "GET", path: "/tenant/a.test"},
	{method: "PUT", path: "/tenant/a.test/", body: `{"deploy_info": {"POSTGRES_URL": "` + pgURL("10.0.0.1/b") + `"}}`},
	{method: "DELETE", path: "/tenant/a.test/"},
	{method: "GET", path: "/health-check/"},
	{method: "GET", path: "/health-check"},
	{method: "GET", path: "/stats/"},
	{method: "GET", path: "/stats"},
	{method: "PATCH", path: "/tenant/"},
	{method: "GET", path: "/no-such-route"},
}

func TestAuthEveryRoute(t *testing.T) {
	stats := WithStats(func(context.Context) any { return map[string]int{"open": 1} })
	e := newEnv(t, nil, stats)
	refused := []struct {
		name   string
		header map[string]string
		want   string // WWW-Authenticate
	}{
		{"no token", map[string]string{"Authorization": ""}, "Bearer"},
		{"wrong token", map[string]string{"Authorization": "Bearer wrong"}, `Bearer error="invalid_token"`},
		{"token prefix", map[string]string{"Authorization": "Bearer " + testToken[:5]}, `Bearer error="invalid_token"`},
		{"token longer", map[string]string{"Authorization": "Bearer " + testToken + "x"}, `Bearer error="invalid_token"`},
		{"other scheme", map[string]string{"Authorization": "Basic " + testToken}, `Bearer error="invalid_token"`},
		{"no scheme", map[string]string{"Authorization": testToken}, `Bearer error="invalid_token"`},
	}
	for _, req := range everyRoute {
		for _, c := range refused {
			req.header = c.header
			w := e.do(req)
			if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != c.want {
				t.Errorf("%s %s, %s: status %d, WWW-Authenticate %q; want 401 and %q", req.method, req.path, c.name, w.Code, w.Header().Get("WWW-Authenticate"), c.want)
			}
		}
		req.header = nil
		if w := e.do(req); w.Code == http.StatusUnauthorized {
			t.Errorf("%s %s with the token: 401 %s", req.method, req.path, w.Body)
		}
		req.header = map[string]string{"Authorization": "bearer   " + testToken + " "}
		if w := e.do(req); w.Code == http.StatusUnauthorized {
			t.Errorf("%s %s with lowercase scheme and spaces: 401 %s", req.method, req.path, w.Body)
		}
	}
	if got := e.logs.records(t, "request refused"); len(got) != len(everyRoute)*len(refused) {
		t.Errorf("%d refusals logged, want %d", len(got), len(everyRoute)*len(refused))
	}

	// The tenant was never created while the token was wrong.
	if list := mustList(t, e.s); len(list) != 0 {
		t.Errorf("store holds %v after refused requests", list)
	}
}

func TestAuthTwoHeaders(t *testing.T) {
	e := newEnv(t, nil)
	r := request{method: "GET", path: "/tenant/"}
	req := newRequest(r)
	req.Header.Add("Authorization", "Bearer "+testToken)
	req.Header.Add("Authorization", "Bearer other")
	w := recordServe(e.h, req)
	checkAnswer(t, r, w)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: status %d, want 401", w.Code)
	}
}

func TestWithoutAuth(t *testing.T) {
	stats := WithStats(func(context.Context) any { return map[string]int{"open": 1} })
	h, err := New(store.NewMemory(), WithoutAuth(), stats, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range everyRoute {
		req.header = map[string]string{"Authorization": ""}
		if w := serve(t, h, req); w.Code == http.StatusUnauthorized {
			t.Errorf("%s %s without auth: 401", req.method, req.path)
		}
	}
}

func TestRoutesAndMethods(t *testing.T) {
	e := newEnv(t, nil, WithStats(func(context.Context) any { return nil }))
	mustCreate(t, e.s, "a.test", pgURL("10.0.0.1/a"))
	allowed := map[string]string{
		"/tenant":        "GET, POST",
		"/tenant/a.test": "GET, PUT, DELETE",
		"/health-check":  "GET",
		"/stats":         "GET",
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "BREW"}
	for path, allow := range allowed {
		for _, p := range []string{path, path + "/"} {
			for _, m := range methods {
				if strings.Contains(allow, m) {
					continue
				}
				w := e.do(request{method: m, path: p})
				if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != allow {
					t.Errorf("%s %s: status %d, Allow %q; want 405 and %q", m, p, w.Code, w.Header().Get("Allow"), allow)
				}
			}
		}
	}
	for _, p := range []string{"", "/", "/tenants", "/tenant/a/b", "/tenant/a.test/x/", "/tenant//", "/tenant/a%2Fb/", "/health-check/x", "/api/tenant/", "/TENANT/"} {
		w := e.do(request{method: "GET", path: p})
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %q: status %d, want 404", p, w.Code)
		}
	}
	// Without WithStats there is no stats route.
	e2 := newEnv(t, nil)
	for _, p := range []string{"/stats", "/stats/"} {
		if w := e2.do(request{method: "GET", path: p}); w.Code != http.StatusNotFound {
			t.Errorf("GET %s without WithStats: status %d, want 404", p, w.Code)
		}
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	e := newEnv(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", e.h))
	w := serve(t, mux, request{method: "POST", path: "/api/tenant/", body: createBody("t1.test", pgURL("10.0.0.1/t1"))})
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /api/tenant/: %d %s", w.Code, w.Body)
	}
	w = serve(t, mux, request{method: "GET", path: "/api/tenant/t1.test"})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/tenant/t1.test: %d %s", w.Code, w.Body)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, nil, WithStats(func(ctx context.Context) any {
		if ctx == nil {
			panic("no context")
		}
		return map[string]any{"open": 3, "tenants": map[string]int{"a": 1}}
	}))
	w := e.do(request{method: "GET", path: "/stats/"})
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"open":3,"tenants":{"a":1}}` {
		t.Errorf("GET /stats/: %d %s", w.Code, w.Body)
	}

	// What cannot be encoded is the program's fault, not the client's.
	e = newEnv(t, nil, WithStats(func(context.Context) any { return make(chan int) }))
	if w := e.do(request{method: "GET", path: "/stats/"}); w.Code != http.StatusInternalServerError {
		t.Errorf("GET /stats/ of a channel: %d %s, want 500", w.Code, w.Body)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	e := newEnv(t, nil, WithStats(func(context.Context) any {
		var m map[string]int
		//lint:ignore SA5000 the panic is the point: the API must recover from it
		m["x"] = 1 // a runtime error
		return m
	}))
	w := e.do(request{method: "GET", path: "/stats/"})
	if w.Code != http.StatusInternalServerError || errorOf(t, w) != "internal error" {
		t.Errorf("panicking handler: %d %s, want 500 internal error", w.Code, w.Body)
	}
	recs := e.logs.records(t, "panic")
	if len(recs) != 1 || !strings.Contains(recs[0]["panic"].(string), "nil map") {
		t.Errorf("panic log records: %v", recs)
	}
}

func TestAnswerHeaders(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do(request{method: "GET", path: "/tenant/"})
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", w.Header())
	}
}

// An empty bearer token, or none, is refused over a real HTTP server
// (which trims "Bearer " to "Bearer"), and nothing is created: an empty
// token must never match, whatever the token compare does with it.
func TestAuthEmptyBearerToken(t *testing.T) {
	s := store.NewMemory()
	srv, _ := newServer(t, s, WithToken(testToken))
	body := createBody("a.test", pgURL("10.0.0.1/a"))
	for _, c := range []struct {
		name   string
		header map[string]string
	}{
		{"no Authorization header", nil},
		{"Authorization: Bearer and a space", map[string]string{"Authorization": "Bearer "}},
		{"Authorization: Bearer", map[string]string{"Authorization": "Bearer"}},
		{"Authorization: Bearer and spaces", map[string]string{"Authorization": "Bearer    "}},
		{"Authorization: empty", map[string]string{"Authorization": ""}},
	} {
		h := map[string]string{"Content-Type": "application/json"}
		maps.Copy(h, c.header)
		for _, r := range []struct{ method, path, body string }{{"GET", "/tenant/", ""}, {"POST", "/tenant/", body}} {
			a := httpDo(t, srv, r.method, r.path, r.body, h)
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: status %d, want 401: an empty bearer token was accepted", r.method, r.path, c.name, a.status)
			}
		}
	}
	if list := mustList(t, s); len(list) != 0 {
		t.Errorf("tenants %v created with an empty bearer token", list)
	}
	// A handler configured with an empty token would match an empty
	// bearer token: New refuses it.
	if h, err := New(s, WithToken(""), WithLogger(discard())); err == nil {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/tenant/", nil)
		req.Header.Set("Authorization", "Bearer ")
		h.ServeHTTP(w, req)
		t.Errorf("New(WithToken(\"\")) succeeded; an empty bearer token then gets %d", w.Code)
	}
}
