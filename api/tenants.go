package api

import (
	"log/slog"
	"net/http"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/store"
)

// Lifecycle events named in answers, as the original API named them.
const (
	eventCreate = "tenant_create"
	eventUpdate = "tenant_update"
	eventDelete = "tenant_delete"
)

// lifecycleAnswer answers a create, update or delete.
type lifecycleAnswer struct {
	TenantID       string `json:"tenant_id"`
	LifecycleEvent string `json:"lifecycle_event"`
	Version        int64  `json:"version,omitempty"`
}

// listTenants answers GET /tenant/.
func (h *handler) listTenants(w http.ResponseWriter, r *http.Request, _ string) {
	list, err := h.store.List(r.Context())
	if err != nil {
		h.storeFailed(r, "list", "", err)
		writeError(w, errStoreUnavailable)
		return
	}
	out := make([]store.Tenant, 0, len(list))
	for _, t := range list {
		out = append(out, shown(t))
	}
	writeJSON(w, http.StatusOK, struct {
		Tenants []store.Tenant `json:"tenants"`
	}{out})
}

// getTenant answers GET /tenant/{id}/.
func (h *handler) getTenant(w http.ResponseWriter, r *http.Request, id string) {
	if err := store.ValidateID(id); err != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	t, err := h.store.Get(r.Context(), id)
	if err != nil {
		writeError(w, h.fromStore(r, "get", id, err))
		return
	}
	writeJSON(w, http.StatusOK, shown(t))
}

// shown is t as answers show it: without passwords. (Redacted hides URLs
// that pgx and net/url would read differently, which other tools may have
// stored, and masks password= values wherever they are.)
func shown(t store.Tenant) store.Tenant { return t.Redacted() }

// createTenant answers POST /tenant/.
func (h *handler) createTenant(w http.ResponseWriter, r *http.Request, _ string) {
	id, t, e := h.create(w, r)
	h.finish(w, r, "create", id, http.StatusCreated, lifecycleAnswer{TenantID: t.ID, LifecycleEvent: eventCreate, Version: t.Version}, t, e)
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) (id string, _ store.Tenant, _ *apiError) {
	body, e := h.body(w, r, createFields)
	if e != nil {
		return "", store.Tenant{}, e
	}
	if !body.hasTenantID {
		return "", store.Tenant{}, errorf(http.StatusBadRequest, `missing field "tenant_id"`)
	}
	id = body.tenantID
	if err := store.ValidateID(id); err != nil {
		return id, store.Tenant{}, &apiError{status: http.StatusBadRequest, msg: err.Error()}
	}
	if !body.hasDeployInfo {
		return id, store.Tenant{}, errorf(http.StatusBadRequest, `missing field "deploy_info" (an object holding %s)`, store.KeyPostgresURL)
	}
	t := store.Tenant{ID: id, DeployInfo: body.deployInfo}
	if e := h.checkTenant(r.Context(), t); e != nil {
		return id, store.Tenant{}, e
	}
	out, err := h.store.Create(r.Context(), t)
	if err != nil {
		return id, store.Tenant{}, h.fromStore(r, "create", id, err)
	}
	return id, out, nil
}

// updateTenant answers PUT /tenant/{id}/.
func (h *handler) updateTenant(w http.ResponseWriter, r *http.Request, id string) {
	t, e := h.update(w, r, id)
	h.finish(w, r, "update", id, http.StatusOK, lifecycleAnswer{TenantID: id, LifecycleEvent: eventUpdate, Version: t.Version}, t, e)
}

