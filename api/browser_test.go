package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

// httpAnswer is an answer over real HTTP.
type httpAnswer struct {
	status int
	header http.Header
	body   string
	err    string // the "error" of a JSON error answer
}

// httpDo sends a request to srv with the given headers ("Host" sets the
// Host header) and checks what every answer must be: JSON without the
// password.
func httpDo(t *testing.T, srv *httptest.Server, method, path, body string, header map[string]string) httpAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	assertNoSecret(t, "answer to "+method+" "+path, a.body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, answer is not a JSON object: %q", method, path, a.status, raw)
	}
	a.err, _ = v["error"].(string)
	if a.status >= 400 && a.err == "" {
		t.Errorf("%s %s: %d without an error message: %s", method, path, a.status, raw)
	}
	return a
}

// newServer serves New(s, opts...) over HTTP, with a log checked for the
// password when the test ends.
func newServer(t *testing.T, s store.Store, opts ...Option) (*httptest.Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	h, err := New(s, append([]Option{WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { assertNoSecret(t, "log output", logs.String()) })
	return srv, logs
}

// A web page can send a POST with no Content-Type, or a "simple" one,
// without a CORS preflight; only application/json is accepted on POST and
// PUT, so that the browser must ask first, and is refused.
func TestContentTypeOverHTTP(t *testing.T) {
	create := createBody("t1.test", pgURL("10.0.0.1/one"))
	update := `{"deploy_info": {"POSTGRES_URL": "` + pgURL("10.0.0.2/one") + `"}}`
	tests := []struct {
		name         string
		method, path string
		body         string
		contentType  string // "" sends none
		want         int
		wantErr      string
	}{
		{name: "POST json", method: "POST", path: "/tenant/", body: create, contentType: "application/json", want: 201},
		{name: "POST json utf-8", method: "POST", path: "/tenant/", body: create, contentType: "application/json; charset=utf-8", want: 201},
		{name: "POST json UTF-8 and spaces", method: "POST", path: "/tenant/", body: create, contentType: "Application/JSON ; charset=\"UTF-8\"", want: 201},
		{name: "POST json other parameter", method: "POST", path: "/tenant/", body: create, contentType: "application/json; v=1", want: 201},
		{name: "POST none", method: "POST", path: "/tenant/", body: create, want: 415, wantErr: "missing Content-Type: send the header Content-Type: application/json with a POST body"},
		{name: "POST none, empty body", method: "POST", path: "/tenant/", want: 415, wantErr: "missing Content-Type"},
		{name: "POST text/plain", method: "POST", path: "/tenant/", body: create, contentType: "text/plain", want: 415, wantErr: `Content-Type must be application/json, got "text/plain"`},
		{name: "POST form", method: "POST", path: "/tenant/", body: create, contentType: "application/x-www-form-urlencoded", want: 415, wantErr: "must be application/json"},
		{name: "POST multipart", method: "POST", path: "/tenant/", body: create, contentType: "multipart/form-data; boundary=x", want: 415, wantErr: "must be application/json"},
		{name: "POST json-like", method: "POST", path: "/tenant/", body: create, contentType: "application/json-patch+json", want: 415, wantErr: "must be application/json"},
		{name: "POST latin1", method: "POST", path: "/tenant/", body: create, contentType: "application/json; charset=latin1", want: 415, wantErr: `charset must be utf-8, got "latin1"`},
		{name: "POST malformed", method: "POST", path: "/tenant/", body: create, contentType: "application/json;;", want: 415, wantErr: "must be application/json"},
		{name: "PUT json", method: "PUT", path: "/tenant/t0.test/", body: update, contentType: "application/json", want: 200},
		{name: "PUT none", method: "PUT", path: "/tenant/t0.test/", body: update, want: 415, wantErr: "missing Content-Type: send the header Content-Type: application/json with a PUT body"},
		{name: "PUT text/plain", method: "PUT", path: "/tenant/t0.test/", body: update, contentType: "text/plain;charset=UTF-8", want: 415, wantErr: "must be application/json"},
		{name: "DELETE needs none", method: "DELETE", path: "/tenant/t0.test/", want: 200},
		{name: "GET needs none", method: "GET", path: "/tenant/", want: 200},
	}
	for _, auth := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name + " with token"
			if !auth {
				name = tt.name + " without auth"
			}
			t.Run(name, func(t *testing.T) {
				s := store.NewMemory()
				mustCreate(t, s, "t0.test", pgURL("10.0.0.1/zero"))
				header := map[string]string{}
				opt := WithoutAuth()
				if auth {
					header["Authorization"] = "Bearer " + testToken
					opt = WithToken(testToken)
				}
				if tt.contentType != "" {
					header["Content-Type"] = tt.contentType
				}
				srv, _ := newServer(t, s, opt)
				a := httpDo(t, srv, tt.method, tt.path, tt.body, header)
				if a.status != tt.want || !strings.Contains(a.err, tt.wantErr) {
					t.Fatalf("%d %q, want %d with an error containing %q", a.status, a.err, tt.want, tt.wantErr)
				}
				list := mustList(t, s)
				if tt.want == 415 && (len(list) != 1 || list[0].Version != 1) {
					t.Errorf("a refused request changed the store: %v", list)
				}
			})
		}
	}
}

