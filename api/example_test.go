package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tenantsql/tenantsql/api"
	"github.com/tenantsql/tenantsql/store"
)

func Example() {
	s := store.NewMemory()
	h, err := api.New(s,
		api.WithToken("admin-token"), // in a real program, from the environment
		api.WithAllowedHosts("10.0.0.0/8"),
		api.WithLogger(slog.New(slog.DiscardHandler)), // the audit log
	)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path, token, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	fmt.Println(call("POST", "/api/tenant/", "admin-token",
		`{"tenant_id": "tenant-2.test.com", "deploy_info": {"POSTGRES_URL": "postgres://app:secret@10.0.0.7/tenant_2"}}`))
	fmt.Println(call("POST", "/api/tenant/", "admin-token",
		`{"tenant_id": "tenant-3.test.com", "deploy_info": {"POSTGRES_URL": "postgres://app:secret@169.254.169.254/x"}}`))

	// Tenants are shown without their passwords.
	_, body := call("GET", "/api/tenant/tenant-2.test.com", "admin-token", "")
	var t store.Tenant
	if err := json.Unmarshal([]byte(body), &t); err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.ID, t.Version, t.PostgresURL())

	// A version makes an update conditional.
	update := `{"version": 1, "deploy_info": {"POSTGRES_URL": "postgres://app:secret@10.0.0.8/tenant_2"}}`
	fmt.Println(call("PUT", "/api/tenant/tenant-2.test.com/", "admin-token", update))
	fmt.Println(call("PUT", "/api/tenant/tenant-2.test.com/", "admin-token", update))

	fmt.Println(call("DELETE", "/api/tenant/tenant-2.test.com/", "wrong-token", ""))
	fmt.Println(call("DELETE", "/api/tenant/tenant-2.test.com/", "admin-token", ""))
	// Output:
	// 201 {"tenant_id":"tenant-2.test.com","lifecycle_event":"tenant_create","version":1}
	// 400 {"error":"invalid deploy_info.POSTGRES_URL: host \"169.254.169.254\" is not among the allowed hosts"}
	// tenant-2.test.com 1 postgres://app:xxxxx@10.0.0.7/tenant_2
	// 200 {"tenant_id":"tenant-2.test.com","lifecycle_event":"tenant_update","version":2}
	// 409 {"error":"tenant \"tenant-2.test.com\": update of version 1, current is 2: tenant version conflict; read the tenant again and retry with its current version"}
	// 401 {"error":"invalid bearer token: send the header Authorization: Bearer <token> once, with the configured token"}
	// 200 {"tenant_id":"tenant-2.test.com","lifecycle_event":"tenant_delete"}
}

// The operator's page: a browser opens /api/ui/ and types the token,
// which only the page's API calls carry.
func ExampleWithUI() {
	h, err := api.New(store.NewMemory(),
		api.WithToken("admin-token"),
		api.WithUI(),
		api.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/api/ui/", "/api/tenant/"} {
		resp, err := http.Get(srv.URL + path) // no token
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Output:
	// /api/ui/ 200 text/html; charset=utf-8
	// /api/tenant/ 401 application/json
}
