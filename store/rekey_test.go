package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/keyring"
)

// TestRekey: plaintext written before keys were configured, values sealed
// with an old key, and values sealed with a key nobody has, in one store;
// rekey seals the first two with the primary and leaves the third.
// A rekey cut short leaves such a mix too (each tenant is rewritten on its
// own, atomically), so the second run here is the rerun that finishes.
func TestRekey(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			quiet := slog.New(slog.DiscardHandler)
			// Each tenant as a process with those keys wrote it (a file
			// store rewrites the whole file, so they are put at rest one
			// by one, as a Redis store writes them).
			s := open(nil, quiet)
			for _, tc := range []struct {
				id string
				kr *keyring.Keyring
			}{{"plain", nil}, {"old", testRing(t, "old")}, {"lost", testRing(t, "lost")}, {"new", testRing(t, "new")}} {
				putRaw(t, s, tc.kr, Tenant{ID: tc.id, Version: 1, DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:pw-" + tc.id + "@db/" + tc.id, "REGION": "eu"}})
			}
			s.Close()

			// Secrets in clear among sealed ones: only rekey reads them
			// in a file.
			s = open(testRing(t, "new", "old"), quiet, true)
			before := mustList(t, s)
			res, err := s.(Rekeyer).Rekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tenants != 4 || res.Sealed != 2 || res.Unchanged != 1 || res.Deleted != 0 || len(res.Failed) != 1 || res.KeyID != "new" {
				t.Fatalf("Rekey = %v %v, want 4 tenants, 2 sealed again, 1 already, 1 failed", res, res.Failed)
			}
			var oe *keyring.OpenError
			if !errors.As(res.Failed[0], &oe) || oe.Tenant != "lost" || oe.KeyID != "lost" || !errors.Is(oe, keyring.ErrUnknownKey) {
				t.Fatalf("Failed = %v, want tenant lost, key lost, unknown", res.Failed)
			}
			after := raw()
			noSecrets(t, "after rekey", after, "pw-plain", "pw-old", "pw-new")
			if strings.Contains(after, "enc:v1:old:") || !strings.Contains(after, "enc:v1:lost:") {
				t.Fatalf("after rekey want nothing sealed with old, lost left as it was:\n%s", after)
			}
			// The tenants are what they were, at the same versions.
			if got := mustList(t, open(testRing(t, "new", "lost"), quiet)); len(got) != 4 {
				t.Fatalf("List = %v", got)
			} else {
				for i, tn := range got {
					if tn.ID == "lost" {
						continue
					}
					if !sameTenant(tn, before[i]) {
						t.Fatalf("after rekey %s, before %s", tn, before[i])
					}
				}
			}

			res, err = s.(Rekeyer).Rekey(ctx)
			if err != nil || res.Sealed != 0 || res.Unchanged != 3 || len(res.Failed) != 1 {
				t.Fatalf("second Rekey = %v, %v; want nothing left to do", res, err)
			}
			if _, err := open(nil, quiet).(Rekeyer).Rekey(ctx); err == nil {
				t.Fatal("Rekey without keys: no error")
			}
		})
	}
}

// TestRekeyRedisMalformedAndDeleted: a record that does not decode is
// reported with its tenant and rekey goes on with the others; a tenant
// deleted between the listing and its rewrite is counted as deleted, not
// as sealed already.
func TestRekeyRedisMalformedAndDeleted(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
	old := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "old")))
	for _, id := range []string{"a", "b", "gone", "z"} {
		if _, err := old.Create(ctx, newTenant(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	c := rawRedis(t, url)
	k := newRedisKeys(prefix)
	const broken = `{"deploy_info": {"POSTGRES_URL": "postgres://app:pw-broken@db/b"`
	if err := c.HSet(ctx, k.tenants, "b", broken).Err(); err != nil {
		t.Fatal(err)
	}
	testHookRekeyListed = func([]string) {
		if err := c.HDel(ctx, k.tenants, "gone").Err(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookRekeyListed = nil })

	r := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "new", "old")), WithRedisLogger(slog.New(slog.DiscardHandler)))
	res, err := r.Rekey(ctx)
	if err != nil {
		t.Fatalf("Rekey: %v; want the malformed record reported, not the run stopped", err)
	}
	if res.Tenants != 4 || res.Sealed != 2 || res.Unchanged != 0 || res.Deleted != 1 || len(res.Failed) != 1 {
		t.Fatalf("Rekey = %v %v; want 4 tenants: 2 sealed again, 1 deleted meanwhile, 1 failed", res, res.Failed)
	}
	if msg := res.Failed[0].Error(); !strings.Contains(msg, `tenant "b"`) || !strings.Contains(msg, "malformed record") || strings.Contains(msg, "pw-broken") {
		t.Fatalf("Failed[0] = %s; want tenant b named, malformed, no password", msg)
	}
	all, err := c.HGetAll(ctx, k.tenants).Result()
	if err != nil {
		t.Fatal(err)
	}
	if all["b"] != broken || !strings.Contains(all["a"], "enc:v1:new:") || !strings.Contains(all["z"], "enc:v1:new:") {
		t.Fatalf("after rekey: %v; want a and z sealed with new, b as it was", all)
	}
}

