package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/keyring"
)

// Store holds the tenants and tells watchers about every change.
//
// Implementations are safe for concurrent use. Every method that does I/O
// takes a context.
type Store interface {
	// Get returns the tenant with that id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Tenant, error)
	// List returns every tenant, sorted by id.
	List(ctx context.Context) ([]Tenant, error)
	// Create adds t (Version, CreatedAt and UpdatedAt are set by the store)
	// and returns it as stored. It fails with ErrExists if the id is taken:
	// of several concurrent creates of one id, exactly one succeeds.
	Create(ctx context.Context, t Tenant) (Tenant, error)
	// Update replaces the deploy info of an existing tenant and returns it
	// as stored, with Version increased by one. It fails with ErrNotFound
	// if there is no such tenant, and with ErrConflict if t.Version is not
	// zero and not the current version.
	Update(ctx context.Context, t Tenant) (Tenant, error)
	// Delete removes the tenant and reports whether it existed. Deleting a
	// missing tenant is not an error.
	Delete(ctx context.Context, id string) (bool, error)
	// Watch returns a channel of changes. The first event is an EventSync
	// with every tenant; after it come the changes in order. When the
	// watcher falls behind or the store loses track of changes, another
	// EventSync replaces what was missed: a consumer that applies a Sync as
	// "this is the whole set now" is never wrong for long. The channel is
	// closed when ctx ends or the store is closed.
	Watch(ctx context.Context) (<-chan Event, error)
	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error
	// Close releases the store's resources and closes watch channels.
	Close() error
}

// EventType says what an Event describes.
type EventType uint8

// Event types.
const (
	// EventSync carries the whole tenant set in Tenants.
	EventSync EventType = iota + 1
	// EventCreate, EventUpdate and EventDelete carry one tenant in Tenant;
	// for a delete it is the tenant as it was.
	EventCreate
	EventUpdate
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventSync:
		return "sync"
	case EventCreate:
		return "create"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// An Event is one change to the store, or a full snapshot of it.
type Event struct {
	Type EventType
	// Version is the store's version after this change: it grows by one
	// with every mutation, so a consumer can skip what it has seen. A
	// store fed from another process (Redis) may leave out a change that
	// a later one superseded before it read it, such as a tenant created
	// and deleted meanwhile: versions then jump.
	Version int64
	Tenant  Tenant   // EventCreate, EventUpdate, EventDelete
	Tenants []Tenant // EventSync, sorted by id
	// DataLoss marks an EventSync sent while the store is in data-loss
	// mode: its source came back without data it had (a Redis restarted
	// without persistence, flushed, or failed over to a replica that
	// lacked the last writes). Version may have gone back. Tenants is still
	// the whole set: what the source holds now, plus the tenants this
	// process knew that the source lost, kept with their last known
	// records until they are deleted, written again, or an operator
	// accepts the loss (a later sync without DataLoss drops them).
	DataLoss bool
	// Seq is the event's place in the order in which this Store value
	// published its events, counting from 1 (0: nothing had been published
	// yet when the first sync was taken). A sync sent to a watcher that
	// fell behind carries the Seq of the last event it covers. Unlike
	// Version it is local to this process and never goes back: a watcher
	// that has applied an event whose Seq is at least what Published
	// returned has seen every change that store value published until
	// then (see Sequencer).
	Seq uint64
}

// A Sequencer is a Store whose watchers can tell whether they have seen
// every change made through it, which is what gives read-your-writes
// within a process: the tenantsql driver compares Published with the Seq
// of the last event it applied before every checkout, and waits for the
// rest when it is behind. Every store of this package is a Sequencer.
type Sequencer interface {
	// Published returns the Seq of the last event published to watchers.
	// When Create, Update or Delete has returned, it covers that change;
	// for a store fed from another process (Redis), also once this
	// process has read the change back, which the write waits for (see
	// Redis).
	Published() uint64
}

// LogValue makes slog print the event without secrets: encoding/json,
// which slog's JSON handler would use otherwise, shows the deploy info as
// it is.
func (e Event) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", e.Type.String()), slog.Int64("version", e.Version)}
	if e.Type == EventSync {
		attrs = append(attrs, slog.Int("tenants", len(e.Tenants)))
		if e.DataLoss {
			attrs = append(attrs, slog.Bool("data_loss", true))
		}
	} else {
		attrs = append(attrs, slog.Attr{Key: "tenant", Value: e.Tenant.LogValue()})
	}
	return slog.GroupValue(attrs...)
}

// An OpenOption configures Open.
type OpenOption func(*openOptions)

type openOptions struct {
	keys  *keyring.Keyring
	plain bool
}

// WithKeys gives the store opened the keys that seal tenants' secrets at
// rest (WithFileKeys, WithRedisKeys), over any the URL names. A memory
// store holds nothing at rest and ignores them.
func WithKeys(kr *keyring.Keyring) OpenOption { return func(o *openOptions) { o.keys = kr } }

// WithPlaintextAllowed makes a file store with keys read a file whose
// secrets are sealed but for some in clear (see WithFilePlaintextAllowed),
// for tenantsql tenants rekey. A Redis store's Rekey reads them without
// it; the others ignore it.
func WithPlaintextAllowed(allow bool) OpenOption { return func(o *openOptions) { o.plain = allow } }

