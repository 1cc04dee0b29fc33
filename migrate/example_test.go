package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	_ "github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// Migrate every tenant of a store, eight at a time, and report the ones
// that failed.
func Example() {
	ctx := context.Background()
	s, err := store.Open(ctx, "file:tenant_config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	db, err := sql.Open("tenantsql", "file:tenant_config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(20)

	m, err := migrate.New(db, s, os.DirFS("migrations"), migrate.WithConcurrency(8), migrate.WithContinueOnError(true))
	if err != nil {
		fmt.Println(err)
		return
	}
	report, err := m.Run(ctx, migrate.Up, 0)
	for _, r := range report.Failed() {
		fmt.Printf("%s failed at version %d: %v\n", r.Tenant, r.After, r.Err)
	}
	changed, unchanged, failed, skipped := report.Counts()
	fmt.Println(changed, unchanged, failed, skipped, err)
}

func ExampleOp_String() {
	for _, op := range []migrate.Op{migrate.Up, migrate.UpTo, migrate.Down, migrate.DownTo, migrate.Status} {
		fmt.Println(op)
	}
	// Output:
	// up
	// up-to
	// down
	// down-to
	// status
}
