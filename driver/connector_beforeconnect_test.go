package driver_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/driver"
)

// WithBeforeConnect may change the maps of the configuration it is given
// while other sessions of the same tenant are dialled: each dial has a
// copy of its own. pgx copies the configuration shallowly, so writes to
// RuntimeParams by concurrent dials raced on one map (a data race, and
// "concurrent map writes" crashes), found by the fleet budget's test.
func TestWithBeforeConnectConcurrentDials(t *testing.T) {
	const n = 8
	f := newFixture(t, "beforecc", 1, driver.WithMaxConns(n), driver.WithBeforeConnect(func(_ context.Context, tenant string, cc *pgx.ConnConfig) error {
		cc.RuntimeParams["application_name"] = tenant + "-bc"
		return nil
	}))
	ti := f.tenants[0]
	ctx := ti.ctx(context.Background())
	// n transactions open at once: n sessions, dialled concurrently.
	var ready, wg sync.WaitGroup
	ready.Add(n)
	for range n {
		wg.Go(func() {
			tx, err := f.db.BeginTx(ctx, nil)
			ready.Done()
			if err != nil {
				t.Error(err)
				return
			}
			defer tx.Rollback()
			ready.Wait()
			var app string
			if err := tx.QueryRowContext(ctx, "SELECT current_setting('application_name')").Scan(&app); err != nil || app != ti.ID+"-bc" {
				t.Errorf("application_name %q, %v; want %q set by BeforeConnect", app, err, ti.ID+"-bc")
			}
		})
	}
	wg.Wait()
}
