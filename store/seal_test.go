package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/keyring"
)

func testRing(t testing.TB, ids ...string) *keyring.Keyring {
	t.Helper()
	var keys []keyring.Key
	for _, id := range ids {
		keys = append(keys, keyring.Key{ID: id, Secret: bytes.Repeat([]byte(id[len(id)-1:]), keyring.KeySize)})
	}
	s, err := keyring.NewStatic(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return keyring.New(s)
}

// sealedBackend is a store that keeps tenants at rest, opened by several
// processes (store values) with keys of their own, and read raw.
type sealedBackend struct {
	name string
	// setup returns open, which opens a store value on one location with
	// the keys given (nil: none) and logging to log, reading secrets in
	// clear among sealed ones if plain (WithFilePlaintextAllowed), and
	// raw, which returns everything the location holds at rest.
	setup func(t *testing.T) (open func(kr *keyring.Keyring, log *slog.Logger, plain ...bool) Store, raw func() string)
}

var sealedBackends = []sealedBackend{
	{"file", func(t *testing.T) (func(*keyring.Keyring, *slog.Logger, ...bool) Store, func() string) {
		path := filepath.Join(t.TempDir(), "tenants.json")
		open := func(kr *keyring.Keyring, log *slog.Logger, plain ...bool) Store {
			s, err := OpenFile(context.Background(), path, WithFileCreate(true), WithFilePollInterval(0), WithFileKeys(kr), WithFileLogger(log),
				WithFilePlaintextAllowed(len(plain) > 0 && plain[0]))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open, func() string { return mustRead(t, path) }
	}},
	{"redis", func(t *testing.T) (func(*keyring.Keyring, *slog.Logger, ...bool) Store, func() string) {
		url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
		open := func(kr *keyring.Keyring, log *slog.Logger, _ ...bool) Store {
			return openRedis(t, url, prefix, WithRedisKeys(kr), WithRedisLogger(log))
		}
		raw := func() string {
			c := rawRedis(t, url)
			k := newRedisKeys(prefix)
			ctx := context.Background()
			var b strings.Builder
			all, err := c.HGetAll(ctx, k.tenants).Result()
			if err != nil {
				t.Fatal(err)
			}
			for id, rec := range all {
				fmt.Fprintf(&b, "%s=%s\n", id, rec)
			}
			entries, err := c.XRange(ctx, k.events, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				fmt.Fprintf(&b, "%s %v\n", e.ID, e.Values)
			}
			return b.String()
		}
		return open, raw
	}},
}

// noSecrets fails the test if raw holds any of the secrets.
func noSecrets(t *testing.T, when, raw string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Fatalf("%s: %q is in clear at rest:\n%s", when, s, raw)
		}
	}
}