// TestRekeyConcurrentWrites: two processes rekey, again and again, while
// a third, not yet rotated (its primary is still the old key), updates
// every tenant. No update is undone, and a last rekey leaves everything
// sealed with the new primary.
func TestRekeyConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
	const n, rounds = 40, 8
	writer := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "old", "new")))
	for i := range n {
		if _, err := writer.Create(ctx, newTenant(fmt.Sprintf("t%02d", i), "db")); err != nil {
			t.Fatal(err)
		}
	}
	keys := testRing(t, "new", "old")
	rekeyers := []*Redis{openRedis(t, url, prefix, WithRedisKeys(keys)), openRedis(t, url, prefix, WithRedisKeys(keys))}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for round := range rounds {
			for i := range n {
				id := fmt.Sprintf("t%02d", i)
				if _, err := writer.Update(ctx, Tenant{ID: id, DeployInfo: map[string]string{KeyPostgresURL: fmt.Sprintf("postgres://app:pw-%s-%d@db/x", id, round)}}); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	sealed := make([]int, len(rekeyers))
	for i, r := range rekeyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				res, err := r.Rekey(ctx)
				if err != nil {
					errs <- err
					return
				}
				sealed[i] += res.Sealed
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("sealed again while writes went on: %v", sealed)
	// The writer sealed its last writes with the old key: a rerun seals
	// them, and one more finds nothing to do.
	if _, err := rekeyers[0].Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := rekeyers[1].Rekey(ctx)
	if err != nil || res.Sealed != 0 || len(res.Failed) != 0 || res.Tenants != n {
		t.Fatalf("rerun = %v, %v; want %d tenants and nothing left", res, err, n)
	}
	c := rawRedis(t, url)
	all, err := c.HGetAll(ctx, newRedisKeys(prefix).tenants).Result()
	if err != nil {
		t.Fatal(err)
	}
	for id, rec := range all {
		if strings.Contains(rec, "enc:v1:old:") || strings.Contains(rec, "pw-") || !strings.Contains(rec, "enc:v1:new:") {
			t.Fatalf("%s at rest: %s; want sealed with new only", id, rec)
		}
	}
	onlyNew := openRedis(t, url, prefix, WithRedisKeys(testRing(t, "new")))
	for _, tn := range mustList(t, onlyNew) {
		if want := fmt.Sprintf("postgres://app:pw-%s-%d@db/x", tn.ID, rounds-1); tn.PostgresURL() != want || tn.Version != rounds+1 {
			t.Fatalf("%s: %s at version %d, want %s at version %d: a write was undone", tn.ID, tn.PostgresURL(), tn.Version, want, rounds+1)
		}
	}
}

// TestRekeyScriptStale: the rekey of a record read before another
// process wrote it writes nothing, so that the write is not undone.
func TestRekeyScriptStale(t *testing.T) {
	ctx := context.Background()
	r := openRedis(t, testenv.RedisURL(t), "", WithRedisKeys(testRing(t, "new")))
	if _, err := r.Create(ctx, newTenant("a", "one")); err != nil {
		t.Fatal(err)
	}
	stale, err := r.c.HGet(ctx, r.keys.tenants, "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, newTenant("a", "two")); err != nil {
		t.Fatal(err)
	}
	fresh, _ := r.c.HGet(ctx, r.keys.tenants, "a").Result()
	n, err := r.run(ctx, rekeyScript, "a", stale, stale).Int64()
	if err != nil || scriptResult(n) != scriptChanged {
		t.Fatalf("rekey of a stale record: %d, %v; want scriptChanged", n, err)
	}
	if now, _ := r.c.HGet(ctx, r.keys.tenants, "a").Result(); now != fresh {
		t.Fatalf("the stale rekey changed the record")
	}
}

// putRaw writes tenant tn where store s keeps it at rest, its secrets
// sealed with kr, leaving the other tenants as they are.
func putRaw(t *testing.T, s Store, kr *keyring.Keyring, tn Tenant) {
	t.Helper()
	info, err := sealInfo(kr, tn.ID, tn.DeployInfo)
	if err != nil {
		t.Fatal(err)
	}
	switch s := s.(type) {
	case *File:
		doc := fileDoc{Tenants: map[string]fileTenant{}}
		if data, err := os.ReadFile(s.Path()); err == nil {
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
		}
		doc.Tenants[tn.ID] = fileTenant{DeployInfo: info, Version: tn.Version}
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Path(), data, 0o600); err != nil {
			t.Fatal(err)
		}
	case *Redis:
		rec, err := encodeRecord(Tenant{ID: tn.ID, Version: tn.Version, DeployInfo: info})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.c.HSet(context.Background(), s.keys.tenants, tn.ID, rec).Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("putRaw: %T", s)
	}
}

// brokenProvider is a key provider that cannot hand out its primary key:
// a KMS that cannot be reached, or one that answers with a short key.
type brokenProvider struct{ short bool }

