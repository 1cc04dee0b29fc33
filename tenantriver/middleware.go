package tenantriver

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// MetadataKey is the key of a job's metadata (river_job.metadata, a JSON
// object) that holds the id of the tenant the job belongs to:
//
//	{"tenantsql_tenant": "tenant-2.test.com"}
//
// The Middleware writes it when the job is inserted and reads it when the
// job is worked. Jobs of a kind declared with WithoutTenant never carry it.
const MetadataKey = "tenantsql_tenant"

// Middleware carries the tenant of a River job from the context it was
// inserted with to the context it is worked with. It is both a
// rivertype.JobInsertMiddleware and a rivertype.WorkerMiddleware: put one
// value in river.Config.Middleware of every client that inserts or works
// tenant jobs. Make it with NewMiddleware; it is safe for concurrent use.
type Middleware struct {
	river.MiddlewareDefaults
	// tenantless holds the kinds declared with WithoutTenant, and the
	// fan-out kind of Periodic. Written only by NewMiddleware.
	tenantless map[string]bool
}

var (
	_ rivertype.JobInsertMiddleware = (*Middleware)(nil)
	_ rivertype.WorkerMiddleware    = (*Middleware)(nil)
)

// An Option configures a Middleware.
type Option func(*Middleware)

// WithoutTenant declares job kinds (the values of their args' Kind methods)
// that belong to no tenant: they are inserted without one, even from a
// context that carries a tenant, and worked with none, so their queries
// through tenantsql fail with driver.ErrNoTenant unless the job picks a
// tenant itself (tenantctx.WithTenant). Jobs that maintain all tenants, or
// none, are such kinds.
//
// Kinds rather than an interface on the args: a worker middleware sees the
// job row, not the typed args (River decodes them after the middleware),
// and the kind is what River stores and routes by, so the same list
// decides at insert and at work, in every process.
func WithoutTenant(kinds ...string) Option {
	return func(m *Middleware) {
		for _, k := range kinds {
			m.tenantless[k] = true
		}
	}
}

// NewMiddleware returns a Middleware.
func NewMiddleware(opts ...Option) *Middleware {
	m := &Middleware{tenantless: map[string]bool{FanoutArgs{}.Kind(): true}}
	for _, opt := range opts {
		opt(m)
	}
	return m
}

// fanoutKey marks the context of Periodic's batch insert, whose jobs name
// their tenants in their metadata already (one insert, many tenants).
type fanoutKey struct{}

// InsertMany writes the tenant of ctx into each job's metadata under
// MetadataKey. It fails, inserting nothing, when ctx carries no tenant and
// a job's kind was not declared with WithoutTenant (the error matches
// driver.ErrNoTenant), and when a job's metadata already names another
// tenant (driver.ErrTenantMismatch): the context is the only source of a
// job's tenant.
//
// A unique job (river.UniqueOpts) is unique within its tenant: the tenant
// is mixed into River's unique key, so tenant A's job never stands in for
// tenant B's.
func (m *Middleware) InsertMany(ctx context.Context, manyParams []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	id, hasTenant := tenantctx.TenantFrom(ctx)
	_, fanout := ctx.Value(fanoutKey{}).(bool)
	for _, p := range manyParams {
		if m.tenantless[p.Kind] {
			continue
		}
		meta, err := decodeMetadata(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("tenantriver: insert job of kind %q: %w", p.Kind, err)
		}
		named, err := metadataTenant(meta)
		if err != nil {
			return nil, fmt.Errorf("tenantriver: insert job of kind %q: %w", p.Kind, err)
		}
		tenant := id
		switch {
		case fanout && !hasTenant && named != "":
			tenant = named
		case !hasTenant:
			return nil, &noTenantError{kind: p.Kind}
		case named != "" && named != id:
			return nil, fmt.Errorf("%w: job of kind %q: its metadata names tenant %q, the insert context %q",
				driver.ErrTenantMismatch, p.Kind, named, id)
		}
		meta[MetadataKey], _ = json.Marshal(tenant) // a string always marshals
		if p.Metadata, err = json.Marshal(meta); err != nil {
			return nil, fmt.Errorf("tenantriver: insert job of kind %q: %w", p.Kind, err)
		}
		if len(p.UniqueKey) > 0 {
			p.UniqueKey = tenantUniqueKey(tenant, p.UniqueKey)
		}
	}
	return doInner(ctx)
}

