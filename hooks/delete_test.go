package hooks_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// delDB is the database of TestDeletedTenantLeavesNoFailures, this run's
// own.
var delDB = testenv.Unique("tsql_hooks_del")

// Through the driver, on a real database: a tenant whose create hook
// failed is deleted, and its failure goes with it; created again under
// the same id, it shows only the failure of its new create hook.
func TestDeletedTenantLeavesNoFailures(t *testing.T) {
	testenv.EnsureDatabases(t, delDB)
	testenv.ResetSchema(t, delDB)
	s := store.NewMemory()
	reg := hooks.New(slog.New(slog.DiscardHandler))
	var db *sql.DB
	// Fails on the server: the table does not exist.
	reg.Subscribe(hooks.PostCreate, func(ctx context.Context, ev hooks.Event) error {
		_, err := db.ExecContext(ctx, "INSERT INTO no_such_table VALUES (1)")
		return err
	})
	c, err := driver.NewConnector(s, driver.WithHooks(reg))
	if err != nil {
		t.Fatal(err)
	}
	db = sql.OpenDB(c)
	defer db.Close()

	const id = "hooks-del.test"
	tn := store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, delDB, "application_name", id)}}
	create := func() {
		t.Helper()
		if _, err := s.Create(t.Context(), tn); err != nil {
			t.Fatal(err)
		}
		// The first query waits for the create hooks, and fails with them.
		ctx, cancel := context.WithTimeout(tenantctx.WithTenant(t.Context(), id), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "SELECT 1"); !errors.Is(err, driver.ErrTenantNotReady) {
			t.Fatalf("query after a failed create hook: %v, want ErrTenantNotReady", err)
		}
	}
	create()
	fs := reg.Failures(id)
	if len(fs) != 1 {
		t.Fatalf("after the first create Failures = %+v, want its one failure", fs)
	}
	firstVersion := fs[0].Version // the store's version of the change

	if ok, err := s.Delete(t.Context(), id); !ok || err != nil {
		t.Fatalf("delete: %v, %v", ok, err)
	}
	// The delete's hooks run in the background.
	deadline := time.Now().Add(5 * time.Second)
	for len(reg.Failures(id)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the delete Failures still holds %+v", reg.Failures(id))
		}
		time.Sleep(10 * time.Millisecond)
	}

	create()
	if fs := reg.Failures(id); len(fs) != 1 || fs[0].Version <= firstVersion {
		t.Errorf("the re-created tenant's Failures = %+v, want only the failure of its own create (after version %d)", fs, firstVersion)
	}
}
