package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

func TestListenAddr(t *testing.T) {
	tests := []struct {
		addr   string
		set    bool
		noAuth bool
		want   string
	}{
		{addr: "", set: false, noAuth: false, want: ":8000"},
		{addr: "", set: false, noAuth: true, want: "127.0.0.1:8000"},
		{addr: ":9000", set: true, noAuth: false, want: ":9000"},
		{addr: ":9000", set: true, noAuth: true, want: ":9000"}, // asked for: served, with a warning
		{addr: "0.0.0.0:8000", set: true, noAuth: true, want: "0.0.0.0:8000"},
	}
	for _, tt := range tests {
		if got := listenAddr(tt.addr, tt.set, tt.noAuth); got != tt.want {
			t.Errorf("listenAddr(%q, set=%v, noAuth=%v) = %q, want %q", tt.addr, tt.set, tt.noAuth, got, tt.want)
		}
	}
}

// With --insecure-no-auth and no --addr, the example listens on the
// loopback interface only, and says so. The example is built with a free
// port as its default (8000 may be taken), so the test always runs.
func TestNoAuthListensOnLoopback(t *testing.T) {
	testenv.PostgresURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	bin := buildWithPort(t, port)
	s := startBinary(t, bin, nil, "--store", writeConfig(t, map[string]string{}), "--insecure-no-auth")
	if want := fmt.Sprintf("http://127.0.0.1:%d", port); s.url != want {
		t.Fatalf("listening on %s, want %s", s.url, want)
	}
	if code, body := s.do("GET", "/api/tenant/", "", nil, false); code != http.StatusOK {
		t.Fatalf("GET /api/tenant/ without a token: %d %v", code, body)
	}
	if logs := s.log(); !strings.Contains(logs, "--insecure-no-auth") || !strings.Contains(logs, "only this machine can reach it") {
		t.Errorf("the log does not say that the API without a token listens on loopback only:\n%s", logs)
	}
}

// Without a token, the admin API still refuses what a web page could send,
// and a tenant URL that would borrow the server's ~/.pgpass password.
func TestNoAuthAdminAPI(t *testing.T) {
	testenv.PostgresURL(t)
	testenv.DropDatabase(t, testenv.Unique("tsql_hosp_na"))
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".pgpass"), []byte("127.0.0.1:*:*:*:from-pgpass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startWith(t, []string{"HOME=" + home},
		"--store", writeConfig(t, map[string]string{}), "--addr", "127.0.0.1:0", "--insecure-no-auth")
	good := `{"tenant_id": "tenant-na.test.com", "deploy_info": {"POSTGRES_URL": "` + tenantURL(t, testenv.Unique("tsql_hosp_na")) + `"}}`
	tests := []struct {
		name    string
		method  string
		body    string
		header  map[string]string
		want    int
		wantErr string
	}{
		{name: "no Content-Type", method: "POST", body: good, want: 415, wantErr: "missing Content-Type"},
		{name: "text/plain", method: "POST", body: good, header: map[string]string{"Content-Type": "text/plain"}, want: 415, wantErr: "must be application/json"},
		{name: "other origin", method: "POST", body: good, header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, want: 403, wantErr: "cross-origin request refused"},
		{name: "cross-site", method: "POST", body: good, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, want: 403, wantErr: "cross-origin request refused"},
		{name: "server's password", method: "POST", body: `{"tenant_id": "tenant-na.test.com", "deploy_info": {"POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/` + testenv.Unique("tsql_hosp_na") + `?sslmode=disable"}}`,
			header: map[string]string{"Content-Type": "application/json"}, want: 400, wantErr: "it gives no password"},
		{name: "same origin", method: "POST", body: good, header: map[string]string{"Content-Type": "application/json", "Origin": s.url, "Sec-Fetch-Site": "same-origin"}, want: 201},
		{name: "list", method: "GET", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, s.url+"/api/tenant/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatalf("%d, not JSON: %q", resp.StatusCode, raw)
			}
			if resp.StatusCode != tt.want || !strings.Contains(out.Error, tt.wantErr) {
				t.Fatalf("%d %s, want %d with an error containing %q", resp.StatusCode, raw, tt.want, tt.wantErr)
			}
			if strings.Contains(string(raw), "from-pgpass") || strings.Contains(string(raw), "postgres:postgres@") {
				t.Errorf("the answer holds a password: %s", raw)
			}
		})
	}
	if strings.Contains(s.log(), "from-pgpass") {
		t.Errorf("the log holds the server's password:\n%s", s.log())
	}
	// The one tenant accepted is served.
	if code, body := s.do("GET", "/hospital/", "tenant-na.test.com", nil, false); code != http.StatusOK {
		t.Errorf("GET /hospital/ for the new tenant: %d %v", code, body)
	}
}
