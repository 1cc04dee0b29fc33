package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// mustList returns s.List, failing the test if it fails: "nothing was
// created" must not pass because the list could not be read.
func mustList(t testing.TB, s Store) []Tenant {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return list
}

// mustGet returns s.Get(id), failing the test if it fails.
func mustGet(t testing.TB, s Store, id string) Tenant {
	t.Helper()
	tn, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return tn
}

// mustRead returns the content of a file, failing the test if it cannot
// be read.
func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dbInfo returns valid deploy info whose URL names db and holds a password.
func dbInfo(db string) map[string]string {
	return map[string]string{KeyPostgresURL: "postgres://app:hunter2@db.internal:5432/" + db}
}

func newTenant(id, db string) Tenant { return Tenant{ID: id, DeployInfo: dbInfo(db)} }

// backends runs a test against every Store implementation.
var backends = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"memory", func(t *testing.T) Store {
		s, err := Open(context.Background(), "memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"redis", func(t *testing.T) Store {
		u := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t), "check", "200ms")
		s, err := Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"file", func(t *testing.T) Store {
		path := filepath.Join(t.TempDir(), "tenants.json")
		s, err := OpenFile(context.Background(), path, WithFileCreate(true), WithFilePollInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func forEachBackend(t *testing.T, test func(t *testing.T, s Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	existing := filepath.Join(dir, "tenants.json")
	if err := os.WriteFile(existing, []byte(`{"tenants": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")

	ok := []struct {
		url      string
		path     string        // for file stores
		poll     time.Duration // for file stores
		isMemory bool
	}{
		{url: "memory:", isMemory: true},
		{url: "memory://", isMemory: true},
		{url: "MEMORY:", isMemory: true},
		{url: "file:" + existing, path: existing, poll: time.Second},
		{url: "file://" + existing, path: existing, poll: time.Second},
		{url: "file://localhost" + existing, path: existing, poll: time.Second},
		{url: "file:" + missing + "?create=true", path: missing, poll: time.Second},
		{url: "file:" + missing + "?create=1", path: missing, poll: time.Second},
		{url: "file:" + existing + "?create=false", path: existing, poll: time.Second},
		{url: "file:" + existing + "?poll=0", path: existing, poll: 0},
		{url: "file:" + existing + "?poll=50ms", path: existing, poll: 50 * time.Millisecond},
		{url: "file://" + missing + "?poll=2s&create=true", path: missing, poll: 2 * time.Second},
	}
	for _, tc := range ok {
		s, err := Open(ctx, tc.url)
		if err != nil {
			t.Errorf("Open(%q): %v", tc.url, err)
			continue
		}
		switch s := s.(type) {
		case *Memory:
			if !tc.isMemory {
				t.Errorf("Open(%q) is a *Memory", tc.url)
			}
		case *File:
			if s.Path() != tc.path || s.poll != tc.poll {
				t.Errorf("Open(%q) = file %q polling every %v, want %q every %v", tc.url, s.Path(), s.poll, tc.path, tc.poll)
			}
		default:
			t.Errorf("Open(%q) = %T", tc.url, s)
		}
		s.Close()
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("opening with create=true created the file before any write: %v", err)
	}

	bad := []struct {
		url  string
		want []string // substrings of the error
		is   error    // what the error wraps, if anything in particular
	}{
		{"", []string{"not a tenant store URL"}, ErrNotStoreURL},
		{"tenant_config.json", []string{"tenant_config.json", "not a tenant store URL", "file:PATH"}, ErrNotStoreURL},
		{"memory:foo", []string{"memory:", "foo"}, nil},
		{"memory:?x=1", []string{"memory:"}, nil},
		{"redis://127.0.0.1:6379/x", []string{"redis", "database number"}, nil},
		{"redis://:hunter2@127.0.0.1:6379/0?prefix=a%20b", []string{"prefix", "xxxxx"}, nil},
		{"redis://127.0.0.1:6379/0?check=soon", []string{"check"}, nil},
		{"redis://127.0.0.1:6379/0?bogus=1", []string{"bogus"}, nil},
		// A PostgreSQL URL or DSN: what the DSN is instead, with an
		// example, and the password not echoed.
		{"postgres://app:hunter2@db/app", []string{"PostgreSQL URL", "tenant store", "file:PATH", "redis://", "memory:", `sql.Open("tenantsql", "file:tenant_config.json")`, "POSTGRES_URL"}, ErrNotStoreURL},
		{"postgresql://app:hunter2@db/app?sslmode=disable", []string{"PostgreSQL URL", "file:tenant_config.json"}, ErrNotStoreURL},
		{"host=db user=app password=hunter2 dbname=app", []string{"PostgreSQL URL", "file:tenant_config.json"}, ErrNotStoreURL},
		{"mysql://app:hunter2@db/app", []string{`unsupported scheme "mysql"`, "file:"}, ErrNotStoreURL},
		{"file:", []string{"no path"}, nil},
		{"file://otherhost/tenants.json", []string{"otherhost"}, nil},
		{"file:" + missing, []string{missing, "file:" + missing + "?create=true"}, fs.ErrNotExist},
		{"file:" + existing + "?create=maybe", []string{"create", "maybe"}, nil},
		{"file:" + existing + "?poll=often", []string{"poll", "often"}, nil},
		{"file:" + existing + "?pol=1s", []string{`"pol"`, "unknown"}, nil},
		{"file:" + existing + "?create=true&readonly=1", []string{`"readonly"`, "unknown"}, nil},
		{"file:" + existing + "?%zz", []string{"options"}, nil},
		{"file:" + existing + "?create=true&url_key=ANALYTICS_URL", []string{"url_key", "tenantsql driver"}, nil},
		{"redis://:hunter2@127.0.0.1:6379/0?url_key=ANALYTICS_URL", []string{"url_key", "tenantsql driver"}, nil},
	}
	for _, tc := range bad {
		s, err := Open(ctx, tc.url)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", tc.url)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open(%q) error %q does not contain %q", tc.url, err, want)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error %q contains the password", tc.url, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Open(%q) error %v does not wrap %v", tc.url, err, tc.is)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cancelled, "file:"+existing); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStoreCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if got, err := s.List(ctx); err != nil || len(got) != 0 {
			t.Fatalf("List of a new store = %v, %v; want empty", got, err)
		}

		if _, err := s.Get(ctx, "t1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"t1"`) {
			t.Errorf("Get of a missing tenant = %v, want ErrNotFound naming it", err)
		}
		wantInvalid(t, getErr(s.Get(ctx, "Bad")), "tenant_id")

		// Create sets Version and the timestamps, whatever the caller gave.
		in := newTenant("t1", "one")
		in.Version, in.CreatedAt = 42, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		before := time.Now().Add(-time.Second)
		c, err := s.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if c.ID != "t1" || c.Version != 1 || !maps.Equal(c.DeployInfo, dbInfo("one")) {
			t.Errorf("Create returned %v, want t1 version 1 with its deploy info", c)
		}
		if c.CreatedAt.Before(before) || !c.UpdatedAt.Equal(c.CreatedAt) {
			t.Errorf("Create returned CreatedAt %v UpdatedAt %v, want now and equal", c.CreatedAt, c.UpdatedAt)
		}
		if g, err := s.Get(ctx, "t1"); err != nil || !sameTenant(g, c) {
			t.Errorf("Get after Create = %v, %v; want %v", g, err, c)
		}

		if _, err := s.Create(ctx, newTenant("t1", "other")); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"t1"`) {
			t.Errorf("second Create of t1 = %v, want ErrExists naming it", err)
		}
		if g := mustGet(t, s, "t1"); g.PostgresURL() != c.PostgresURL() {
			t.Errorf("a failed Create changed the tenant: %v", g)
		}
		wantInvalid(t, getErr(s.Create(ctx, Tenant{ID: "t2"})), "deploy_info")
		wantInvalid(t, getErr(s.Create(ctx, newTenant("T2", "x"))), "tenant_id")

		// Ids are compared byte for byte: no two of these collide.
		for _, id := range []string{"a-b", "a.b", "a_b"} {
			if _, err := s.Create(ctx, newTenant(id, "db_"+id)); err != nil {
				t.Fatalf("Create(%q): %v", id, err)
			}
		}
		for _, id := range []string{"a-b", "a.b", "a_b"} {
			if g, err := s.Get(ctx, id); err != nil || g.PostgresURL() != dbInfo("db_" + id)[KeyPostgresURL] {
				t.Errorf("Get(%q) = %v, %v; want its own database", id, g, err)
			}
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(list), []string{"a-b", "a.b", "a_b", "t1"}; !slices.Equal(got, want) {
			t.Errorf("List ids = %v, want %v (sorted by id)", got, want)
		}

		// Update.
		if _, err := s.Update(ctx, newTenant("nope", "x")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Update of a missing tenant = %v, want ErrNotFound", err)
		}
		wantInvalid(t, getErr(s.Update(ctx, Tenant{ID: "t1", DeployInfo: map[string]string{"REGION": "eu"}})), "deploy_info.POSTGRES_URL")
		u, err := s.Update(ctx, newTenant("t1", "two")) // Version 0: unconditional
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if u.Version != 2 || u.PostgresURL() != dbInfo("two")[KeyPostgresURL] || !u.CreatedAt.Equal(c.CreatedAt) || u.UpdatedAt.Before(c.UpdatedAt) {
			t.Errorf("Update returned %v (created %v, updated %v); want version 2, the new URL, CreatedAt kept", u, u.CreatedAt, u.UpdatedAt)
		}
		stale := newTenant("t1", "three")
		stale.Version = 1
		if _, err := s.Update(ctx, stale); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"t1"`) {
			t.Errorf("Update with a stale version = %v, want ErrConflict naming the tenant", err)
		}
		if g := mustGet(t, s, "t1"); g.Version != 2 || g.PostgresURL() != u.PostgresURL() {
			t.Errorf("a conflicting Update changed the tenant: %v", g)
		}
		stale.Version = 2
		if u, err = s.Update(ctx, stale); err != nil || u.Version != 3 {
			t.Errorf("Update with the current version = %v, %v; want version 3", u, err)
		}

		// Delete.
		if existed, err := s.Delete(ctx, "t1"); err != nil || !existed {
			t.Errorf("Delete(t1) = %v, %v; want true, nil", existed, err)
		}
		if existed, err := s.Delete(ctx, "t1"); err != nil || existed {
			t.Errorf("second Delete(t1) = %v, %v; want false, nil", existed, err)
		}
		if _, err := s.Get(ctx, "t1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete = %v, want ErrNotFound", err)
		}
		_, err = s.Delete(ctx, "-x")
		wantInvalid(t, err, "tenant_id")
		if _, err := s.Create(ctx, newTenant("t1", "again")); err != nil {
			t.Errorf("Create after Delete: %v", err)
		}
	})
}

