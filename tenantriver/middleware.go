package tenantriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// MetadataKey is the key of a job's metadata (river_job.metadata, a JSON
// object) that holds the id of the tenant the job belongs to:
//
//	{"tenantsql_tenant": "tenant-2.test.com", "tenantsql_tenant_created_at": "2026-12-06T20:00:51.123456Z"}
//
// The Middleware writes it when the job is inserted and reads it when the
// job is worked. Jobs of a kind declared with WithoutTenant never carry it.
//
// The middleware reserves the metadata keys that start with "tenantsql_":
// this one, MetadataKeyCreatedAt, and "tenantsql_unique_key", where it
// records a unique job's key as it mixed the tenant into it. Do not set
// them in river.InsertOpts.Metadata (MetadataKey may be set to the
// insert context's tenant, and to no other).
const MetadataKey = "tenantsql_tenant"

// MetadataKeyCreatedAt is the key of a job's metadata that holds the
// CreatedAt of its tenant as the store had it when the job was inserted
// (RFC 3339 with nanoseconds, UTC): which incarnation of the tenant the
// job belongs to. A tenant deleted and created again with the same id is
// a new tenant, with a new CreatedAt, and does not run its predecessor's
// jobs. Jobs inserted before this key existed have none and are worked
// without the check.
const MetadataKeyCreatedAt = "tenantsql_tenant_created_at"

// metadataKeyUniqueKey records, in hex, the unique key the Middleware
// made for the job's tenant, so that a second pass over the same insert
// (two Middleware values in a chain) recognises it and does not hash it
// again: the key of a job must not depend on how many middlewares it went
// through.
const metadataKeyUniqueKey = "tenantsql_unique_key"

// Middleware carries the tenant of a River job from the context it was
// inserted with to the context it is worked with. It is both a
// rivertype.JobInsertMiddleware and a rivertype.WorkerMiddleware: put one
// value in river.Config.Middleware of every client that inserts or works
// tenant jobs. Make it with NewMiddleware; it is safe for concurrent use.
type Middleware struct {
	river.MiddlewareDefaults
	// store is the tenant store: which tenants exist, and since when.
	store store.Store
	// tenantless holds the kinds declared with WithoutTenant, and the
	// fan-out kind of Periodic. Written only by NewMiddleware.
	tenantless map[string]bool
	// lag is how long after its insert a job whose tenant the store does
	// not have (yet) waits for the store before it is cancelled
	// (WithStoreLag).
	lag time.Duration
	// lookupTimeout bounds the store lookup before a job runs
	// (WithLookupTimeout); zero for none.
	lookupTimeout time.Duration
}

// Defaults of WithStoreLag and WithLookupTimeout.
const (
	DefaultStoreLag      = time.Minute
	DefaultLookupTimeout = 5 * time.Second
)

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

// WithStoreLag sets how long a job may wait for the store of the process
// that works it to learn of its tenant (default DefaultStoreLag, a
// minute), measured from the job's insert (river_job.created_at, the
// control database's clock). The processes of a cluster see the store's
// changes a moment apart: the file store reads the file every second, a
// Redis follower trails its primary. A job inserted by the process that
// has just created, or re-created, its tenant can be fetched at once by
// another process whose store has not heard of it. So a store that does
// not have the tenant, or has an older incarnation of it, is taken for
// behind, not for the truth, while the job is younger than d: the job is
// snoozed (river.JobSnooze, which does not use up its attempts) and
// asked about again. Once the job is older than d, a tenant the store
// does not have is deleted and the job is cancelled; an older incarnation
// fails the attempt (a store still that far behind is a fault to see, not
// a reason to drop the job).
//
// Give d comfortably above the store's worst lag (the file store's poll
// interval, the Redis replication lag) and the control database's clock
// skew from the workers'. A larger d only delays the cancelling of jobs
// whose tenant was deleted; zero or less cancels them at once, as it
// would a job whose tenant was created a moment ago elsewhere.
func WithStoreLag(d time.Duration) Option {
	return func(m *Middleware) { m.lag = max(d, 0) }
}

