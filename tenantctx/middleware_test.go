package tenantctx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// seen is what the next handler was given.
type seen struct {
	called bool
	id     string
	ok     bool
	req    *http.Request
}

// serve sends req through Middleware(next, opts...) and returns the answer
// and what next saw. next answers 200 "next".
func serve(t *testing.T, req *http.Request, opts ...MiddlewareOption) (*httptest.ResponseRecorder, seen) {
	t.Helper()
	var s seen
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.called {
			t.Error("next called twice")
		}
		s.called = true
		s.id, s.ok = TenantFrom(r.Context())
		s.req = r
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("next"))
	})
	rec := httptest.NewRecorder()
	Middleware(next, opts...).ServeHTTP(rec, req)
	return rec, s
}

// check asserts the outcome: wantID reached next with status 200, or
// next was not called and the answer is status with {"error": wantErr}.
func check(t *testing.T, rec *httptest.ResponseRecorder, s seen, wantStatus int, wantID, wantErr string) {
	t.Helper()
	if rec.Code != wantStatus {
		t.Errorf("status = %d, want %d (body %q)", rec.Code, wantStatus, rec.Body.String())
	}
	if wantStatus == http.StatusOK {
		if !s.called {
			t.Fatalf("next not called")
		}
		if s.id != wantID || !s.ok {
			t.Errorf("next saw tenant %q, %v; want %q, true", s.id, s.ok, wantID)
		}
		if rec.Body.String() != "next" {
			t.Errorf("body = %q, want next's", rec.Body.String())
		}
		return
	}
	if s.called {
		t.Errorf("next called (with tenant %q) on a %d answer", s.id, rec.Code)
	}
	checkJSONError(t, rec, wantErr)
}

func checkJSONError(t *testing.T, rec *httptest.ResponseRecorder, wantErr string) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":           "application/json; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	var body map[string]any
	dec := json.NewDecoder(rec.Body)
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if dec.More() {
		t.Errorf("body has more than one JSON value")
	}
	if len(body) != 1 || body["error"] != wantErr {
		t.Errorf("body = %v, want {\"error\": %q}", body, wantErr)
	}
}

func request(header []string, opts ...func(*http.Request)) *http.Request {
	req := httptest.NewRequest("GET", "/patients", nil)
	for _, v := range header {
		req.Header.Add(DefaultHeader, v)
	}
	for _, o := range opts {
		o(req)
	}
	return req
}

const noHeader = "no tenant: set the x-tenant-id header"

