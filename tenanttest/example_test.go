package tenanttest_test

import (
	"context"
	"os"
	"testing"

	"github.com/tenantsql/tenantsql/tenanttest"
)

// A test that runs once per tenant, each time on a database of its own
// with the application's migrations applied.
func ExampleNew() {
	// In a _test.go file: func TestHospitals(t *testing.T) { ... }
	testHospitals := func(t *testing.T) {
		env := tenanttest.New(t, 3, tenanttest.WithMigrations(os.DirFS("migrations")))

		env.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
			if _, err := env.DB.ExecContext(ctx, "INSERT INTO hospital (name) VALUES ($1)", "St Mary"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := env.DB.QueryRowContext(ctx, "SELECT count(*) FROM hospital").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("tenant %s sees %d hospitals, want its own 1", tn.ID, n)
			}
		})

		// Outside Run, Context picks the tenant.
		var n int
		if err := env.DB.QueryRowContext(env.Context(env.Tenants[0]), "SELECT count(*) FROM hospital").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	_ = testHospitals
}