// WithLookupTimeout bounds the store lookup before a job runs (default
// DefaultLookupTimeout, five seconds). River's JobTimeout applies only
// once the job's Work starts, after the middleware, so without a bound a
// store that hangs would hold the worker's slot as long as it hangs. A
// lookup that times out counts as the store unreachable: the job is
// snoozed and asked about again. Zero or less sets no bound of its own
// (the worker's context still applies).
func WithLookupTimeout(d time.Duration) Option {
	return func(m *Middleware) { m.lookupTimeout = max(d, 0) }
}

// NewMiddleware returns a Middleware that asks st, the store the
// tenantsql *sql.DB reads, which tenants exist: at insert, once per tenant
// per insert call, for the tenant's incarnation (MetadataKeyCreatedAt);
// at work, once per job, before the job runs. It panics if st is nil, a
// mistake in the program's set-up.
func NewMiddleware(st store.Store, opts ...Option) *Middleware {
	if st == nil {
		panic("tenantriver: NewMiddleware needs the tenant store")
	}
	m := &Middleware{
		store:         st,
		tenantless:    map[string]bool{FanoutArgs{}.Kind(): true},
		lag:           DefaultStoreLag,
		lookupTimeout: DefaultLookupTimeout,
	}
	for _, opt := range opts {
		opt(m)
	}
	return m
}

// fanoutKey marks the context of Periodic's batch insert, whose jobs name
// their tenants, and the tenants' incarnations as Periodic listed them, in
// their metadata already (one insert, many tenants).
type fanoutKey struct{}

// InsertMany writes the tenant of ctx into each job's metadata under
// MetadataKey, and its CreatedAt, as the store has it, under
// MetadataKeyCreatedAt. It fails, inserting nothing:
//
//   - when ctx carries no tenant and a job's kind was not declared with
//     WithoutTenant (the error matches driver.ErrNoTenant);
//   - when a job's metadata already names another tenant
//     (driver.ErrTenantMismatch): the context is the only source of a
//     job's tenant;
//   - when the store has no such tenant (driver.ErrUnknownTenant), or
//     cannot be asked (the store's error).
//
// The store is asked once per tenant per call, however many jobs the call
// inserts.
//
// A unique job (river.UniqueOpts) is unique within its tenant's
// incarnation: the tenant and its CreatedAt are mixed into River's unique
// key, so tenant A's job never stands in for tenant B's, nor a deleted
// tenant's for its successor's. The key is mixed once, however many
// Middleware values the insert goes through.
func (m *Middleware) InsertMany(ctx context.Context, manyParams []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	id, hasTenant := tenantctx.TenantFrom(ctx)
	_, fanout := ctx.Value(fanoutKey{}).(bool)
	created := map[string]time.Time{} // by tenant: one store lookup each
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
		at, ok := created[tenant]
		if !ok && fanout {
			// Periodic listed the tenants a moment ago: asking the
			// store again for each would cost a lookup per tenant per
			// period for nothing.
			if at, ok, err = metadataCreatedAt(meta); err != nil {
				return nil, fmt.Errorf("tenantriver: insert job of kind %q: %w", p.Kind, err)
			}
		}
		if !ok {
			if at, err = m.incarnation(ctx, tenant, p.Kind); err != nil {
				return nil, err
			}
		}
		created[tenant] = at

		meta[MetadataKey], _ = json.Marshal(tenant) // a string always marshals
		if at.IsZero() {
			// A store that keeps no CreatedAt: the job is worked
			// without the incarnation check, as older jobs are.
			delete(meta, MetadataKeyCreatedAt)
		} else {
			meta[MetadataKeyCreatedAt], _ = json.Marshal(formatCreatedAt(at))
		}
		if len(p.UniqueKey) == 0 {
			delete(meta, metadataKeyUniqueKey)
		} else if mixed, _ := metadataString(meta, metadataKeyUniqueKey); mixed != hex.EncodeToString(p.UniqueKey) {
			p.UniqueKey = tenantUniqueKey(tenant, at, p.UniqueKey)
			meta[metadataKeyUniqueKey], _ = json.Marshal(hex.EncodeToString(p.UniqueKey))
		}
		if p.Metadata, err = json.Marshal(meta); err != nil {
			return nil, fmt.Errorf("tenantriver: insert job of kind %q: %w", p.Kind, err)
		}
	}
	return doInner(ctx)
}