func TestMiddlewareHeader(t *testing.T) {
	const ctrl = "bad tenant id in the x-tenant-id header: it contains a control character"
	tests := []struct {
		name       string
		header     []string // values of x-tenant-id; nil: none
		set        map[string]string
		opts       []MiddlewareOption
		wantStatus int
		wantID     string
		wantErr    string
	}{
		{name: "set", header: []string{"tenant-1.test.com"}, wantStatus: 200, wantID: "tenant-1.test.com"},
		{name: "spaces and tabs trimmed", header: []string{" \t tenant-1 \t "}, wantStatus: 200, wantID: "tenant-1"},
		{name: "inner space kept", header: []string{"a b"}, wantStatus: 200, wantID: "a b"},
		{name: "case kept", header: []string{"Tenant-1"}, wantStatus: 200, wantID: "Tenant-1"},
		{name: "not validated", header: []string{"../../etc"}, wantStatus: 200, wantID: "../../etc"},
		{name: "missing", wantStatus: 400, wantErr: noHeader},
		{name: "empty", header: []string{""}, wantStatus: 400, wantErr: noHeader},
		{name: "only spaces", header: []string{"  \t "}, wantStatus: 400, wantErr: noHeader},
		{name: "twice", header: []string{"a", "b"}, wantStatus: 400, wantErr: "bad x-tenant-id header: sent 2 times, want once"},
		{name: "twice the same", header: []string{"a", "a"}, wantStatus: 400, wantErr: "bad x-tenant-id header: sent 2 times, want once"},
		{name: "NUL", header: []string{"a\x00b"}, wantStatus: 400, wantErr: ctrl},
		{name: "newline", header: []string{"a\nb"}, wantStatus: 400, wantErr: ctrl},
		{name: "trailing CR", header: []string{"a\r"}, wantStatus: 400, wantErr: ctrl},
		{name: "inner tab", header: []string{"a\tb"}, wantStatus: 400, wantErr: ctrl},
		{name: "DEL", header: []string{"a\x7f"}, wantStatus: 400, wantErr: ctrl},
		{name: "C1 NEL", header: []string{"a\u0085"}, wantStatus: 400, wantErr: ctrl},
		{name: "invalid UTF-8 passes to the lookup", header: []string{"a\xff"}, wantStatus: 200, wantID: "a\xff"},
		{
			name: "custom header", set: map[string]string{"X-Org": "org-1"},
			opts: []MiddlewareOption{FromHeader("x-org")}, wantStatus: 200, wantID: "org-1",
		},
		{
			name: "custom header ignores the default one", header: []string{"tenant-1"},
			opts: []MiddlewareOption{FromHeader("X-Org")}, wantStatus: 400, wantErr: "no tenant: set the X-Org header",
		},
		{
			name: "custom header twice", set: map[string]string{"X-Org": "a"}, header: nil,
			opts: []MiddlewareOption{FromHeader("X-Org"), FromHeader("x-org")}, wantStatus: 200, wantID: "a",
		},
		{
			name: "last From wins: header", header: []string{"from-header"},
			opts: []MiddlewareOption{FromHost(), FromHeader(DefaultHeader)}, wantStatus: 200, wantID: "from-header",
		},
		{
			name: "last From wins: host", header: []string{"from-header"},
			opts: []MiddlewareOption{FromHeader(DefaultHeader), FromHost()}, wantStatus: 200, wantID: "host.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(tt.header, func(r *http.Request) {
				r.Host = "host.test"
				for k, v := range tt.set {
					r.Header.Set(k, v)
				}
			})
			rec, s := serve(t, req, tt.opts...)
			check(t, rec, s, tt.wantStatus, tt.wantID, tt.wantErr)
		})
	}
}

func TestMiddlewareHost(t *testing.T) {
	const none = "no tenant: the request names no host"
	tests := []struct {
		host       string
		wantStatus int
		wantID     string
	}{
		{"tenant-2.test.com", 200, "tenant-2.test.com"},
		{"Tenant-2.Test.com:8000", 200, "tenant-2.test.com"},
		{"tenant-2.test.com.", 200, "tenant-2.test.com"},
		{"TENANT-2.TEST.COM.:443", 200, "tenant-2.test.com"},
		{"127.0.0.1:80", 200, "127.0.0.1"},
		{"tenant:", 200, "tenant"},
		{"[::1]:8080", 200, "::1"},
		{"[::1]", 200, "::1"},
		{"[2001:DB8::1]:443", 200, "2001:db8::1"},
		{"fe80::1", 200, "fe80::1"},               // no brackets: no port to cut
		{"a:b", 200, "a:b"},                       // not a port: kept for the lookup to refuse
		{"[::1]x", 200, "[::1]x"},                 // likewise
		{"\u212acme.test", 200, "\u212acme.test"}, // Kelvin sign: not folded into "k"
		{"", 400, ""},
		{".", 400, ""},
		{":8080", 400, ""},
		{"[]", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req := request([]string{"from-header"}, func(r *http.Request) { r.Host = tt.host })
			rec, s := serve(t, req, FromHost())
			check(t, rec, s, tt.wantStatus, tt.wantID, none)
			if v := rec.Header().Get("Vary"); v != "" {
				t.Errorf("Vary = %q; the host is part of every cache key already", v)
			}
		})
	}
}