var errProviderDown = errors.New("kms unreachable")

func (p brokenProvider) PrimaryKey() (keyring.Key, error) {
	if p.short {
		return keyring.Key{ID: "k1", Secret: []byte("short")}, nil
	}
	return keyring.Key{}, errProviderDown
}

func (p brokenProvider) Key(id string) (keyring.Key, error) { return p.PrimaryKey() }

// TestRekeyBrokenProvider: a rekey whose primary key cannot be had fails
// before it marks the store as sealed, so that processes without keys go
// on writing.
func TestRekeyBrokenProvider(t *testing.T) {
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			ctx := context.Background()
			url, prefix := testenv.RedisURL(t), testenv.RedisPrefix(t)
			none := openRedis(t, url, prefix)
			if _, err := none.Create(ctx, newTenant("t1", "one")); err != nil {
				t.Fatal(err)
			}
			broken := openRedis(t, url, prefix, WithRedisKeys(keyring.New(brokenProvider{short: short})))
			res, err := broken.Rekey(ctx)
			if err == nil {
				t.Fatalf("Rekey with a broken key provider = %v, want an error", res)
			}
			if !short && !errors.Is(err, errProviderDown) {
				t.Fatalf("Rekey: %v, want the provider's error", err)
			}
			if n, err := rawRedis(t, url).Exists(ctx, newRedisKeys(prefix).sealed).Result(); err != nil || n != 0 {
				t.Fatalf("the sealed key exists (%d, %v) after a rekey that could not seal", n, err)
			}
			if _, err := none.Create(ctx, newTenant("t2", "two")); err != nil {
				t.Fatalf("a process without keys cannot write after a failed rekey: %v", err)
			}
		})
	}
}

// TestRekeyOpensEvery: rekey opens every record, those sealed with the
// primary too, so that one altered at rest is reported rather than
// counted as done; a tenant it cannot open has its secrets in clear
// sealed all the same, and its sealed values kept as they are.
func TestRekeyOpensEvery(t *testing.T) {
	for _, b := range sealedBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			open, raw := b.setup(t)
			quiet := slog.New(slog.DiscardHandler)
			k1, lost := testRing(t, "k1"), testRing(t, "lost")
			seal := func(kr *keyring.Keyring, id, v string) string {
				s, err := kr.Seal(id, KeyPostgresURL, v)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			// One bit of the ciphertext flipped, not a character of its
			// text: the last character of unpadded base64 carries bits
			// the decoder drops, so changing it may change nothing.
			sealed := seal(k1, "altered", "postgres://app:pw-altered@db/x")
			i := strings.LastIndex(sealed, ":") + 1
			ct, err := base64.RawURLEncoding.DecodeString(sealed[i:])
			if err != nil {
				t.Fatalf("a sealed value's ciphertext is not unpadded URL base64: %v", err)
			}
			ct[len(ct)/2] ^= 1
			tampered := sealed[:i] + base64.RawURLEncoding.EncodeToString(ct)
			s := open(nil, quiet)
			putRaw(t, s, nil, Tenant{ID: "altered", Version: 1, DeployInfo: map[string]string{KeyPostgresURL: tampered}})
			putRaw(t, s, nil, Tenant{ID: "lost", Version: 1, DeployInfo: map[string]string{
				KeyPostgresURL: seal(lost, "lost", "postgres://app:pw-lost@db/lost"), "API_TOKEN": "tok-in-clear"}})
			putRaw(t, s, k1, Tenant{ID: "ok", Version: 1, DeployInfo: dbInfo("ok")})
			s.Close()
			before := raw()

			res, err := open(k1, quiet, true).(Rekeyer).Rekey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tenants != 3 || res.Unchanged != 1 || res.Sealed != 0 || len(res.Failed) != 2 {
				t.Fatalf("Rekey = %v %v; want 3 tenants: 1 unchanged, 2 failed", res, res.Failed)
			}
			failed := map[string]error{}
			for _, err := range res.Failed {
				var oe *keyring.OpenError
				if !errors.As(err, &oe) {
					t.Fatalf("Failed holds %v, want *keyring.OpenError values", err)
				}
				failed[oe.Tenant] = oe
			}
			if !errors.Is(failed["altered"], keyring.ErrTampered) || !errors.Is(failed["lost"], keyring.ErrUnknownKey) {
				t.Fatalf("Failed = %v; want altered tampered, lost unknown", res.Failed)
			}
			after := raw()
			noSecrets(t, "after rekey", after, "tok-in-clear")
			if !strings.Contains(after, tampered) || !strings.Contains(before, "enc:v1:lost:") || !strings.Contains(after, "enc:v1:lost:") {
				t.Fatalf("after rekey want the values that cannot be opened kept as they were:\n%s", after)
			}
			got := mustGet(t, open(testRing(t, "k1", "lost"), quiet), "lost")
			if got.DeployInfo["API_TOKEN"] != "tok-in-clear" || got.PostgresURL() != "postgres://app:pw-lost@db/lost" {
				t.Fatalf("lost after rekey = %v", got.DeployInfo)
			}
		})
	}
}