// incarnation returns the CreatedAt of tenant as the store has it.
func (m *Middleware) incarnation(ctx context.Context, tenant, kind string) (time.Time, error) {
	t, err := m.store.Get(ctx, tenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return time.Time{}, fmt.Errorf("%w: job of kind %q not inserted: the tenant store has no tenant %q; "+
			"insert jobs only for tenants that exist (created, and not deleted)", driver.ErrUnknownTenant, kind, tenant)
	case err != nil:
		return time.Time{}, fmt.Errorf("tenantriver: insert job of kind %q: look up tenant %q in the tenant store: %w", kind, tenant, err)
	}
	return t.CreatedAt, nil
}

// formatCreatedAt is the form of MetadataKeyCreatedAt, and of the
// incarnation in a unique key.
func formatCreatedAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// tenantUniqueKey makes River's unique key (a hash of the kind and of what
// UniqueOpts selects) one per tenant incarnation. The NUL cannot occur in
// a tenant id or a time, so no id, time and key can be confused with
// another triple. A zero created (a store without CreatedAt) is written
// as "".
func tenantUniqueKey(tenant string, created time.Time, key []byte) []byte {
	h := sha256.New()
	h.Write([]byte("tenantsql\x00"))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	if !created.IsZero() {
		h.Write([]byte(formatCreatedAt(created)))
	}
	h.Write([]byte{0})
	h.Write(key)
	return h.Sum(nil)
}