func TestMiddlewareSubdomain(t *testing.T) {
	const none = "no tenant: expected a host <tenant>.example.com"
	tests := []struct {
		host       string
		wantStatus int
		wantID     string
	}{
		{"acme.example.com", 200, "acme"},
		{"ACME.Example.COM:8443", 200, "acme"},
		{"acme.example.com.", 200, "acme"},
		{"tenant-2.example.com", 200, "tenant-2"},
		{"www.example.com", 200, "www"}, // a label like any other: Skip it or let the lookup refuse it
		{"example.com", 400, ""},
		{"example.com:80", 400, ""},
		{".example.com", 400, ""},
		{"a.b.example.com", 400, ""},
		{"www.acme.example.com", 400, ""},
		{"acme.example.org", 400, ""},
		{"acmeexample.com", 400, ""},
		{"acme-example.com", 400, ""},
		{"acme.example.com.evil.test", 400, ""},
		{"", 400, ""},
	}
	for _, base := range []string{"example.com", "Example.COM.", ".example.com"} {
		for _, tt := range tests {
			t.Run(base+"/"+tt.host, func(t *testing.T) {
				req := request([]string{"from-header"}, func(r *http.Request) { r.Host = tt.host })
				rec, s := serve(t, req, FromSubdomain(base))
				check(t, rec, s, tt.wantStatus, tt.wantID, none)
			})
		}
	}
}

func TestMiddlewareFromFunc(t *testing.T) {
	errBad := errors.New("bad session cookie")
	tests := []struct {
		name       string
		id         string
		err        error
		wantStatus int
		wantID     string
		wantErr    string
	}{
		{"id", "t1", nil, 200, "t1", ""},
		{"not trimmed", " t1 ", nil, 200, " t1 ", ""},
		{"none", "", nil, 400, "", "no tenant: the request names none"},
		{"error", "", errBad, 400, "", "bad session cookie"},
		{"error wins over an id", "t1", errBad, 400, "", "bad session cookie"},
		{"control character", "t1\n", nil, 400, "", "bad tenant id in the request: it contains a control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *http.Request
			req := request([]string{"from-header"})
			rec, s := serve(t, req, FromFunc(func(r *http.Request) (string, error) {
				got = r
				return tt.id, tt.err
			}))
			check(t, rec, s, tt.wantStatus, tt.wantID, tt.wantErr)
			if got != req {
				t.Errorf("the function was not given the request")
			}
		})
	}
}

func TestMiddlewareLookup(t *testing.T) {
	const secret = "postgres://app:s3cret@db1:5432/tenant_1"
	type key struct{}
	tests := []struct {
		name       string
		header     []string
		known      bool
		err        error
		wantStatus int
		wantCalls  int
		wantErr    string
		wantLog    bool
	}{
		{name: "known", header: []string{"t1"}, known: true, wantStatus: 200, wantCalls: 1},
		{name: "unknown", header: []string{"t1"}, wantStatus: 404, wantCalls: 1, wantErr: `unknown tenant "t1"`},
		{name: "unknown, quoted", header: []string{`a"b`}, wantStatus: 404, wantCalls: 1, wantErr: `unknown tenant "a\"b"`},
		{name: "unknown, invalid UTF-8", header: []string{"a\xff"}, wantStatus: 404, wantCalls: 1, wantErr: `unknown tenant "a\xff"`},
		{
			name: "error", header: []string{"t1"}, err: fmt.Errorf("dial %s: connection refused", secret),
			wantStatus: 503, wantCalls: 1, wantErr: "cannot check the tenant now; try again later", wantLog: true,
		},
		{name: "no tenant: not asked", wantStatus: 400, wantErr: noHeader},
		{name: "control character: not asked", header: []string{"t\x00"}, wantStatus: 400, wantErr: "bad tenant id in the x-tenant-id header: it contains a control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			calls := 0
			lookup := func(ctx context.Context, id string) (bool, error) {
				calls++
				if want := strings.Trim(tt.header[0], " "); id != want {
					t.Errorf("lookup(%q), want %q", id, want)
				}
				if ctx.Value(key{}) != "request" {
					t.Errorf("lookup's context is not the request's")
				}
				if _, ok := TenantFrom(ctx); ok {
					t.Errorf("lookup's context already has a tenant")
				}
				return tt.known, tt.err
			}
			req := request(tt.header, func(r *http.Request) {
				*r = *r.WithContext(context.WithValue(r.Context(), key{}, "request"))
			})
			rec, s := serve(t, req, WithLookup(lookup), WithMiddlewareLogger(log))
			wantID := ""
			if tt.wantStatus == 200 {
				wantID = tt.header[0]
			}
			check(t, rec, s, tt.wantStatus, wantID, tt.wantErr)
			if calls != tt.wantCalls {
				t.Errorf("lookup called %d times, want %d", calls, tt.wantCalls)
			}
			if strings.Contains(rec.Body.String(), "s3cret") || strings.Contains(rec.Body.String(), "db1") {
				t.Errorf("the answer shows the lookup's error: %s", rec.Body)
			}
			if got := strings.Contains(logs.String(), "connection refused"); got != tt.wantLog {
				t.Errorf("lookup error logged: %v, want %v; log:\n%s", got, tt.wantLog, logs.String())
			}
			if tt.wantLog && (!strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), `tenant="\"t1\""`)) {
				t.Errorf("log line lacks the level or the tenant:\n%s", logs.String())
			}
		})
	}
}