func (h *handler) update(w http.ResponseWriter, r *http.Request, id string) (store.Tenant, *apiError) {
	if err := store.ValidateID(id); err != nil {
		return store.Tenant{}, &apiError{status: http.StatusBadRequest, msg: err.Error()}
	}
	body, e := h.body(w, r, updateFields)
	if e != nil {
		return store.Tenant{}, e
	}
	if body.hasTenantID && body.tenantID != id {
		return store.Tenant{}, errorf(http.StatusBadRequest, "tenant_id %q in the body differs from %q in the path; a tenant cannot be renamed", clip.String(body.tenantID), id)
	}
	if !body.hasDeployInfo {
		return store.Tenant{}, errorf(http.StatusBadRequest, `missing field "deploy_info" (an object holding %s)`, store.KeyPostgresURL)
	}
	// A non-zero version makes the update conditional: the store refuses
	// it if the tenant changed since the client read it.
	t := store.Tenant{ID: id, DeployInfo: body.deployInfo, Version: body.version}
	if e := h.checkTenant(r.Context(), t); e != nil {
		return store.Tenant{}, e
	}
	out, err := h.store.Update(r.Context(), t)
	if err != nil {
		return store.Tenant{}, h.fromStore(r, "update", id, err)
	}
	return out, nil
}

// deleteTenant answers DELETE /tenant/{id}/.
func (h *handler) deleteTenant(w http.ResponseWriter, r *http.Request, id string) {
	e := h.delete(r, id)
	h.finish(w, r, "delete", id, http.StatusOK, lifecycleAnswer{TenantID: id, LifecycleEvent: eventDelete}, store.Tenant{}, e)
}

func (h *handler) delete(r *http.Request, id string) *apiError {
	if err := store.ValidateID(id); err != nil {
		return &apiError{status: http.StatusBadRequest, msg: err.Error()}
	}
	deleted, err := h.store.Delete(r.Context(), id)
	if err != nil {
		return h.fromStore(r, "delete", id, err)
	}
	if !deleted {
		return errorf(http.StatusNotFound, "tenant %q not found", id)
	}
	return nil
}

// body checks the content type and reads and decodes a tenant body.
func (h *handler) body(w http.ResponseWriter, r *http.Request, fields []string) (tenantBody, *apiError) {
	if e := checkContentType(r); e != nil {
		return tenantBody{}, e
	}
	raw, e := readBody(w, r, h.maxBody)
	if e != nil {
		return tenantBody{}, e
	}
	return decodeBody(raw, fields)
}

// fromStore maps a store error to an answer, logging failures of the store
// itself.
func (h *handler) fromStore(r *http.Request, action, id string, err error) *apiError {
	e, ok := fromStore(err, id)
	if !ok {
		h.storeFailed(r, action, id, err)
	}
	return e
}

// storeFailed logs a failure of the store. Store errors hold no password.
func (h *handler) storeFailed(r *http.Request, action, id string, err error) {
	h.log.Error("tenantsql admin API: tenant store failed", "action", action, "tenant", id, "remote_addr", r.RemoteAddr, "err", err)
}

// finish answers a create, update or delete and writes its audit record:
// who asked for what, and what came of it. The record holds the URL only
// as redacted, and messages only as answered.
func (h *handler) finish(w http.ResponseWriter, r *http.Request, action, id string, status int, ok lifecycleAnswer, t store.Tenant, e *apiError) {
	attrs := []slog.Attr{
		slog.String("action", action),
		slog.String("tenant", clip.String(id)),
		slog.String("remote_addr", r.RemoteAddr),
	}
	if e != nil {
		outcome := "refused"
		if e.status >= 500 {
			outcome = "failed"
		}
		attrs = append(attrs, slog.String("outcome", outcome), slog.Int("status", e.status), slog.String("error", e.msg))
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "tenantsql admin API: tenant "+action, attrs...)
		writeError(w, e)
		return
	}
	attrs = append(attrs, slog.String("outcome", "ok"), slog.Int("status", status))
	if action != "delete" {
		attrs = append(attrs, slog.Int64("version", t.Version), slog.String("postgres_url", shown(t).PostgresURL()))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "tenantsql admin API: tenant "+action, attrs...)
	writeJSON(w, status, ok)
}