// Work runs the job with its tenant in the context: tenantctx.TenantFrom
// in Work, and every query through a tenantsql *sql.DB, see the tenant the
// job was inserted for. Jobs of a kind declared with WithoutTenant run
// with no tenant in the context.
//
// Before Work, the store is asked for the job's tenant (once per job,
// within WithLookupTimeout; a job without MetadataKeyCreatedAt, inserted
// by an older version, is not checked first). These cancel the job
// (river.JobCancel), since a retry could only fail again; Work is not
// called, and the error recorded on the job says why:
//
//   - the job names no tenant in its metadata (it was inserted by a client
//     without this middleware, or its kind was declared WithoutTenant
//     then and is not now): the error matches driver.ErrNoTenant;
//   - the store has a tenant of that id created after the job's tenant
//     (deleted and created again: a new tenant, which does not run its
//     predecessor's jobs): the error matches driver.ErrUnknownTenant;
//   - the store does not have the tenant, and the job was inserted longer
//     ago than WithStoreLag (deleted): the error matches
//     driver.ErrUnknownTenant.
//
// The store's view in this process may be behind the one that inserted
// the job (see WithStoreLag). These wait for it instead, Work not called:
//
//   - the store does not have the tenant, or has it as created before the
//     job's tenant, and the job is younger than WithStoreLag: the job is
//     snoozed (river.JobSnooze: from a second, doubling, up to a minute),
//     which uses up none of its attempts and records no error;
//   - the store has the tenant as created before the job's tenant, and
//     the job is older than that: the attempt fails, matching
//     driver.ErrUnknownTenant, and River retries it;
//   - the store cannot be asked (unreachable, or no answer within
//     WithLookupTimeout): the job is snoozed as above, however long that
//     lasts, so an outage of the store discards no job; the store's own
//     errors show elsewhere (inserts fail, and so do the *sql.DB's
//     lookups of tenants it has not cached).
//
// When Work returns an error matching driver.ErrUnknownTenant (the
// tenantsql *sql.DB of this process does not know the tenant), the
// store's answer before Work decides (or, for an older job, the store's
// answer then): it had the tenant, as the job's incarnation, so this
// process has not heard of it yet (the store's changes reach processes a
// moment apart), or the tenant was deleted while the job ran; River
// retries the job, and the next attempt finds out which. Work ran up to
// its first failed query then; keep side effects outside the database
// after one.
//
// Every other error is River's to retry, on the same tenant: the metadata
// stays with the job.
func (m *Middleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if m.tenantless[job.Kind] {
		// An empty id is no tenant: the client's own context must not
		// lend one to the job.
		return doInner(tenantctx.WithTenant(ctx, ""))
	}
	meta, err := decodeMetadata(job.Metadata)
	if err != nil {
		return river.JobCancel(fmt.Errorf("tenantriver: job %d of kind %q: %w", job.ID, job.Kind, err))
	}
	id, err := metadataTenant(meta)
	if err != nil {
		return river.JobCancel(fmt.Errorf("tenantriver: job %d of kind %q: %w", job.ID, job.Kind, err))
	}
	if id == "" {
		return river.JobCancel(&noTenantError{kind: job.Kind, jobID: job.ID})
	}
	created, checked, err := metadataCreatedAt(meta)
	if err != nil {
		return river.JobCancel(fmt.Errorf("tenantriver: job %d of kind %q: %w", job.ID, job.Kind, err))
	}
	if checked {
		t, err := m.lookup(ctx, id)
		if err := m.judge(job, meta, id, created, true, t, err); err != nil {
			return err
		}
	}
	err = doInner(tenantctx.WithTenant(ctx, id))
	if !errors.Is(err, driver.ErrUnknownTenant) || errors.Is(err, &rivertype.JobCancelError{}) {
		return err
	}
	if !checked {
		t, getErr := m.lookup(ctx, id)
		if goneErr := m.judge(job, meta, id, created, false, t, getErr); goneErr != nil {
			if cancel := (*rivertype.JobCancelError)(nil); errors.As(goneErr, &cancel) {
				return river.JobCancel(fmt.Errorf("%w (%w)", err, cancel.Unwrap()))
			}
			// A snooze too: River finds it with errors.As.
			return fmt.Errorf("%w (%w)", err, goneErr)
		}
	}
	// The store had the tenant, as the job's incarnation: the store's
	// changes reach processes a moment apart, and this one has not heard
	// of it yet, or has heard of its delete first (a later attempt,
	// asking the store again, cancels the job then, past WithStoreLag).
	return fmt.Errorf("%w (tenantriver: the tenant store has tenant %q, but this process does not know it, "+
		"not yet or no longer: the job is retried)", err, id)
}

// lookup asks the store for tenant id, within m.lookupTimeout.
func (m *Middleware) lookup(ctx context.Context, id string) (store.Tenant, error) {
	if m.lookupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.lookupTimeout)
		defer cancel()
	}
	return m.store.Get(ctx, id)
}

// judge judges the answer of the store (t, err) about the job's tenant id:
// a cancel when the tenant is gone for good (deleted, or, when hasCreated,
// re-created since created), a snooze or an error to retry when the store
// could not answer or may be behind, nil when the tenant is there.
func (m *Middleware) judge(job *rivertype.JobRow, meta map[string]json.RawMessage, id string, created time.Time, hasCreated bool, t store.Tenant, err error) error {
	// The job's age by the control database's clock at insert and this
	// process's now: clock skew shortens or stretches the grace, which
	// WithStoreLag's value must allow for.
	young := time.Since(job.CreatedAt) < m.lag
	switch {
	case errors.Is(err, store.ErrNotFound) && young:
		// Deleted, or created a moment ago and not here yet: only time
		// tells them apart.
		return river.JobSnooze(snoozeBackoff(meta))
	case errors.Is(err, store.ErrNotFound):
		return river.JobCancel(&goneError{jobID: job.ID, kind: job.Kind, tenant: id})
	case err != nil:
		// An outage must not use up the job's attempts, nor a lookup
		// that timed out: snoozes do not count.
		return river.JobSnooze(snoozeBackoff(meta))
	case !hasCreated || t.CreatedAt.IsZero() || t.CreatedAt.Equal(created):
		// A store that has lost the tenant's CreatedAt (a hand-edited
		// file) cannot tell incarnations apart: not a reason to cancel.
		return nil
	case t.CreatedAt.After(created):
		return river.JobCancel(&goneError{jobID: job.ID, kind: job.Kind, tenant: id, created: created, now: t.CreatedAt})
	case young:
		// The store has an older incarnation than the inserting
		// process had: this process has not heard of the re-creation.
		return river.JobSnooze(snoozeBackoff(meta))
	}
	return &staleError{jobID: job.ID, kind: job.Kind, tenant: id, created: created, seen: t.CreatedAt}
}