func TestMiddlewareLookupNil(t *testing.T) {
	rec, s := serve(t, request([]string{"t1"}), WithLookup(nil))
	check(t, rec, s, 200, "t1", "")
}

// A client that goes away makes the lookup fail with its context's error:
// that is no reason to log an error.
func TestMiddlewareLookupClientGone(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil)) // Info and above
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := request([]string{"t1"}).WithContext(ctx)
	rec, s := serve(t, req, WithMiddlewareLogger(log), WithLookup(func(ctx context.Context, id string) (bool, error) {
		return false, fmt.Errorf("look up %q: %w", id, ctx.Err())
	}))
	check(t, rec, s, 503, "", "cannot check the tenant now; try again later")
	if logs.Len() != 0 {
		t.Errorf("logged at Info or above:\n%s", logs.String())
	}
}

// The default logger is the one slog.Default returns when there is
// something to log, not when the handler was built.
func TestMiddlewareDefaultLogger(t *testing.T) {
	h := Middleware(http.NotFoundHandler(), WithLookup(func(context.Context, string) (bool, error) {
		return false, errors.New("store down")
	}))
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request([]string{"t1"}))
	if rec.Code != 503 || !strings.Contains(logs.String(), "store down") {
		t.Errorf("status %d, log %q; want 503 and the error in the default logger", rec.Code, logs.String())
	}
}

func TestMiddlewareLongIDTruncated(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want string // the quoted id in the message
	}{
		{"short", "abc", `"abc"`},
		{"limit", strings.Repeat("a", 128), `"` + strings.Repeat("a", 128) + `"`},
		{"over the limit", strings.Repeat("a", 129), `"` + strings.Repeat("a", 128) + `"...`},
		{"huge", strings.Repeat("a", 1<<20), `"` + strings.Repeat("a", 128) + `"...`},
		// é is two bytes: byte 128 is the second half of one, which is left out.
		{"cut at a character", "x" + strings.Repeat("é", 100), `"x` + strings.Repeat("é", 63) + `"...`},
		// In invalid UTF-8 the cut looks back no further than one character's length.
		{"invalid UTF-8", strings.Repeat("\x80", 200), `"` + strings.Repeat(`\x80`, 125) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			rec, s := serve(t, request([]string{tt.id}),
				WithLookup(func(context.Context, string) (bool, error) { return false, nil }),
				WithMiddlewareLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			check(t, rec, s, 404, "", "unknown tenant "+tt.want)
			if rec.Body.Len() > 1024 {
				t.Errorf("answer is %d bytes", rec.Body.Len())
			}
		})
	}
	// The log line is cut the same way.
	var logs bytes.Buffer
	serve(t, request([]string{strings.Repeat("b", 5000)}),
		WithLookup(func(context.Context, string) (bool, error) { return false, errors.New("down") }),
		WithMiddlewareLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if !strings.Contains(logs.String(), strings.Repeat("b", 128)) || strings.Contains(logs.String(), strings.Repeat("b", 129)) {
		t.Errorf("log line does not show the id cut to 128 bytes:\n%.400s", logs.String())
	}
}