// tenantUniqueKey makes River's unique key (a hash of the kind and of what
// UniqueOpts selects) one per tenant. The NUL cannot occur in a tenant id,
// so no id and key can be confused with another pair.
func tenantUniqueKey(tenant string, key []byte) []byte {
	h := sha256.New()
	h.Write([]byte("tenantsql\x00"))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(key)
	return h.Sum(nil)
}

// Work runs the job with its tenant in the context: tenantctx.TenantFrom
// in Work, and every query through a tenantsql *sql.DB, see the tenant the
// job was inserted for. Jobs of a kind declared with WithoutTenant run
// with no tenant in the context.
//
// Two failures cancel the job (river.JobCancel) rather than retry it,
// since a retry could only fail again:
//
//   - the job names no tenant in its metadata (it was inserted by a client
//     without this middleware, or its kind was declared WithoutTenant
//     then and is not now): Work is not called, and the error recorded on
//     the job matches driver.ErrNoTenant;
//   - Work returns an error matching driver.ErrUnknownTenant: the job's
//     tenant was deleted. Work ran up to its first query; keep side
//     effects outside the database after one.
//
// Every other error is River's to retry, on the same tenant: the metadata
// stays with the job.
func (m *Middleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if m.tenantless[job.Kind] {
		// An empty id is no tenant: the client's own context must not
		// lend one to the job.
		return doInner(tenantctx.WithTenant(ctx, ""))
	}
	id, err := JobTenant(job)
	if err != nil {
		return river.JobCancel(fmt.Errorf("tenantriver: job %d of kind %q: %w", job.ID, job.Kind, err))
	}
	if id == "" {
		return river.JobCancel(&noTenantError{kind: job.Kind, jobID: job.ID})
	}
	err = doInner(tenantctx.WithTenant(ctx, id))
	if errors.Is(err, driver.ErrUnknownTenant) && !errors.Is(err, &rivertype.JobCancelError{}) {
		return river.JobCancel(err)
	}
	return err
}

// JobTenant returns the tenant a job belongs to, as its metadata names it
// (MetadataKey), or "" when it names none.
func JobTenant(job *rivertype.JobRow) (string, error) {
	meta, err := decodeMetadata(job.Metadata)
	if err != nil {
		return "", err
	}
	return metadataTenant(meta)
}

func decodeMetadata(b []byte) (map[string]json.RawMessage, error) {
	meta := map[string]json.RawMessage{}
	if len(b) == 0 {
		return meta, nil
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("metadata is not a JSON object: %w", err)
	}
	if meta == nil { // "null"
		meta = map[string]json.RawMessage{}
	}
	return meta, nil
}

func metadataTenant(meta map[string]json.RawMessage) (string, error) {
	raw, ok := meta[MetadataKey]
	if !ok {
		return "", nil
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", fmt.Errorf("metadata key %s holds %s, want a tenant id string", MetadataKey, raw)
	}
	return id, nil
}

// noTenantError is driver.ErrNoTenant for a job: its message says what to
// do at insert rather than at query.
type noTenantError struct {
	kind  string
	jobID int64 // 0 at insert
}

func (e *noTenantError) Error() string {
	if e.jobID != 0 {
		return fmt.Sprintf("tenantsql: no tenant in context: job %d of kind %q names no tenant in its metadata (%s), "+
			"so it was cancelled unrun: it was inserted by a client without tenantriver's Middleware, "+
			"or its kind was declared with tenantriver.WithoutTenant then", e.jobID, e.kind, MetadataKey)
	}
	return fmt.Sprintf("tenantsql: no tenant in context: job of kind %q belongs to a tenant: insert it with a context from "+
		"tenantctx.WithTenant(ctx, tenantID), or declare its kind with tenantriver.WithoutTenant", e.kind)
}

func (e *noTenantError) Unwrap() error { return driver.ErrNoTenant }