// Without a token, a request a browser sends for another site's page is
// refused, whatever its method; programs, which send neither Origin nor
// Sec-Fetch-Site, and the API's own origin are served.
func TestCrossOriginOverHTTP(t *testing.T) {
	create := createBody("t1.test", pgURL("10.0.0.1/one"))
	const host = "admin.test:8000" // the Host header every request sends
	tests := []struct {
		name    string
		method  string
		header  map[string]string
		want    int // without auth; with a token, every case is served
		wantErr string
	}{
		{name: "no browser headers", method: "POST", want: 201},
		{name: "same origin", method: "POST", header: map[string]string{"Origin": "http://admin.test:8000", "Sec-Fetch-Site": "same-origin"}, want: 201},
		{name: "same origin, any case", method: "POST", header: map[string]string{"Origin": "http://ADMIN.test:8000"}, want: 201},
		{name: "same origin over https", method: "POST", header: map[string]string{"Origin": "https://admin.test:8000"}, want: 201},
		{name: "typed by the user", method: "GET", header: map[string]string{"Sec-Fetch-Site": "none"}, want: 200},
		{name: "cross-site", method: "POST", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403, wantErr: `cross-origin request refused: Sec-Fetch-Site is "cross-site"`},
		{name: "same origin behind a proxy that rewrites Host", method: "POST", header: map[string]string{"Origin": "https://ui.example", "Sec-Fetch-Site": "same-origin"}, want: 201},
		{name: "cross-site with a same Origin", method: "POST", header: map[string]string{"Origin": "http://admin.test:8000", "Sec-Fetch-Site": "cross-site"}, want: 403, wantErr: "Sec-Fetch-Site"},
		{name: "same-site", method: "POST", header: map[string]string{"Sec-Fetch-Site": "same-site"}, want: 403, wantErr: `Sec-Fetch-Site is "same-site"`},
		{name: "cross-site GET", method: "GET", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403, wantErr: "cross-origin"},
		{name: "other origin", method: "POST", header: map[string]string{"Origin": "https://evil.example"}, want: 403, wantErr: `cross-origin request refused: Origin "https://evil.example" is not this server (Host "admin.test:8000")`},
		{name: "other port", method: "POST", header: map[string]string{"Origin": "http://admin.test:3000"}, want: 403, wantErr: "is not this server"},
		{name: "default port", method: "POST", header: map[string]string{"Origin": "http://admin.test"}, want: 403, wantErr: "is not this server"},
		{name: "null origin", method: "POST", header: map[string]string{"Origin": "null"}, want: 403, wantErr: `Origin "null"`},
		{name: "origin with a path", method: "POST", header: map[string]string{"Origin": "http://admin.test:8000/x"}, want: 403, wantErr: "is not this server"},
		{name: "origin with user info", method: "POST", header: map[string]string{"Origin": "http://u@admin.test:8000"}, want: 403, wantErr: "is not this server"},
		{name: "other origin GET", method: "GET", header: map[string]string{"Origin": "http://evil.example"}, want: 403, wantErr: "cross-origin"},
		{name: "preflight", method: "OPTIONS", header: map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, want: 403, wantErr: "cross-origin"},
	}
	for _, auth := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name + " without auth"
			if auth {
				name = tt.name + " with token"
			}
			t.Run(name, func(t *testing.T) {
				s := store.NewMemory()
				header := map[string]string{"Host": host, "Content-Type": "application/json"}
				opt := WithoutAuth()
				if auth {
					header["Authorization"] = "Bearer " + testToken
					opt = WithToken(testToken)
				}
				for k, v := range tt.header {
					header[k] = v
				}
				body := ""
				if tt.method == "POST" {
					body = create
				}
				srv, logs := newServer(t, s, opt)
				a := httpDo(t, srv, tt.method, "/tenant/", body, header)
				want, wantErr := tt.want, tt.wantErr
				if auth && want == 403 {
					// A page cannot make the browser send the token.
					want, wantErr = map[string]int{"POST": 201, "GET": 200, "OPTIONS": 405}[tt.method], ""
				}
				if a.status != want || !strings.Contains(a.err, wantErr) {
					t.Fatalf("%d %q, want %d with an error containing %q", a.status, a.err, want, wantErr)
				}
				list := mustList(t, s)
				if (a.status == 201) != (len(list) == 1) {
					t.Errorf("store holds %d tenants after %d", len(list), a.status)
				}
				if a.status == 403 && len(logs.records(t, "request refused")) != 1 {
					t.Errorf("the refusal was not logged:\n%s", logs)
				}
			})
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		origin, host string
		want         bool
	}{
		{"http://admin.test:8000", "admin.test:8000", true},
		{"http://admin.test", "admin.test", true},
		{"http://admin.test:80", "admin.test", true},
		{"http://admin.test", "admin.test:80", true},
		{"https://admin.test", "admin.test:443", true},
		{"http://[::1]:8000", "[::1]:8000", true},
		{"http://127.0.0.1:8000", "127.0.0.1:8000", true},
		{"https://admin.test", "admin.test:80", false},
		{"http://admin.test", "admin.test:443", false},
		{"http://127.0.0.1:8000", "localhost:8000", false},
		{"http://admin.test.evil:8000", "admin.test:8000", false},
		{"ftp://admin.test", "admin.test", false},
		{"admin.test", "admin.test", false},
		{"", "admin.test", false},
		{"null", "null", false},
		{"http://admin.test/", "admin.test", false},
		{"http://admin.test?x", "admin.test", false},
		{"http://admin.test#x", "admin.test", false},
		{"http://%zz", "%zz", false},
	}
	for _, tt := range tests {
		if got := sameOrigin(tt.origin, tt.host); got != tt.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tt.origin, tt.host, got, tt.want)
		}
	}
}