// snoozeBackoff is how long a job waits for the store: a second after
// the first snooze, doubling with each (River counts them in the job's
// metadata, "snoozes"), up to a minute.
func snoozeBackoff(meta map[string]json.RawMessage) time.Duration {
	var n int
	if raw, ok := meta["snoozes"]; ok {
		_ = json.Unmarshal(raw, &n) // not a count: start over
	}
	return min(time.Second<<min(max(n, 0), 6), time.Minute)
}

// goneError is driver.ErrUnknownTenant for a job whose tenant the store
// no longer has, or has as a later incarnation.
type goneError struct {
	jobID        int64
	kind, tenant string
	created, now time.Time // set when re-created
}

func (e *goneError) Error() string {
	if !e.now.IsZero() {
		return fmt.Sprintf("%s: job %d of kind %q belongs to tenant %q as created at %s, but the tenant was deleted and re-created "+
			"(created at %s): a new tenant does not run its predecessor's jobs, so the job was cancelled",
			driver.ErrUnknownTenant, e.jobID, e.kind, e.tenant, formatCreatedAt(e.created), formatCreatedAt(e.now))
	}
	return fmt.Sprintf("%s: job %d of kind %q belongs to tenant %q, which the tenant store no longer has (deleted): "+
		"the job was cancelled, since no retry can bring the tenant back", driver.ErrUnknownTenant, e.jobID, e.kind, e.tenant)
}

func (e *goneError) Unwrap() error { return driver.ErrUnknownTenant }

// staleError is driver.ErrUnknownTenant for a job whose tenant this
// process's store has as an earlier incarnation than the job's, past
// WithStoreLag: the store here is behind the one the job was inserted
// with.
type staleError struct {
	jobID         int64
	kind, tenant  string
	created, seen time.Time
}

func (e *staleError) Error() string {
	return fmt.Sprintf("%s: job %d of kind %q belongs to tenant %q as created at %s, but this process's tenant store "+
		"still has it as created at %s, before: the store here is behind the one the job was inserted with "+
		"(check that every process reads the same store, and its replication or polling); the job is retried",
		driver.ErrUnknownTenant, e.jobID, e.kind, e.tenant, formatCreatedAt(e.created), formatCreatedAt(e.seen))
}

func (e *staleError) Unwrap() error { return driver.ErrUnknownTenant }

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

// metadataCreatedAt returns the tenant's CreatedAt the metadata names
// (MetadataKeyCreatedAt), and whether it names one.
func metadataCreatedAt(meta map[string]json.RawMessage) (time.Time, bool, error) {
	raw, ok := meta[MetadataKeyCreatedAt]
	if !ok {
		return time.Time{}, false, nil
	}
	var s string
	t, err := time.Time{}, json.Unmarshal(raw, &s)
	if err == nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("metadata key %s holds %s, want an RFC 3339 time string", MetadataKeyCreatedAt, raw)
	}
	return t, true, nil
}

// metadataString returns the string under key, and whether there is one.
func metadataString(meta map[string]json.RawMessage, key string) (string, bool) {
	var s string
	if raw, ok := meta[key]; !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
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
