package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

const (
	testToken = "test-token-4f1c9a"
	// secret is the password of every URL the tests send. It must never
	// appear in an answer or a log line.
	secret = "Sekr3tPw917"
)

// pgURL returns a tenant URL with the test password.
func pgURL(hostAndRest string) string { return "postgres://app:" + secret + "@" + hostAndRest }

// logBuffer collects log output from concurrent handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the JSON log records whose message contains msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// env is a handler under test, its store and its log.
type env struct {
	t    *testing.T
	h    http.Handler
	s    store.Store
	logs *logBuffer
}

// newEnv builds a handler over s (a new memory store if nil) with the test
// token and a captured log, plus opts. When the test ends it checks that
// the log never held the password.
func newEnv(t *testing.T, s store.Store, opts ...Option) *env {
	t.Helper()
	if s == nil {
		s = store.NewMemory()
	}
	logs := &logBuffer{}
	all := append([]Option{WithToken(testToken), WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	h, err := New(s, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { assertNoSecret(t, "log output", logs.String()) })
	return &env{t: t, h: h, s: s, logs: logs}
}

// assertNoSecret fails if text holds the password, as it is or escaped.
func assertNoSecret(t testing.TB, what, text string) {
	t.Helper()
	for _, s := range []string{secret, url.QueryEscape(secret), strings.ToLower(secret)} {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the password:\n%s", what, text)
			return
		}
	}
}

// request is one request to send.
type request struct {
	method, path, body string
	header             map[string]string // "" deletes a header
}

// do sends req with the test token (unless req.header says otherwise) and
// checks what every answer must be: JSON, a non-empty "error" for every
// failure, no password.
func (e *env) do(req request) *httptest.ResponseRecorder {
	e.t.Helper()
	return serve(e.t, e.h, req)
}

func serve(t testing.TB, h http.Handler, req request) *httptest.ResponseRecorder {
	t.Helper()
	w := recordServe(h, newRequest(req))
	checkAnswer(t, req, w)
	return w
}

// newRequest builds req with the test token and, for a body or a POST or
// PUT, a JSON content type, then applies req.header.
func newRequest(req request) *http.Request {
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, "http://admin.test/", body)
	// Set the path apart, so that any path, "" included, can be sent; a
	// server unescapes it as url.Parse does.
	r.URL.Path, r.URL.RawPath = req.path, ""
	if u, err := url.Parse(req.path); err == nil {
		r.URL.Path, r.URL.RawPath = u.Path, u.RawPath
	}
	r.Header.Set("Authorization", "Bearer "+testToken)
	if req.body != "" || req.method == http.MethodPost || req.method == http.MethodPut {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

func recordServe(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func checkAnswer(t testing.TB, req request, w *httptest.ResponseRecorder) {
	t.Helper()
	what := req.method + " " + req.path
	assertNoSecret(t, "answer to "+what, w.Body.String())
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Errorf("%s: answer is not JSON: %v\n%s", what, err, w.Body)
		return
	}
	m, _ := v.(map[string]any)
	switch {
	case strings.HasPrefix(req.path, "/health-check") && w.Code == http.StatusServiceUnavailable:
		// The health check tells what is wrong in its own format.
		if m["status"] != "unavailable" {
			t.Errorf("%s: status %d with body %s, want status unavailable", what, w.Code, w.Body)
		}
	case w.Code >= 400:
		if msg, _ := m["error"].(string); msg == "" || len(m) != 1 {
			t.Errorf("%s: status %d with body %s, want {\"error\": \"...\"}", what, w.Code, w.Body)
		}
	}
}

// errorOf returns the "error" of an answer.
func errorOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var v struct {
		Error string `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &v)
	return v.Error
}

// decode decodes an answer into v.
func decode(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
}

// createBody is a POST body for id with url.
func createBody(id, url string) string {
	b, _ := json.Marshal(map[string]any{"tenant_id": id, "deploy_info": map[string]string{store.KeyPostgresURL: url}})
	return string(b)
}

// mustCreate creates a tenant in the store directly.
func mustCreate(t testing.TB, s store.Store, id, url string) store.Tenant {
	t.Helper()
	tn, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// fakeDNS is a lookup for tests: names map to addresses; others fail.
func fakeDNS(names map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		list, ok := names[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []netip.Addr
		for _, a := range list {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

// failingStore is a store whose every call fails as an unreachable
// backend would, with a message naming an internal address.
type failingStore struct{ store.Store }

var errBackend = errors.New("store: redis 10.9.8.7:6379: connection refused")

func (failingStore) Get(context.Context, string) (store.Tenant, error) {
	return store.Tenant{}, errBackend
}
func (failingStore) List(context.Context) ([]store.Tenant, error) { return nil, errBackend }
func (failingStore) Create(context.Context, store.Tenant) (store.Tenant, error) {
	return store.Tenant{}, errBackend
}
func (failingStore) Update(context.Context, store.Tenant) (store.Tenant, error) {
	return store.Tenant{}, errBackend
}
func (failingStore) Delete(context.Context, string) (bool, error) { return false, errBackend }
func (failingStore) Ping(context.Context) error                   { return errBackend }

// reportingStore adds a store.StatusReporter to a store.
type reportingStore struct {
	store.Store
	status store.Status
}

func (r reportingStore) Status() store.Status { return r.status }

// mustList returns s.List, failing the test if it fails: "nothing was
// created" must not pass because the list could not be read.
func mustList(t testing.TB, s store.Store) []store.Tenant {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return list
}
