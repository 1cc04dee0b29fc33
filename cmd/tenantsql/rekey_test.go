package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

func testKey(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// TestRekeyCommand turns encryption on for a store written in clear,
// rotates its key, and checks the file at each step.
func TestRekeyCommand(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var storeURL string
			var raw func() string
			switch backend {
			case "file":
				f := newFixture(t, tenantA, tenantB)
				storeURL, raw = f.url, func() string {
					b, err := os.ReadFile(f.path)
					if err != nil {
						t.Fatal(err)
					}
					return string(b)
				}
			case "redis":
				storeURL = testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
				raw = rawRedisStore(t, storeURL)
				for _, tn := range []store.Tenant{tenantA, tenantB} {
					if r := runCLI(t, map[string]string{"TENANTSQL_STORE": storeURL}, "", append([]string{"tenants", "add", tn.ID, tn.PostgresURL()}, kvs(tn)...)...); r.code != exitOK {
						t.Fatal(r)
					}
				}
			}
			k1, k2, k3 := testKey("k1", 1), testKey("k2", 2), testKey("k3", 3)
			env := func(keys string) map[string]string {
				return map[string]string{"TENANTSQL_STORE": storeURL, "TENANTSQL_KEYS": keys}
			}
			steps := []struct {
				name   string
				keys   string
				args   []string
				code   int
				stdout []string
				stderr []string
				check  func(raw string) bool
			}{
				{"no keys", "", []string{"tenants", "rekey"}, exitError, nil, []string{"set TENANTSQL_KEYS"}, nil},
				{"turn encryption on", k1, []string{"tenants", "rekey"}, exitOK, []string{`2 tenants: 2 sealed again with key "k1"`}, nil,
					func(raw string) bool {
						return !strings.Contains(raw, "hunter2") && !strings.Contains(raw, "s3cret") && strings.Contains(raw, "gold")
					}},
				{"rerun", k1, []string{"tenants", "rekey"}, exitOK, []string{"0 sealed again", "2 already were"}, nil, nil},
				{"rotate", k2 + "," + k1, []string{"tenants", "rekey"}, exitOK, []string{`2 sealed again with key "k2"`}, nil,
					func(raw string) bool {
						return !strings.Contains(raw, "enc:v1:k1:") && strings.Contains(raw, "enc:v1:k2:")
					}},
				{"load a copy of the sealed store", k2, []string{"tenants", "load", "$COPY"}, exitOK, nil, []string{"0 created, 0 updated, 2 unchanged"}, nil},
				{"list with the new key alone", k2, []string{"tenants", "list"}, exitOK, []string{shownA, "API_TOKEN=xxxxx"}, nil, nil},
				{"list without keys", "", []string{"tenants", "list"}, exitOK, []string{"enc:v1:k2:xxxxx"}, nil, nil},
				{"write without keys", "", []string{"tenants", "add", "tenant-c.test", urlNew}, exitError, nil, []string{"TENANTSQL_KEYS"},
					func(raw string) bool { return !strings.Contains(raw, "tenant-c.test") }},
				{"rekey with an unknown key", k3, []string{"tenants", "rekey"}, exitError, []string{"2 could not be opened"}, []string{`tenant "tenant-a.test"`, `key "k2"`}, nil},
				{"bad keys", "k1:short", []string{"tenants", "list"}, exitError, nil, []string{"TENANTSQL_KEYS", "entry 1", "not base64"}, nil},
			}
			for _, st := range steps {
				args := slices.Clone(st.args)
				if i := slices.Index(args, "$COPY"); i >= 0 {
					copyPath := filepath.Join(t.TempDir(), "copy.json")
					if err := os.WriteFile(copyPath, []byte(sealedCopy(t, backend, raw())), 0o600); err != nil {
						t.Fatal(err)
					}
					args[i] = copyPath
				}
				r := runCLI(t, env(st.keys), "", args...)
				if r.code != st.code {
					t.Fatalf("%s: tenantsql %s: exit code %d, want %d\n%v", st.name, strings.Join(st.args, " "), r.code, st.code, r)
				}
				for _, s := range st.stdout {
					if !strings.Contains(r.stdout, s) {
						t.Errorf("%s: stdout does not contain %q\n%v", st.name, s, r)
					}
				}
				for _, s := range st.stderr {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("%s: stderr does not contain %q\n%v", st.name, s, r)
					}
				}
				if st.check != nil && !st.check(raw()) {
					t.Fatalf("%s: at rest:\n%s", st.name, raw())
				}
				if strings.Contains(r.stderr, k1[3:]) || strings.Contains(r.stdout, k1[3:]) {
					t.Fatalf("%s: a key was printed\n%v", st.name, r)
				}
			}
		})
	}
}