func getErr[T any](_ T, err error) error { return err }

func ids(ts []Tenant) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func sameTenant(a, b Tenant) bool {
	return a.ID == b.ID && a.Version == b.Version && maps.Equal(a.DeployInfo, b.DeployInfo) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func sameTenants(a, b []Tenant) bool { return slices.EqualFunc(a, b, sameTenant) }

func TestStoreReturnsCopies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		in := newTenant("t1", "one")
		c, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := dbInfo("one")
		in.DeployInfo[KeyPostgresURL] = "postgres://input/changed"
		c.DeployInfo[KeyPostgresURL] = "postgres://created/changed"
		g := mustGet(t, s, "t1")
		g.DeployInfo["EXTRA"] = "x"
		l := mustList(t, s)
		l[0].DeployInfo[KeyPostgresURL] = "postgres://listed/changed"
		ch, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev := next(t, ch)
		ev.Tenants[0].DeployInfo[KeyPostgresURL] = "postgres://event/changed"

		if g := mustGet(t, s, "t1"); !maps.Equal(g.DeployInfo, want) {
			t.Errorf("changing returned values changed the store: %v", g.DeployInfo)
		}
		u, err := s.Update(ctx, newTenant("t1", "two"))
		if err != nil {
			t.Fatal(err)
		}
		u.DeployInfo[KeyPostgresURL] = "postgres://updated/changed"
		if ev := next(t, ch); ev.Type == EventUpdate {
			ev.Tenant.DeployInfo[KeyPostgresURL] = "postgres://event/changed"
		} else {
			t.Errorf("got %v, want the update", ev.Type)
		}
		if g := mustGet(t, s, "t1"); !maps.Equal(g.DeployInfo, dbInfo("two")) {
			t.Errorf("changing returned values changed the store: %v", g.DeployInfo)
		}
	})
}

func TestStoreClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if _, err := s.Create(ctx, newTenant("t1", "one")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		checks := map[string]error{
			"Get":    getErr(s.Get(ctx, "t1")),
			"List":   getErr(s.List(ctx)),
			"Create": getErr(s.Create(ctx, newTenant("t2", "two"))),
			"Update": getErr(s.Update(ctx, newTenant("t1", "two"))),
			"Delete": getErr(s.Delete(ctx, "t1")),
			"Watch":  getErr(s.Watch(ctx)),
			"Ping":   s.Ping(ctx),
		}
		for name, err := range checks {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		}
	})
}

// Of concurrent creates of one id exactly one wins.
func TestStoreConcurrentCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		const n = 20
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			errs   = make([]error, n)
			winner = make([]Tenant, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				winner[i], errs[i] = s.Create(context.Background(), newTenant("contested", fmt.Sprint("db", i)))
			})
		}
		close(start)
		wg.Wait()
		won, lost := -1, 0
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Errorf("creates %d and %d both succeeded", won, i)
				}
				won = i
			case errors.Is(err, ErrExists):
				lost++
			default:
				t.Errorf("create %d: %v", i, err)
			}
		}
		if won < 0 || lost != n-1 {
			t.Fatalf("%d creates: winner %d, %d ErrExists; want exactly one winner and %d ErrExists", n, won, lost, n-1)
		}
		if g, err := s.Get(context.Background(), "contested"); err != nil || !sameTenant(g, winner[won]) {
			t.Errorf("stored tenant %v, %v; want the winner's %v", g, err, winner[won])
		}
	})
}
