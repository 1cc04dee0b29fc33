package tenantctx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tenantsql/tenantsql/tenantctx"
)

func Example() {
	ctx := tenantctx.WithTenant(context.Background(), "tenant-1.test.com")

	id, ok := tenantctx.TenantFrom(ctx)
	fmt.Println(id, ok)

	_, ok = tenantctx.TenantFrom(context.Background())
	fmt.Println(ok)
	// Output:
	// tenant-1.test.com true
	// false
}

func ExampleMiddleware() {
	// In a real program the lookup is the connector's LookupTenant:
	//	c, _ := driver.ConnectorOf(db)
	//	tenantctx.WithLookup(c.LookupTenant)
	known := map[string]bool{"tenant-1.test.com": true}
	lookup := func(ctx context.Context, id string) (bool, error) { return known[id], nil }

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := tenantctx.TenantFrom(r.Context())
		fmt.Fprintf(w, "tenant %q %v\n", id, ok)
	})
	handler := tenantctx.Middleware(app, tenantctx.WithLookup(lookup), tenantctx.SkipPrefix("/healthz"))

	for _, tc := range []struct{ path, tenant string }{
		{"/patients", "tenant-1.test.com"},
		{"/patients", "tenant-9.test.com"},
		{"/patients", ""},
		{"/healthz", ""},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.tenant != "" {
			req.Header.Set("X-Tenant-Id", tc.tenant)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	// Output:
	// 200 tenant "tenant-1.test.com" true
	// 404 {"error":"unknown tenant \"tenant-9.test.com\""}
	// 400 {"error":"no tenant: set the x-tenant-id header"}
	// 200 tenant "" false
}

func ExampleFromSubdomain() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenantctx.TenantFrom(r.Context())
		fmt.Fprintln(w, id)
	})
	handler := tenantctx.Middleware(app, tenantctx.FromSubdomain("example.com"))

	for _, host := range []string{"acme.example.com", "Acme.Example.com:8443", "example.com", "a.b.example.com"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	// Output:
	// 200 acme
	// 200 acme
	// 400 {"error":"no tenant: expected a host <tenant>.example.com"}
	// 400 {"error":"no tenant: expected a host <tenant>.example.com"}
}