func kvs(tn store.Tenant) []string {
	var out []string
	for k, v := range tn.DeployInfo {
		if k != store.KeyPostgresURL {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// rawRedisStore returns a function that reads what the store at storeURL
// holds in Redis, its tenants hash and its event stream, with a plain
// client.
func rawRedisStore(t *testing.T, storeURL string) func() string {
	u, err := url.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	prefix := u.Query().Get("prefix")
	u.RawQuery = ""
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return func() string {
		ctx := context.Background()
		var b strings.Builder
		all, err := c.HGetAll(ctx, "{"+prefix+"}:tenants").Result()
		if err != nil {
			t.Fatal(err)
		}
		for id, rec := range all {
			fmt.Fprintf(&b, "%s=%s\n", id, rec)
		}
		entries, err := c.XRange(ctx, "{"+prefix+"}:events", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fmt.Fprintf(&b, "%v\n", e.Values)
		}
		return b.String()
	}
}

// sealedCopy returns a tenant file holding what the store holds at rest,
// sealed: the file itself, or the records of the Redis hash (which hold
// the fields of the file's tenants), as a backup of either would.
func sealedCopy(t *testing.T, backend, raw string) string {
	if backend == "file" {
		return raw
	}
	var b strings.Builder
	b.WriteString(`{"tenants": {`)
	n := 0
	for line := range strings.Lines(raw) {
		id, rec, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasPrefix(rec, "{") {
			continue
		}
		var r struct {
			DeployInfo map[string]string `json:"deploy_info"`
		}
		if err := json.Unmarshal([]byte(rec), &r); err != nil {
			t.Fatal(err)
		}
		info, _ := json.Marshal(r.DeployInfo)
		if n > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q: {\"deploy_info\": %s}", id, info)
		n++
	}
	b.WriteString("}}")
	return b.String()
}

// TestRekeyCommandHandEdit: a tenant added in clear, by hand, to a file
// whose secrets are sealed is refused by every command but rekey, which
// seals it; the other tenants are listed, and written, all the same.
func TestRekeyCommandHandEdit(t *testing.T) {
	f := newFixture(t, tenantA, tenantB)
	env := map[string]string{"TENANTSQL_STORE": f.url, "TENANTSQL_KEYS": testKey("k1", 1)}
	if r := runCLI(t, env, "", "tenants", "rekey"); r.code != exitOK {
		t.Fatal(r)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	const hand = "postgres://app:by-hand-pw@db.internal:5432/c"
	doc["tenants"].(map[string]any)["tenant-c.test"] = map[string]any{"deploy_info": map[string]string{"POSTGRES_URL": hand}}
	if data, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "", "tenants", "list")
	if r.code != exitOK || strings.Contains(r.stdout, "tenant-c.test") || !strings.Contains(r.stdout, "tenant-a.test") || strings.Contains(r.stderr+r.stdout, "by-hand-pw") {
		t.Fatalf("list of a sealed file with a tenant in clear: want the others listed, tenant-c.test left out, no password\n%v", r)
	}
	r = runCLI(t, env, "", "tenants", "get", "tenant-c.test")
	if r.code != exitError || !strings.Contains(r.stderr, `tenant "tenant-c.test"`) || !strings.Contains(r.stderr, "tenants rekey") || strings.Contains(r.stderr+r.stdout, "by-hand-pw") {
		t.Fatalf("get of a tenant in clear in a sealed file: want it refused, naming tenant-c.test and rekey, without the password\n%v", r)
	}
	if r := runCLI(t, env, "", "tenants", "rekey"); r.code != exitOK || !strings.Contains(r.stdout, "1 sealed again") {
		t.Fatalf("rekey: want tenant-c.test sealed\n%v", r)
	}
	if data, _ := os.ReadFile(f.path); strings.Contains(string(data), "by-hand-pw") {
		t.Fatalf("after rekey the password is in clear:\n%s", data)
	}
	if r := runCLI(t, env, "", "tenants", "get", "tenant-c.test"); r.code != exitOK || !strings.Contains(r.stdout, "db.internal:5432/c") {
		t.Fatalf("get after rekey\n%v", r)
	}
}
