package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Every deploy_info value that is a postgres:// URL is checked as
// POSTGRES_URL is, whatever its key, since a *sql.DB can route by any key
// (driver.WithURLKey); other values are left alone, since the driver
// dials nothing else.
func TestOtherURLKeysChecked(t *testing.T) {
	opts := []Option{withLookup(fakeDNS(nil)), WithAllowedHosts("10.0.0.0/8")}
	good := pgURL("10.0.0.1/one")
	tests := []struct {
		name    string
		key     string
		value   string
		wantErr string // "" when accepted
	}{
		{"analytics allowed", "ANALYTICS_URL", pgURL("10.0.0.2/analytics"), ""},
		{"postgresql scheme", "REPORTS", "postgresql://app:" + secret + "@10.0.0.3/reports", ""},
		{"not a postgres URL", "REDIS_URL", "redis://:" + secret + "@127.0.0.1:6379/0", ""},
		{"keyword string, never dialled", "LEGACY_DSN", "host=127.0.0.1 dbname=x", ""},
		{"host not allowed", "ANALYTICS_URL", pgURL("127.0.0.1/analytics"), `invalid deploy_info.ANALYTICS_URL: host "127.0.0.1" is not among the allowed hosts`},
		{"any key name", "REPLICA", pgURL("11.0.0.1/r"), `invalid deploy_info.REPLICA: host "11.0.0.1"`},
		{"file option", "ANALYTICS_URL", pgURL("10.0.0.2/a?sslkey=/etc/ssl/private/k.pem"), `invalid deploy_info.ANALYTICS_URL "postgres://app:xxxxx@10.0.0.2/a?sslkey=/etc/ssl/private/k.pem": option "sslkey" reads a file`},
		{"server credentials", "ANALYTICS_URL", "postgres://app@10.0.0.2/a", `invalid deploy_info.ANALYTICS_URL "postgres://app@10.0.0.2/a": it gives no password`},
		{"bad port", "ANALYTICS_URL", pgURL("10.0.0.2:99999/a"), `invalid deploy_info.ANALYTICS_URL "postgres://app:xxxxx@10.0.0.2:99999/a": pgx cannot use it`},
		{"ambiguous user info", "ANALYTICS_URL", "postgres://app:p@ss@10.0.0.2/a", "invalid deploy_info.ANALYTICS_URL: the user name or password holds a raw '@'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PGPASSWORD", "from-the-environment")
			info, err := json.Marshal(map[string]string{"POSTGRES_URL": good, tt.key: tt.value})
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, nil, opts...)
			for _, req := range []request{
				{method: "POST", path: "/tenant/", body: `{"tenant_id": "t1.test", "deploy_info": ` + string(info) + `}`},
				{method: "PUT", path: "/tenant/t1.test/", body: `{"deploy_info": ` + string(info) + `}`},
			} {
				if req.method == "PUT" {
					// PUT is checked the same way, on a tenant that exists.
					e.s.Delete(t.Context(), "t1.test")
					mustCreate(t, e.s, "t1.test", good)
				}
				w := e.do(req)
				assertNoSecret(t, req.method+" answer", w.Body.String())
				if tt.wantErr == "" {
					if w.Code/100 != 2 {
						t.Errorf("%s: %d %s, want success", req.method, w.Code, w.Body)
					}
					continue
				}
				if got := errorOf(t, w); w.Code != http.StatusBadRequest || !strings.Contains(got, tt.wantErr) {
					t.Errorf("%s: %d %q, want 400 containing %q", req.method, w.Code, got, tt.wantErr)
				}
			}
		})
	}
}