func TestSealedAtRest(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			quiet := slog.New(slog.DiscardHandler)
			k1 := open(testRing(t, "k1"), quiet)

			info := map[string]string{
				KeyPostgresURL: "postgres://app:hunter2@db.internal:5432/one",
				"API_TOKEN":    "tok-secret-1",
				"REPLICA_URL":  "postgres://ro@replica.internal/one?password=ro-secret-3",
				"REGION":       "eu-west",
			}
			if _, err := k1.Create(ctx, Tenant{ID: "t1", DeployInfo: info}); err != nil {
				t.Fatal(err)
			}
			after := raw()
			noSecrets(t, "after create", after, "hunter2", "tok-secret-1", "ro-secret-3", "db.internal")
			if !strings.Contains(after, "eu-west") || !strings.Contains(after, "enc:v1:k1:") {
				t.Fatalf("after create: want REGION in clear and values sealed with k1:\n%s", after)
			}
			if got := mustGet(t, k1, "t1"); got.DeployInfo[KeyPostgresURL] != info[KeyPostgresURL] || got.DeployInfo["API_TOKEN"] != "tok-secret-1" {
				t.Fatalf("Get = %v, want the plaintext back", got.DeployInfo)
			}

			info[KeyPostgresURL] = "postgres://app:newpass-2@db.internal:5432/one"
			if _, err := k1.Update(ctx, Tenant{ID: "t1", DeployInfo: info}); err != nil {
				t.Fatal(err)
			}
			noSecrets(t, "after update", raw(), "hunter2", "newpass-2", "tok-secret-1", "ro-secret-3")

			// A process that lacks k1: t1 is there, unusable, and says
			// which key it lacks. What it writes, it seals with k2, and a
			// file rewritten by it keeps t1 as it was.
			var logs testenv.LogBuffer
			onlyK2 := open(testRing(t, "k2"), slog.New(slog.NewJSONHandler(&logs, nil)))
			if _, err := onlyK2.Create(ctx, Tenant{ID: "t2", DeployInfo: dbInfo("two")}); err != nil {
				t.Fatal(err)
			}
			if after := raw(); !strings.Contains(after, "enc:v1:k2:") || !strings.Contains(after, "enc:v1:k1:") {
				t.Fatalf("want t1 sealed with k1 and t2 with k2:\n%s", after)
			}
			ts := mustList(t, onlyK2)
			if len(ts) != 2 || !ts[0].IsSealed() || ts[1].IsSealed() || ts[1].PostgresURL() != dbInfo("two")[KeyPostgresURL] {
				t.Fatalf("List without k1 = %v; want t1 sealed, t2 open", ts)
			}
			if ts[0].DeployInfo["REGION"] != "eu-west" {
				t.Fatalf("t1's plain values are lost: %v", ts[0].DeployInfo)
			}
			if s := ts[0].String(); !strings.Contains(s, "enc:v1:k1:xxxxx") || strings.Contains(s, "hunter2") {
				t.Fatalf("t1 is shown as %s, want its sealed values as enc:v1:k1:xxxxx", s)
			}
			if l := logs.String(); !strings.Contains(l, `tenant \"t1\"`) || !strings.Contains(l, `key \"k1\"`) || strings.Contains(l, "newpass-2") {
				t.Fatalf("log does not name tenant t1 and key k1, or shows the password:\n%s", l)
			}

			// A process that has rotated to k2 and keeps k1 reads both.
			rotated := open(testRing(t, "k2", "k1"), quiet)
			if got := mustList(t, rotated); len(got) != 2 || got[0].PostgresURL() != info[KeyPostgresURL] || got[1].PostgresURL() != dbInfo("two")[KeyPostgresURL] {
				t.Fatalf("after rotation List = %v, want the plaintext of both", got)
			}

			// A process without keys refuses to write into a sealed store.
			none := open(nil, quiet)
			_, err := none.Create(ctx, Tenant{ID: "t3", DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:plain-4@db/three"}})
			if !errors.Is(err, ErrNoKeys) {
				t.Fatalf("Create without keys in a sealed store: %v, want ErrNoKeys", err)
			}
			noSecrets(t, "after a refused write", raw(), "plain-4", "newpass-2")
			if _, err := none.Update(ctx, Tenant{ID: "t2", DeployInfo: dbInfo("two")}); !errors.Is(err, ErrNoKeys) {
				t.Fatalf("Update without keys in a sealed store: %v, want ErrNoKeys", err)
			}
			// It may delete, which writes no secret, on either store:
			// the values it cannot open stay as they were, sealed.
			if ok, err := none.Delete(ctx, "t2"); err != nil || !ok {
				t.Fatalf("Delete without keys in a sealed store = %v, %v; want it deleted", ok, err)
			}
			noSecrets(t, "after a delete without keys", raw(), "hunter2", "newpass-2", "tok-secret-1")
			if got := mustList(t, open(testRing(t, "k1"), quiet)); len(got) != 1 || got[0].PostgresURL() != info[KeyPostgresURL] {
				t.Fatalf("after a delete without keys List = %v, want t1 as it was", got)
			}
			// A writer cannot pass a sealed value off as plaintext.
			_, err = k1.Create(ctx, Tenant{ID: "t4", DeployInfo: map[string]string{KeyPostgresURL: "postgres://db/four", "API_TOKEN": ts[0].DeployInfo["API_TOKEN"]}})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create with a sealed value: %v, want ErrInvalid", err)
			}
		})
	}
}