func TestMiddlewareSkip(t *testing.T) {
	type key struct{}
	tests := []struct {
		name   string
		method string
		path   string
		opts   []MiddlewareOption
		skip   bool
	}{
		{name: "prefix", path: "/api/tenant/", opts: []MiddlewareOption{SkipPrefix("/api/", "/healthz")}, skip: true},
		{name: "second prefix", path: "/healthz", opts: []MiddlewareOption{SkipPrefix("/api/", "/healthz")}, skip: true},
		{name: "prefixes add up", path: "/b/x", opts: []MiddlewareOption{SkipPrefix("/a/"), SkipPrefix("/b/")}, skip: true},
		{name: "not a prefix", path: "/apix", opts: []MiddlewareOption{SkipPrefix("/api/")}},
		{name: "without the slash", path: "/api", opts: []MiddlewareOption{SkipPrefix("/api/")}},
		{name: "byte for byte", path: "/API/x", opts: []MiddlewareOption{SkipPrefix("/api/")}},
		{name: "func", method: "OPTIONS", path: "/x", opts: []MiddlewareOption{Skip(func(r *http.Request) bool { return r.Method == "OPTIONS" })}, skip: true},
		{name: "func says no", path: "/x", opts: []MiddlewareOption{Skip(func(r *http.Request) bool { return r.Method == "OPTIONS" })}},
		{
			name: "any func", path: "/x", skip: true,
			opts: []MiddlewareOption{Skip(func(*http.Request) bool { return false }), Skip(func(*http.Request) bool { return true })},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, header := range [][]string{nil, {"t1"}} {
				method := tt.method
				if method == "" {
					method = "GET"
				}
				req := httptest.NewRequest(method, tt.path, nil)
				for _, v := range header {
					req.Header.Set(DefaultHeader, v)
				}
				// A tenant set further out stays as it is.
				req = req.WithContext(context.WithValue(req.Context(), key{}, "outer"))
				lookups := 0
				opts := append(slices.Clip(tt.opts), WithLookup(func(context.Context, string) (bool, error) { lookups++; return true, nil }))
				rec, s := serve(t, req, opts...)
				if !tt.skip {
					if header == nil {
						check(t, rec, s, 400, "", noHeader)
					} else {
						check(t, rec, s, 200, "t1", "")
					}
					continue
				}
				if !s.called || s.req != req {
					t.Errorf("header %q: next not given the request as it was", header)
				}
				if s.ok {
					t.Errorf("header %q: skipped request has tenant %q", header, s.id)
				}
				if rec.Code != 200 || rec.Body.String() != "next" || len(rec.Header()) != 1 {
					t.Errorf("header %q: skipped answer changed: %d %v %q", header, rec.Code, rec.Header(), rec.Body)
				}
				if lookups != 0 {
					t.Errorf("header %q: lookup called for a skipped request", header)
				}
			}
		})
	}
}

func TestMiddlewareContext(t *testing.T) {
	type key struct{}
	req := request([]string{"t1"})
	req = req.WithContext(WithTenant(context.WithValue(req.Context(), key{}, "kept"), "outer"))
	rec, s := serve(t, req)
	check(t, rec, s, 200, "t1", "")
	if s.req.Context().Value(key{}) != "kept" {
		t.Errorf("next's context lost the request's values")
	}
	if id, _ := TenantFrom(req.Context()); id != "outer" {
		t.Errorf("the caller's request was changed: tenant %q", id)
	}
}