// Open opens the store that rawURL names:
//
//	file:PATH            a JSON file (file:tenant_config.json, file:///etc/app/tenants.json)
//	redis://, rediss://  Redis, shared by every process (see OpenRedis)
//	memory:              an empty in-memory store, for tests
//
// File URLs take options as query parameters: create=true makes a missing
// file an empty store instead of an error, and poll=DURATION sets how often
// the file is checked for changes made by other processes (default 1s,
// 0 turns it off).
//
// File and Redis URLs take keys=env, which seals the tenants' secrets at
// rest with the keys in the TENANTSQL_KEYS environment variable, or
// keys_file=PATH, which reads them from a file (see the package
// documentation, Secrets at rest).
//
// A rawURL that names no store (a PostgreSQL URL or DSN among them: the
// tenants' databases are in the store, not in its URL) is an error
// wrapping ErrNotStoreURL; a missing file, without create=true, one
// wrapping fs.ErrNotExist. Neither message shows a password.
func Open(ctx context.Context, rawURL string, opts ...OpenOption) (Store, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if isPostgresDSN(rawURL, scheme, ok) {
		return nil, errPostgresDSN
	}
	if !ok || scheme == "" {
		// Echo a mistyped path, but not what may be a key=value DSN with
		// a password in it.
		shown := "the store URL"
		if !strings.Contains(rawURL, "=") {
			shown = strconv.Quote(shorten(rawURL))
		}
		return nil, fmt.Errorf("store: %s: %w (want file:PATH, memory: or redis://...)", shown, ErrNotStoreURL)
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		if v, err := url.ParseQuery(q); err == nil && v.Has("url_key") {
			return nil, fmt.Errorf("store: url_key is an option of the tenantsql driver (sql.Open(\"tenantsql\", ...)), which takes it out of the URL; a store does not take it: open the store without it")
		}
	}
	switch strings.ToLower(scheme) {
	case "memory":
		if rest != "" && rest != "//" {
			return nil, fmt.Errorf("store: memory: takes no path or options, got %q", shorten(rest))
		}
		return NewMemory(), nil
	case "file":
		path, fopts, err := parseFileURL(rest)
		if err != nil {
			return nil, err
		}
		if o.keys != nil {
			fopts = append(fopts, WithFileKeys(o.keys))
		}
		if o.plain {
			fopts = append(fopts, WithFilePlaintextAllowed(true))
		}
		return OpenFile(ctx, path, fopts...)
	case "redis", "rediss":
		var ropts []RedisOption
		if o.keys != nil {
			ropts = append(ropts, WithRedisKeys(o.keys))
		}
		return OpenRedis(ctx, rawURL, ropts...)
	default:
		return nil, fmt.Errorf("store: %w: unsupported scheme %q (want file:, memory:, redis:// or rediss://)", ErrNotStoreURL, shorten(scheme))
	}
}

// errPostgresDSN is Open's error for a PostgreSQL URL or DSN: the mistake
// of a newcomer who hands sql.Open("tenantsql", ...) what
// sql.Open("pgx", ...) takes. It does not echo the DSN, which may hold a
// password.
var errPostgresDSN = fmt.Errorf("store: %w: it is a PostgreSQL URL, but the tenantsql DSN names the tenant store, "+
	"in which each tenant has its own POSTGRES_URL: use file:PATH, redis://HOST:PORT/DB or memory:, "+
	`for example sql.Open("tenantsql", "file:tenant_config.json") with `+
	`{"tenants": {"tenant-1": {"deploy_info": {"POSTGRES_URL": "postgres://..."}}}} in tenant_config.json`, ErrNotStoreURL)

// isPostgresDSN reports whether rawURL, cut at its first ':' into scheme
// (ok if there was one), is what pgx takes: a postgres:// or
// postgresql:// URL, or key=value settings naming a host, database or
// user.
func isPostgresDSN(rawURL, scheme string, ok bool) bool {
	if ok {
		switch strings.ToLower(scheme) {
		case "postgres", "postgresql":
			return true
		}
	}
	for _, f := range strings.Fields(rawURL) {
		k, _, hasValue := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "host", "hostaddr", "dbname", "user", "port":
			if hasValue {
				return true
			}
		}
	}
	return false
}

func parseFileURL(rest string) (string, []FileOption, error) {
	path, rawQuery, _ := strings.Cut(rest, "?")
	if strings.HasPrefix(path, "//") {
		// file:///abs/path or file://localhost/abs/path
		u, err := url.Parse("file:" + path)
		if err != nil {
			return "", nil, fmt.Errorf("store: bad file URL: %w", err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", nil, fmt.Errorf("store: file URL names host %q; only local files are supported", u.Host)
		}
		path = u.Path
	}
	if path == "" {
		return "", nil, fmt.Errorf("store: file URL has no path (want file:tenant_config.json)")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("store: file URL options: %w", err)
	}
	var opts []FileOption
	kr, err := keysFromURL(q.Get("keys"), q.Get("keys_file"), q.Has("keys"), q.Has("keys_file"))
	if err != nil {
		return "", nil, fmt.Errorf("store: file URL: %w", err)
	}
	if kr != nil {
		opts = append(opts, WithFileKeys(kr))
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "create":
			switch v {
			case "true", "1":
				opts = append(opts, WithFileCreate(true))
			case "false", "0":
			default:
				return "", nil, fmt.Errorf("store: file URL option create=%q: want true or false", v)
			}
		case "poll":
			d, err := parseDuration(v)
			if err != nil {
				return "", nil, fmt.Errorf("store: file URL option poll=%q: %w", v, err)
			}
			opts = append(opts, WithFilePollInterval(d))
		case "keys", "keys_file":
		default:
			return "", nil, fmt.Errorf("store: unknown file URL option %q (known: create, poll, keys, keys_file)", k)
		}
	}
	return path, opts, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 500ms or 2s")
	}
	return d, nil
}