// TestSealedRefusesPlaintext: once a store's secrets are all sealed, a
// secret put back in clear (by someone who can write the file or Redis but
// has no key) is refused by a process with keys, with an error naming the
// tenant and the key, not the value; rekey, which reads it, seals it.
func TestSealedRefusesPlaintext(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			kr := testRing(t, "k1")
			quiet := slog.New(slog.DiscardHandler)
			s := open(kr, quiet)
			for _, id := range []string{"t1", "t2"} {
				if _, err := s.Create(ctx, newTenant(id, id)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.(Rekeyer).Rekey(ctx); err != nil { // marks Redis as sealed all through
				t.Fatal(err)
			}
			var f *follow
			if r, ok := s.(*Redis); ok {
				f = startFollow(t, r)
				waitFor(t, 10*time.Second, "the follower's first sync", func() bool { return f.has("t1", "t2") })
			}
			const evil = "postgres://app:evil-pw@attacker.example/x"
			switch s := s.(type) {
			case *File:
				var doc fileDoc
				if err := json.Unmarshal([]byte(raw()), &doc); err != nil {
					t.Fatal(err)
				}
				doc.Tenants["t1"].DeployInfo[KeyPostgresURL] = evil
				data, _ := json.Marshal(doc)
				if err := os.WriteFile(s.Path(), data, 0o600); err != nil {
					t.Fatal(err)
				}
			case *Redis:
				rec, err := encodeRecord(Tenant{ID: "t1", Version: 1, DeployInfo: map[string]string{KeyPostgresURL: evil}})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.c.HSet(ctx, s.keys.tenants, "t1", rec).Err(); err != nil {
					t.Fatal(err)
				}
			}
			checkErr := func(what string, err error) {
				t.Helper()
				var pe *PlaintextError
				if !errors.Is(err, ErrPlaintext) || !errors.As(err, &pe) || pe.Tenant != "t1" || pe.Field != KeyPostgresURL {
					t.Fatalf("%s: %v; want a *PlaintextError for t1's POSTGRES_URL", what, err)
				}
				if msg := err.Error(); strings.Contains(msg, "evil-pw") || strings.Contains(msg, "attacker") || !strings.Contains(msg, "tenants rekey") {
					t.Fatalf("%s: %s; want no value shown, and rekey named", what, msg)
				}
			}
			switch s := s.(type) {
			case *File:
				// The process that read the file sealed refuses t1
				// alone, as a new one does: its watchers keep t1 as
				// they had it, Get and writes of t1 are refused (an
				// update checked against the copy it had would
				// overwrite the record on disk), and the other tenants
				// are served and written; a write carries t1's record
				// over as it is.
				if _, err := s.Update(ctx, newTenant("t2", "two")); err != nil {
					t.Fatalf("Update of t2 over a file with t1 in clear: %v", err)
				}
				_, err := s.Get(ctx, "t1")
				checkErr("Get by the process that read t1 sealed", err)
				_, err = s.Update(ctx, Tenant{ID: "t1", Version: 1, DeployInfo: dbInfo("again")})
				checkErr("Update by the process that read t1 sealed", err)
				if !strings.Contains(raw(), "evil-pw") {
					t.Fatalf("the write did not carry t1's record over:\n%s", raw())
				}
				var logs testenv.LogBuffer
				fresh, err := OpenFile(ctx, s.Path(), WithFilePollInterval(0), WithFileKeys(kr), WithFileLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
				if err != nil {
					t.Fatalf("OpenFile of a file with t1 in clear: %v", err)
				}
				defer fresh.Close()
				_, err = fresh.Get(ctx, "t1")
				checkErr("Get", err)
				if got := mustList(t, fresh); len(got) != 1 || got[0].ID != "t2" || got[0].PostgresURL() != dbInfo("two")[KeyPostgresURL] {
					t.Fatalf("List = %v, want t2 only: t1 refused", got)
				}
				if l := logs.String(); !strings.Contains(l, `tenant \"t1\"`) || !strings.Contains(l, "POSTGRES_URL") || strings.Contains(l, "evil") {
					t.Fatalf("log does not name t1 and its key, or shows the value:\n%s", l)
				}
				for what, err := range map[string]error{
					"Create": func() error { _, err := fresh.Create(ctx, newTenant("t1", "again")); return err }(),
					"Update": func() error { _, err := fresh.Update(ctx, newTenant("t1", "again")); return err }(),
					"Delete": func() error { _, err := fresh.Delete(ctx, "t1"); return err }(),
				} {
					checkErr(what+" of the refused tenant", err)
				}
				if _, err := fresh.Create(ctx, newTenant("t3", "three")); err != nil {
					t.Fatalf("Create of t3 over a file with t1 in clear: %v", err)
				}
				if after := raw(); !strings.Contains(after, "evil-pw") || strings.Contains(after, "hunter2") {
					t.Fatalf("want t1 carried over as it was, t3 sealed:\n%s", after)
				}
			case *Redis:
				fresh := open(kr, quiet) // a process that reads the sealed key
				_, err := fresh.Get(ctx, "t1")
				checkErr("Get", err)
				if got := mustList(t, fresh); len(got) != 1 || got[0].ID != "t2" {
					t.Fatalf("List = %v, want t2 only: t1 refused", got)
				}
				// A follower that knew t1 keeps it as it was, over a
				// full resync.
				resyncs := s.resyncCount()
				if err := s.AcceptLoss(ctx); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "the follower's resync", func() bool { return s.resyncCount() > resyncs })
				if got, ok := f.get("t1"); !ok || got.PostgresURL() != dbInfo("t1")[KeyPostgresURL] {
					t.Fatalf("the follower's t1 = %s, %v; want it as it was before Redis was changed", got, ok)
				}
			}
			// Rekey reads it, and seals it: it is the operator's to
			// check first (the value is what the store now says).
			fix := open(kr, quiet, true)
			res, err := fix.(Rekeyer).Rekey(ctx)
			if err != nil || res.Sealed != 1 {
				t.Fatalf("Rekey = %v, %v; want t1 sealed", res, err)
			}
			noSecrets(t, "after rekey", raw(), "evil-pw")
			if got := mustGet(t, open(kr, quiet), "t1"); got.PostgresURL() != evil {
				t.Fatalf("t1 after rekey = %s", got)
			}
		})
	}
}

