package api

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// healthAnswer is the body of GET /health-check/.
type healthAnswer struct {
	Status string      `json:"status"` // "ok" or "unavailable"
	Store  storeHealth `json:"store"`
	// Tenants is there only with WithHealth.
	Tenants map[string]tenantHealth `json:"tenants,omitzero"`
}

// storeHealth is the store's part: Result and Msg always, the rest for a
// store that follows a remote source (store.StatusReporter).
type storeHealth struct {
	Result    bool       `json:"result"`
	Msg       string     `json:"msg"`
	Connected *bool      `json:"connected,omitempty"`
	Version   *int64     `json:"version,omitempty"`
	LastSync  *time.Time `json:"last_sync,omitempty"`
	LastError *string    `json:"last_error,omitempty"`
	DataLoss  *bool      `json:"data_loss,omitempty"`
}

type tenantHealth struct {
	Result bool   `json:"result"`
	Msg    string `json:"msg"`
	// MigrationVersion is the highest version in goose's table, or null
	// when the table is missing or empty (or the check failed).
	MigrationVersion *int64 `json:"migration_version"`
}

// healthCheck answers GET /health-check/: 200 if the store and every
// tenant are fine, else 503.
func (h *handler) healthCheck(w http.ResponseWriter, r *http.Request, _ string) {
	ctx := r.Context()
	ans := healthAnswer{Status: "ok", Store: h.storeHealth(ctx, r)}
	healthy := ans.Store.Result
	if h.health != nil {
		list, err := h.store.List(ctx)
		if err != nil {
			h.storeFailed(r, "health-check", "", err)
			if ans.Store.Result {
				ans.Store.Result, ans.Store.Msg = false, "cannot list the tenants (the cause is in the server log)"
			}
			healthy = false
		} else {
			ans.Tenants = h.probeAll(ctx, list)
			for _, th := range ans.Tenants {
				healthy = healthy && th.Result
			}
		}
	}
	status := http.StatusOK
	if !healthy {
		ans.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, ans)
}

func (h *handler) storeHealth(ctx context.Context, r *http.Request) storeHealth {
	timeout := DefaultHealthTimeout
	if h.health != nil {
		timeout = h.health.timeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := h.store.Ping(pctx)
	cancel()
	sh := storeHealth{Result: true, Msg: "ok"}
	if err != nil {
		h.storeFailed(r, "health-check", "", err)
		sh.Result, sh.Msg = false, "the tenant store is unreachable (the cause is in the server log)"
	}
	if sr, ok := h.store.(store.StatusReporter); ok {
		st := sr.Status()
		sh.Connected, sh.Version, sh.DataLoss = &st.Connected, &st.Version, &st.DataLoss
		// The store's errors hold no password.
		sh.LastError = &st.LastError
		if !st.LastSync.IsZero() {
			sh.LastSync = &st.LastSync
		}
		if st.DataLoss && sh.Result {
			// Known tenants keep working, but tenants may be missing
			// until an operator restores them or accepts the loss.
			sh.Result, sh.Msg = false, "the store came back without data it had (data_loss): restore the tenants, or accept the loss"
		}
	}
	return sh
}

// probeAll checks the tenants, at most concurrency at a time.
func (h *handler) probeAll(ctx context.Context, list []store.Tenant) map[string]tenantHealth {
	results := make([]tenantHealth, len(list))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(h.health.concurrency, len(list)) {
		wg.Go(func() {
			for i := range next {
				results[i] = h.probe(ctx, list[i])
			}
		})
	}
	for i := range list {
		next <- i
	}
	close(next)
	wg.Wait()
	out := make(map[string]tenantHealth, len(list))
	for i, t := range list {
		out[t.ID] = results[i]
	}
	return out
}

// probe pings the tenant's database through the tenantsql *sql.DB, then
// reads its migration version.
func (h *handler) probe(ctx context.Context, t store.Tenant) tenantHealth {
	ctx, cancel := context.WithTimeout(tenantctx.WithTenant(ctx, t.ID), h.health.timeout)
	defer cancel()
	// Every secret the tenant has: the *sql.DB may route by another key
	// than POSTGRES_URL (url_key), and a failing hook's error may quote
	// any value.
	secrets := store.Secrets(t.DeployInfo)
	db := h.health.db
	if err := db.PingContext(ctx); err != nil {
		return tenantHealth{Msg: h.failure(ctx, err, secrets)}
	}
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, h.healthQuery).Scan(&v)
	var pe *pgconn.PgError
	switch {
	case err == nil && v.Valid:
		return tenantHealth{Result: true, Msg: "ok", MigrationVersion: &v.Int64}
	case err == nil:
		return tenantHealth{Result: true, Msg: "ok"} // an empty table
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"):
		// undefined_table, invalid_schema_name: never migrated.
		return tenantHealth{Result: true, Msg: "ok"}
	}
	return tenantHealth{Msg: h.failure(ctx, err, secrets)}
}

// failure describes why a tenant's check failed, without secrets.
func (h *handler) failure(ctx context.Context, err error, secrets []string) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", h.health.timeout)
	}
	return safeErrorText(err, secrets)
}