func TestMiddlewareVary(t *testing.T) {
	tests := []struct {
		name   string
		opts   []MiddlewareOption
		header []string
		want   []string
	}{
		{"default header, found", nil, []string{"t1"}, []string{"X-Tenant-Id"}},
		{"default header, missing", nil, nil, []string{"X-Tenant-Id"}},
		{"custom header", []MiddlewareOption{FromHeader("x-org")}, nil, []string{"X-Org"}},
		{"host", []MiddlewareOption{FromHost()}, nil, nil},
		{"func", []MiddlewareOption{FromFunc(func(*http.Request) (string, error) { return "t", nil })}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := serve(t, request(tt.header), tt.opts...)
			if got := rec.Header().Values("Vary"); !slices.Equal(got, tt.want) {
				t.Errorf("Vary = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMiddlewareMisuse(t *testing.T) {
	tests := []struct {
		name string
		next http.Handler
		opt  MiddlewareOption
		want string
	}{
		{"nil handler", nil, nil, "nil handler"},
		{"empty header", http.NotFoundHandler(), FromHeader(" "), "FromHeader"},
		{"empty base", http.NotFoundHandler(), FromSubdomain(""), "FromSubdomain"},
		{"dot base", http.NotFoundHandler(), FromSubdomain("."), "FromSubdomain"},
		{"IPv6 base", http.NotFoundHandler(), FromSubdomain("[::1]"), "FromSubdomain"},
		{"nil func", http.NotFoundHandler(), FromFunc(nil), "FromFunc"},
		{"nil skip", http.NotFoundHandler(), Skip(nil), "Skip"},
		{"empty prefix", http.NotFoundHandler(), SkipPrefix("/a", ""), "SkipPrefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("panic %v, want one naming %s", r, tt.want)
				}
			}()
			var opts []MiddlewareOption
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			Middleware(tt.next, opts...)
		})
	}
}

// FuzzMiddlewareHeader sends arbitrary header values through the
// middleware. Whatever the value, it must not panic, and either next gets
// exactly the trimmed value, or the client gets a short JSON error.
func FuzzMiddlewareHeader(f *testing.F) {
	for _, seed := range []string{
		"tenant-1.test.com", "", " ", " a ", "\t", "a\x00", "a\r\n", "unknown-1", "\xff\xfe",
		"\u0085", "é", strings.Repeat("a", 200), strings.Repeat("\x80", 200), `"quoted"`, "<b>",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var got string
		called := false
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			got, _ = TenantFrom(r.Context())
		})
		h := Middleware(next, WithLookup(func(_ context.Context, id string) (bool, error) {
			return !strings.Contains(id, "unknown"), nil
		}))
		req := httptest.NewRequest("GET", "/", nil)
		req.Header[http.CanonicalHeaderKey(DefaultHeader)] = []string{v}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		want := strings.Trim(v, " \t")
		switch rec.Code {
		case http.StatusOK:
			if !called || got != want {
				t.Fatalf("200 for %q: next called %v with %q, want %q", v, called, got, want)
			}
			if want == "" || hasControl(want) {
				t.Fatalf("200 for %q, which should have been refused", v)
			}
			return
		case http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("status %d for %q", rec.Code, v)
		}
		if called {
			t.Fatalf("next called on a %d for %q", rec.Code, v)
		}
		if rec.Code == http.StatusNotFound && !strings.Contains(want, "unknown") {
			t.Fatalf("404 for %q, which the lookup knows", v)
		}
		if rec.Body.Len() > 1024 {
			t.Fatalf("%d-byte answer for a %d-byte header", rec.Body.Len(), len(v))
		}
		if !utf8.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not UTF-8: %q", rec.Body)
		}
		var body struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Fatalf("answer %q: not {\"error\": ...}: %v", rec.Body, err)
		}
	})
}