// TestSealedMoved: a sealed value copied from one tenant to another (by
// whoever can write the file or Redis) does not open as the other's.
func TestSealedMoved(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			kr := testRing(t, "k1")
			s := open(kr, slog.New(slog.DiscardHandler))
			for _, id := range []string{"t1", "t2"} {
				if _, err := s.Create(ctx, Tenant{ID: id, DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:pw-" + id + "@db/" + id}}); err != nil {
					t.Fatal(err)
				}
			}
			// Copy t2's sealed URL over t1's.
			var sealed1, sealed2 string
			for _, f := range strings.FieldsFunc(raw(), func(r rune) bool { return r == '"' || r == '\\' }) {
				if keyring.IsSealed(f) {
					if sealed1 == "" {
						sealed1 = f
					} else if sealed2 == "" {
						sealed2 = f
					}
				}
			}
			if sealed1 == "" || sealed2 == "" {
				t.Fatalf("no two sealed values at rest:\n%s", raw())
			}
			var logs testenv.LogBuffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			switch b.name {
			case "file":
				path := s.(*File).Path()
				data := strings.Replace(mustRead(t, path), sealed1, sealed2, 1)
				if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			case "redis":
				r := s.(*Redis)
				c := rawRedis(t, testenv.RedisURL(t))
				rec, err := c.HGet(ctx, r.keys.tenants, "t1").Result()
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(rec, sealed1) {
					sealed1, sealed2 = sealed2, sealed1
				}
				if err := c.HSet(ctx, r.keys.tenants, "t1", strings.Replace(rec, sealed1, sealed2, 1)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			other := open(kr, log)
			ts := mustList(t, other)
			if len(ts) != 2 || !ts[0].IsSealed() || ts[1].IsSealed() || !strings.Contains(ts[1].PostgresURL(), "pw-t2") {
				t.Fatalf("List after moving t2's value to t1 = %v; want t1 unusable, t2 as it was", ts)
			}
			if l := logs.String(); !strings.Contains(l, "fails authentication") || !strings.Contains(l, `tenant \"t1\"`) || strings.Contains(l, "pw-t") {
				t.Fatalf("log does not say t1 fails authentication, or shows a password:\n%s", l)
			}
			// Writing t1 again makes it usable: the fix for an operator.
			if _, err := other.Update(ctx, Tenant{ID: "t1", DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:pw-new@db/t1"}}); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, open(kr, log), "t1"); got.PostgresURL() != "postgres://app:pw-new@db/t1" {
				t.Fatalf("t1 after writing it again = %s", got)
			}
		})
	}
}

// TestSealedFollower: a Redis follower that meets a record it cannot open
// keeps following the others.
func TestSealedFollower(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
	writer := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "k1", "k2")))
	reader := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "k2")), WithRedisLogger(slog.New(slog.DiscardHandler)))
	f := startFollow(t, reader)
	if _, err := writer.Create(ctx, newTenant("a", "a")); err != nil { // sealed with k1
		t.Fatal(err)
	}
	writer2 := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "k2")))
	if _, err := writer2.Create(ctx, newTenant("b", "b")); err != nil { // sealed with k2
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the follower applies both tenants", func() bool {
		a, okA := f.get("a")
		b, okB := f.get("b")
		return okA && okB && a.IsSealed() && b.PostgresURL() == dbInfo("b")[KeyPostgresURL]
	})
}

