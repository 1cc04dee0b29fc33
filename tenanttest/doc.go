// Package tenanttest gives tests of a tenantsql application throwaway
// tenants on a real PostgreSQL server: each gets a database of its own,
// created for the test and dropped after it.
//
//	func TestPatients(t *testing.T) {
//		env := tenanttest.New(t, 3, tenanttest.WithMigrations(os.DirFS("migrations")))
//		env.Run(t, func(t *testing.T, ctx context.Context, tn tenanttest.Tenant) {
//			// ctx carries tn: env.DB runs this on tn's database.
//			_, err := env.DB.ExecContext(ctx, "INSERT INTO hospital (name) VALUES ('St Mary')")
//			...
//		})
//	}
//
// New finds the server in the TENANTSQL_TEST_POSTGRES_URL environment
// variable, else at
// postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable, or
// where WithPostgresURL says; the role must be allowed to create databases.
// When the server cannot be reached the test is skipped, or fails if the CI
// environment variable is set, so that CI never passes by skipping.
//
// Creating a database costs some tens of milliseconds (PostgreSQL copies
// its template), so give each test the few tenants it needs, and let
// subtests share an Env rather than make one each.
package tenanttest