func (f *follow) get(id string) (Tenant, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tr.Get(id)
}

// TestSealedLoggedOnce: a process without the key logs the tenants it
// cannot open in one line per read, not one per tenant.
func TestSealedLoggedOnce(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			open, _ := b.setup(t)
			w := open(testRing(t, "k1"), slog.New(slog.DiscardHandler))
			for _, id := range []string{"a", "b", "c"} {
				if _, err := w.Create(context.Background(), newTenant(id, id)); err != nil {
					t.Fatal(err)
				}
			}
			var logs testenv.LogBuffer
			mustList(t, open(nil, slog.New(slog.NewJSONHandler(&logs, nil))))
			recs := logs.Records(t)
			if len(recs) != 1 || recs[0]["tenants"] != float64(3) {
				t.Fatalf("want one log line for 3 tenants, got %v", recs)
			}
		})
	}
}

// TestFileKeepsCiphertext: a file store rewrites the whole file at each
// write, but seals again only what changed: the other tenants keep their
// ciphertext, in the process that wrote them and in one that read them.
// A value sealed with a key that is no longer the primary is sealed again.
func TestFileKeepsCiphertext(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenants.json")
	open := func(kr *keyring.Keyring) *File {
		s, err := OpenFile(ctx, path, WithFileCreate(true), WithFilePollInterval(0), WithFileKeys(kr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	sealedOf := func(id string) string {
		t.Helper()
		var doc fileDoc
		if err := json.Unmarshal([]byte(mustRead(t, path)), &doc); err != nil {
			t.Fatal(err)
		}
		v := doc.Tenants[id].DeployInfo[KeyPostgresURL]
		if !keyring.IsSealed(v) {
			t.Fatalf("%s's URL at rest is %q, want it sealed", id, v)
		}
		return v
	}
	k1 := testRing(t, "k1")
	w := open(k1)
	for _, id := range []string{"a", "b"} {
		if _, err := w.Create(ctx, newTenant(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := sealedOf("a"), sealedOf("b")
	if _, err := w.Update(ctx, newTenant("b", "b2")); err != nil {
		t.Fatal(err)
	}
	if got := sealedOf("a"); got != a {
		t.Fatalf("updating b sealed a again:\n%s\nwas\n%s", got, a)
	}
	if got := sealedOf("b"); got == b {
		t.Fatal("b's new URL has its old ciphertext")
	}
	// Another process, which read the file.
	if _, err := open(k1).Update(ctx, newTenant("b", "b3")); err != nil {
		t.Fatal(err)
	}
	if got := sealedOf("a"); got != a {
		t.Fatal("a write by another process sealed a again")
	}
	// Rotated: a write seals a with the new primary.
	if _, err := open(testRing(t, "k2", "k1")).Update(ctx, newTenant("b", "b4")); err != nil {
		t.Fatal(err)
	}
	if got := sealedOf("a"); !strings.HasPrefix(got, keyring.Prefix+"k2:") {
		t.Fatalf("after rotation a is %s, want it sealed with k2", got)
	}
	if got := mustGet(t, open(testRing(t, "k2")), "a"); got.PostgresURL() != dbInfo("a")[KeyPostgresURL] {
		t.Fatalf("a = %s", got)
	}
}

// putInClear writes value in clear as deploy_info[key] of tenant id, by
// hand, as someone who can write the file or Redis but has no key would.
func putInClear(t *testing.T, s Store, id, key, value string) {
	t.Helper()
	ctx := context.Background()
	switch s := s.(type) {
	case *File:
		var doc fileDoc
		if err := json.Unmarshal([]byte(mustRead(t, s.Path())), &doc); err != nil {
			t.Fatal(err)
		}
		ft := doc.Tenants[id]
		if ft.DeployInfo == nil {
			ft.DeployInfo = make(map[string]string)
		}
		ft.DeployInfo[key] = value
		doc.Tenants[id] = ft
		data, _ := json.Marshal(doc)
		if err := os.WriteFile(s.Path(), data, 0o600); err != nil {
			t.Fatal(err)
		}
	case *Redis:
		tn := Tenant{ID: id, Version: 1, DeployInfo: map[string]string{}}
		if raw, err := s.c.HGet(ctx, s.keys.tenants, id).Result(); err == nil {
			if tn, err = decodeRecord(id, raw); err != nil {
				t.Fatal(err)
			}
		}
		tn.DeployInfo[key] = value
		rec, err := encodeRecord(tn)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.c.HSet(ctx, s.keys.tenants, id, rec).Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("putInClear: %T", s)
	}
}

// TestSealedURLWithoutPassword: a URL is sealed by the rule of its form,
// not by whether it holds a password: a keyed writer seals a URL without
// one, and a sealed store refuses one put in clear by hand, which would
// otherwise send the tenant's connections (their password taken from
// PGPASSWORD or .pgpass) to whoever wrote it.
func TestSealedURLWithoutPassword(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			kr := testRing(t, "k1")
			quiet := slog.New(slog.DiscardHandler)
			s := open(kr, quiet)
			info := map[string]string{
				KeyPostgresURL: "postgres://app@db.internal:5432/one",
				"HOOK_URL":     "https://hooks.internal/one",
				"REGION":       "eu-west",
			}
			if _, err := s.Create(ctx, Tenant{ID: "t1", DeployInfo: info}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Create(ctx, newTenant("t2", "two")); err != nil {
				t.Fatal(err)
			}
			noSecrets(t, "after create", raw(), "app@db.internal", "hooks.internal")
			if got := mustGet(t, open(kr, quiet), "t1"); got.PostgresURL() != info[KeyPostgresURL] || got.DeployInfo["HOOK_URL"] != info["HOOK_URL"] {
				t.Fatalf("t1 = %v, want the plaintext back", got.DeployInfo)
			}
			if _, err := s.(Rekeyer).Rekey(ctx); err != nil { // marks Redis as sealed all through
				t.Fatal(err)
			}

			for _, field := range []string{KeyPostgresURL, "HOOK_URL"} {
				putInClear(t, s, "t1", field, "postgres://u@evil.example/db")
				_, err := refusedByFresh(t, s, open, kr, quiet, "t1")
				var pe *PlaintextError
				if !errors.Is(err, ErrPlaintext) || !errors.As(err, &pe) || pe.Tenant != "t1" || pe.Field != field {
					t.Fatalf("%s without a password in clear: %v; want a *PlaintextError for t1's %s", field, err, field)
				}
				if strings.Contains(err.Error(), "evil.example") {
					t.Fatalf("the error shows the value: %v", err)
				}
				putInClear(t, s, "t1", field, info[field]) // as the next round expects
			}
		})
	}
}

// refusedByFresh opens a new process on the store s is on, with keys, and
// returns what it answers for tenant id.
func refusedByFresh(t *testing.T, s Store, open func(*keyring.Keyring, *slog.Logger, ...bool) Store, kr *keyring.Keyring, log *slog.Logger, id string) (Tenant, error) {
	t.Helper()
	if f, ok := s.(*File); ok {
		fresh, err := OpenFile(context.Background(), f.Path(), WithFilePollInterval(0), WithFileKeys(kr), WithFileLogger(log))
		if err != nil {
			return Tenant{}, err
		}
		defer fresh.Close()
		return fresh.Get(context.Background(), id)
	}
	return open(kr, log).Get(context.Background(), id)
}

// TestFileRekeysRefused: a process that refuses a tenant of its file (a
// secret in clear among sealed ones) seals it when it rekeys, and serves
// it from then.
func TestFileRekeysRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenants.json")
	kr := testRing(t, "k1")
	quiet := WithFileLogger(slog.New(slog.DiscardHandler))
	w, err := OpenFile(ctx, path, WithFileCreate(true), WithFilePollInterval(0), WithFileKeys(kr), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Create(ctx, newTenant("t1", "one")); err != nil {
		t.Fatal(err)
	}
	const byHand = "postgres://app@db.internal/t2"
	putInClear(t, w, "t2", KeyPostgresURL, byHand)
	s, err := OpenFile(ctx, path, WithFilePollInterval(0), WithFileKeys(kr), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, "t2"); !errors.Is(err, ErrPlaintext) {
		t.Fatalf("Get(t2) = %v, want ErrPlaintext", err)
	}
	res, err := s.Rekey(ctx)
	if err != nil || res.Sealed != 1 || res.Tenants != 2 {
		t.Fatalf("Rekey = %v, %v; want t2 sealed", res, err)
	}
	noSecrets(t, "after rekey", mustRead(t, path), "app@db.internal")
	if got := mustGet(t, s, "t2"); got.PostgresURL() != byHand {
		t.Fatalf("t2 after rekey = %s", got)
	}
}
