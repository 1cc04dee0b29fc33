package api

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

func TestCreate(t *testing.T) {
	good := pgURL("10.0.0.1:5432/one?sslmode=disable")
	withURL := func(u string) string { return createBody("t1.test", u) }
	tests := []struct {
		name    string
		body    string
		header  map[string]string
		want    int
		wantErr string // a part of the error message
	}{
		{name: "created", body: withURL(good), want: 201},
		{name: "other deploy info kept", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": "` + good + `", "REGION": "eu"}}`, want: 201},
		{name: "field order free", body: `{"deploy_info": {"POSTGRES_URL": "` + good + `"}, "tenant_id": "t1.test"}`, want: 201},

		// Content types.
		{name: "no content type", body: withURL(good), header: map[string]string{"Content-Type": ""}, want: 415, wantErr: "missing Content-Type: send the header Content-Type: application/json"},
		{name: "json with charset", body: withURL(good), header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}, want: 201},
		{name: "text", body: withURL(good), header: map[string]string{"Content-Type": "text/plain"}, want: 415, wantErr: "application/json"},
		{name: "form", body: withURL(good), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: 415, wantErr: "application/json"},
		{name: "other charset", body: withURL(good), header: map[string]string{"Content-Type": "application/json; charset=latin1"}, want: 415, wantErr: "utf-8"},
		{name: "malformed content type", body: withURL(good), header: map[string]string{"Content-Type": "application/json; ="}, want: 415, wantErr: "Content-Type"},

		// Malformed bodies.
		{name: "empty", body: "", want: 400, wantErr: "request body is empty"},
		{name: "blank", body: " \n\t ", want: 400, wantErr: "request body is empty"},
		{name: "syntax", body: `{"tenant_id": }`, want: 400, wantErr: "not valid JSON: invalid character '}' looking for beginning of value (line 1, column 15)"},
		{name: "syntax on line 3", body: "{\n  \"tenant_id\": \"t1.test\",\n  \"deploy_info\" {}\n}", want: 400, wantErr: "(line 3, column 17)"},
		{name: "truncated", body: `{"tenant_id": "t1.test"`, want: 400, wantErr: "ends before its JSON object does"},
		{name: "truncated string", body: `{"tenant_id": "t1.te`, want: 400, wantErr: "ends before"},
		{name: "trailing object", body: withURL(good) + ` {}`, want: 400, wantErr: "unexpected data after the JSON object (line 1, column"},
		{name: "trailing brace", body: withURL(good) + `}`, want: 400, wantErr: "unexpected data after the JSON object"},
		{name: "trailing garbage", body: withURL(good) + "\nx", want: 400, wantErr: "unexpected data after the JSON object (line 2, column 1)"},
		{name: "array", body: `[]`, want: 400, wantErr: "must be a JSON object, got an array"},
		{name: "null", body: `null`, want: 400, wantErr: "must be a JSON object, got null"},
		{name: "string", body: `"t1.test"`, want: 400, wantErr: "must be a JSON object, got a string"},
		{name: "bom", body: "\ufeff" + withURL(good), want: 400, wantErr: "not valid JSON"},
		{name: "unknown field", body: `{"tenant_id": "t1.test", "should_migrate": true, "deploy_info": {}}`, want: 400, wantErr: `unknown field "should_migrate" (known fields: tenant_id, deploy_info`},
		{name: "field case", body: `{"TENANT_ID": "t1.test", "deploy_info": {"POSTGRES_URL": "` + good + `"}}`, want: 400, wantErr: `unknown field "TENANT_ID"`},
		{name: "version on create", body: `{"tenant_id": "t1.test", "version": 3, "deploy_info": {"POSTGRES_URL": "` + good + `"}}`, want: 400, wantErr: `unknown field "version"`},
		{name: "field twice", body: `{"tenant_id": "t1.test", "tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "` + good + `"}}`, want: 400, wantErr: `field "tenant_id" given twice (line 1, column 26)`},
		{name: "deploy key twice", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": "` + good + `", "POSTGRES_URL": "x"}}`, want: 400, wantErr: `field "deploy_info.POSTGRES_URL" given twice`},
		{name: "id not a string", body: `{"tenant_id": 12, "deploy_info": {}}`, want: 400, wantErr: `field "tenant_id" must be a string, got a number (line 1, column 15)`},
		{name: "id null", body: `{"tenant_id": null}`, want: 400, wantErr: `field "tenant_id" must be a string, got null`},
		{name: "deploy info a string", body: `{"tenant_id": "t1.test", "deploy_info": "` + good + `"}`, want: 400, wantErr: `field "deploy_info" must be an object of strings, got a string`},
		{name: "deploy value a number", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": 5432}}`, want: 400, wantErr: `field "deploy_info.POSTGRES_URL" must be a string, got a number`},
		{name: "deploy value an object", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": {"host": "db"}}}`, want: 400, wantErr: `must be a string, got an object`},
		{name: "deeply nested", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, want: 400, wantErr: "got an array"},
		{name: "deeply nested value of unknown field", body: `{"x": ` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat("}", 5000) + `}`, want: 400, wantErr: `unknown field "x"`},

		// Ids.
		{name: "missing id", body: `{"deploy_info": {"POSTGRES_URL": "` + good + `"}}`, want: 400, wantErr: `missing field "tenant_id"`},
		{name: "empty id", body: createBody("", good), want: 400, wantErr: "invalid tenant_id: must not be empty"},
		{name: "uppercase id", body: createBody("T1.test", good), want: 400, wantErr: `invalid tenant_id "T1.test": must start with a lowercase letter or digit`},
		{name: "uppercase inside id", body: createBody("t1.Test", good), want: 400, wantErr: `character 'T' at byte 3`},
		{name: "long id", body: createBody(strings.Repeat("a", 129), good), want: 400, wantErr: "longer than 128 bytes"},
		{name: "longest id", body: createBody(strings.Repeat("a", 128), good), want: 201},
		{name: "id with slash", body: createBody("a/b", good), want: 400, wantErr: "invalid tenant_id"},
		{name: "unicode id", body: createBody("tenänt", good), want: 400, wantErr: "invalid tenant_id"},
		{name: "id starting with a dot", body: createBody(".t1", good), want: 400, wantErr: "invalid tenant_id"},

		// Deploy info and its URL.
		{name: "missing deploy info", body: `{"tenant_id": "t1.test"}`, want: 400, wantErr: `missing field "deploy_info"`},
		{name: "empty deploy info", body: `{"tenant_id": "t1.test", "deploy_info": {}}`, want: 400, wantErr: "invalid deploy_info: must hold POSTGRES_URL"},
		{name: "no POSTGRES_URL", body: `{"tenant_id": "t1.test", "deploy_info": {"REGION": "eu"}}`, want: 400, wantErr: "invalid deploy_info.POSTGRES_URL: is missing"},
		{name: "empty URL", body: withURL(""), want: 400, wantErr: "invalid deploy_info.POSTGRES_URL: is missing"},
		{name: "bad deploy key", body: `{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": "` + good + `", "bad key": "x"}}`, want: 400, wantErr: "invalid deploy_info"},
		{name: "not postgres", body: withURL("mysql://app:" + secret + "@db/one"), want: 400, wantErr: `invalid deploy_info.POSTGRES_URL "mysql://app:xxxxx@db/one": scheme must be postgres://`},
		{name: "not a URL", body: withURL("host=db password=" + secret), want: 400, wantErr: "scheme must be postgres://"},
		{name: "uppercase scheme", body: withURL("POSTGRES://app:" + secret + "@10.0.0.1/one"), want: 400, wantErr: "postgres:// or postgresql://"}, // refused by the store or by the API, whichever checks first
		{name: "postgresql scheme", body: withURL("postgresql://app:" + secret + "@10.0.0.1/one"), want: 201},
		{name: "bad escape", body: withURL("postgres://app:" + secret + "%zz@10.0.0.1/one"), want: 400, wantErr: "invalid deploy_info.POSTGRES_URL"},
		{name: "bad port", body: withURL(pgURL("10.0.0.1:99999/one")), want: 400, wantErr: "pgx cannot use it: invalid port"},
		{name: "bad pgx option", body: withURL(pgURL("10.0.0.1/one?target_session_attrs=bogus")), want: 400, wantErr: "pgx cannot use it: unknown target_session_attrs value: bogus"},
		{name: "bad password escape for pgx", body: withURL("postgres://app:" + secret + "%00@10.0.0.1/one"), want: 400, wantErr: "invalid deploy_info.POSTGRES_URL"},
		{name: "raw @ in password", body: withURL("postgres://app:" + secret + "@x@10.0.0.1/one"), want: 400, wantErr: "percent-encode"},
		{name: "raw ? in password", body: withURL("postgres://app:1234?" + secret + "@10.0.0.1/one"), want: 400, wantErr: "percent-encode"},
		{name: "raw # in password", body: withURL("postgres://app:" + secret + "#x@10.0.0.1/one"), want: 400, wantErr: "percent-encode"},
		{name: "fragment with a password", body: withURL("postgres://app@10.0.0.1/one?a=b#&password=" + secret), want: 400, wantErr: "raw '#'"},
		{name: "fragment with a file option", body: withURL(pgURL("10.0.0.1/one?a=b#&sslkey=/etc/passwd")), want: 400, wantErr: "raw '#'"},
		{name: "encoded # in database name", body: withURL(pgURL("10.0.0.1/one%23two")), want: 201},
		{name: "encoded @ in password", body: withURL("postgres://app:" + secret + "%40x@10.0.0.1/one"), want: 201},
		{name: "password in a parameter", body: withURL("postgres://app@10.0.0.1/one?password=" + secret), want: 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			w := e.do(request{method: "POST", path: "/tenant/", body: tt.body, header: tt.header})
			if w.Code != tt.want {
				t.Fatalf("status %d %s, want %d", w.Code, w.Body, tt.want)
			}
			t.Logf("%d %s", w.Code, errorOf(t, w))
			if got := errorOf(t, w); !strings.Contains(got, tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", got, tt.wantErr)
			}
			list := mustList(t, e.s)
			if (tt.want == 201) != (len(list) == 1) {
				t.Errorf("store holds %d tenants after status %d", len(list), w.Code)
			}
		})
	}
}

func TestCreateAnswer(t *testing.T) {
	e := newEnv(t, nil)
	body := createBody("tenant-2.test.com", pgURL("10.0.0.1/two"))
	w := e.do(request{method: "POST", path: "/tenant", body: body})
	if w.Code != 201 || strings.TrimSpace(w.Body.String()) != `{"tenant_id":"tenant-2.test.com","lifecycle_event":"tenant_create","version":1}` {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	got, err := e.s.Get(context.Background(), "tenant-2.test.com")
	if err != nil || got.PostgresURL() != pgURL("10.0.0.1/two") {
		t.Fatalf("stored %v, %v", got, err)
	}
	w = e.do(request{method: "POST", path: "/tenant/", body: body})
	if w.Code != http.StatusConflict || !strings.Contains(errorOf(t, w), `tenant "tenant-2.test.com" already exists`) {
		t.Errorf("second POST: %d %s, want 409", w.Code, w.Body)
	}
}

func TestFileOptionsRefused(t *testing.T) {
	var urls []string
	for _, k := range []string{"sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir", "passfile", "servicefile", "service", "sslkeylogfile"} {
		urls = append(urls,
			pgURL("10.0.0.1/one?"+k+"=/etc/passwd"),
			pgURL("10.0.0.1/one?sslmode=require&"+strings.ToUpper(k)+"=/etc/passwd"),
		)
	}
	urls = append(urls,
		pgURL("10.0.0.1/one?%73slkey=/etc/passwd"),           // percent-encoded key
		pgURL("10.0.0.1/one?%20sslkey%20=/etc/passwd"),       // spaces pgx trims
		pgURL("10.0.0.1/one?a=b;sslkey=/etc/passwd"),         // net/url's other separator
		pgURL("10.0.0.1?service=x"),                          // no database
		"postgres://app@10.0.0.1/one?passfile=/root/.pgpass", // no password
	)
	for _, u := range urls {
		e := newEnv(t, nil)
		w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t1.test", u)})
		if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), "reads a file on the server") {
			t.Errorf("POST with %s: %d %s, want 400 naming the file option", u, w.Code, w.Body)
		}
		mustCreate(t, e.s, "t2.test", pgURL("10.0.0.1/two"))
		w = e.do(request{method: "PUT", path: "/tenant/t2.test/", body: `{"deploy_info": {"POSTGRES_URL": "` + u + `"}}`})
		if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w), "reads a file on the server") {
			t.Errorf("PUT with %s: %d %s, want 400 naming the file option", u, w.Code, w.Body)
		}
	}
}

func TestUpdate(t *testing.T) {
	newURL := pgURL("10.0.0.2/uno")
	di := `"deploy_info": {"POSTGRES_URL": "` + newURL + `"}`
	tests := []struct {
		name        string
		path, body  string
		want        int
		wantErr     string
		wantVersion int64 // of the tenant afterwards
	}{
		{name: "updated", path: "/tenant/t1.test/", body: `{` + di + `}`, want: 200, wantVersion: 3},
		{name: "without slash", path: "/tenant/t1.test", body: `{` + di + `}`, want: 200, wantVersion: 3},
		{name: "same id in body", path: "/tenant/t1.test/", body: `{"tenant_id": "t1.test", ` + di + `}`, want: 200, wantVersion: 3},
		{name: "current version", path: "/tenant/t1.test/", body: `{"version": 2, ` + di + `}`, want: 200, wantVersion: 3},
		{name: "version zero is unconditional", path: "/tenant/t1.test/", body: `{"version": 0, ` + di + `}`, want: 200, wantVersion: 3},
		{name: "stale version", path: "/tenant/t1.test/", body: `{"version": 1, ` + di + `}`, want: 409, wantErr: "update of version 1, current is 2", wantVersion: 2},
		{name: "future version", path: "/tenant/t1.test/", body: `{"version": 7, ` + di + `}`, want: 409, wantErr: "version conflict", wantVersion: 2},
		{name: "other id in body", path: "/tenant/t1.test/", body: `{"tenant_id": "t2.test", ` + di + `}`, want: 400, wantErr: `tenant_id "t2.test" in the body differs from "t1.test" in the path`, wantVersion: 2},
		{name: "unknown tenant", path: "/tenant/t9.test/", body: `{` + di + `}`, want: 404, wantErr: `tenant "t9.test" not found`, wantVersion: 2},
		{name: "uppercase path id", path: "/tenant/T1.test/", body: `{` + di + `}`, want: 400, wantErr: "invalid tenant_id", wantVersion: 2},
		{name: "long path id", path: "/tenant/" + strings.Repeat("a", 129) + "/", body: `{` + di + `}`, want: 400, wantErr: "longer than 128 bytes", wantVersion: 2},
		{name: "negative version", path: "/tenant/t1.test/", body: `{"version": -1, ` + di + `}`, want: 400, wantErr: `field "version" must be a whole number`, wantVersion: 2},
		{name: "fractional version", path: "/tenant/t1.test/", body: `{"version": 1.5, ` + di + `}`, want: 400, wantErr: `field "version" must be a whole number`, wantVersion: 2},
		{name: "huge version", path: "/tenant/t1.test/", body: `{"version": 1e999, ` + di + `}`, want: 400, wantErr: `field "version" must be a whole number`, wantVersion: 2},
		{name: "long version", path: "/tenant/t1.test/", body: `{"version": ` + strings.Repeat("9", 400) + `, ` + di + `}`, want: 400, wantErr: `field "version" must be a whole number`, wantVersion: 2},
		{name: "version a string", path: "/tenant/t1.test/", body: `{"version": "2", ` + di + `}`, want: 400, wantErr: `field "version" must be a number, got a string`, wantVersion: 2},
		{name: "missing deploy info", path: "/tenant/t1.test/", body: `{"version": 2}`, want: 400, wantErr: `missing field "deploy_info"`, wantVersion: 2},
		{name: "empty body", path: "/tenant/t1.test/", body: ``, want: 400, wantErr: "request body is empty", wantVersion: 2},
		{name: "unknown field", path: "/tenant/t1.test/", body: `{"should_migrate": true, ` + di + `}`, want: 400, wantErr: `unknown field "should_migrate" (known fields: tenant_id, deploy_info, version`, wantVersion: 2},
		{name: "bad URL", path: "/tenant/t1.test/", body: `{"deploy_info": {"POSTGRES_URL": "http://x"}}`, want: 400, wantErr: "scheme must be postgres://", wantVersion: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tn := mustCreate(t, e.s, "t1.test", pgURL("10.0.0.1/one"))
			tn.DeployInfo[store.KeyPostgresURL] = pgURL("10.0.0.1/one-b")
			if _, err := e.s.Update(context.Background(), tn); err != nil {
				t.Fatal(err)
			}
			w := e.do(request{method: "PUT", path: tt.path, body: tt.body})
			if w.Code != tt.want {
				t.Fatalf("status %d %s, want %d", w.Code, w.Body, tt.want)
			}
			t.Logf("%d %s", w.Code, errorOf(t, w))
			if got := errorOf(t, w); !strings.Contains(got, tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", got, tt.wantErr)
			}
			if w.Code == 200 {
				want := `{"tenant_id":"t1.test","lifecycle_event":"tenant_update","version":3}`
				if got := strings.TrimSpace(w.Body.String()); got != want {
					t.Errorf("answer %s, want %s", got, want)
				}
			}
			got, err := e.s.Get(context.Background(), "t1.test")
			if err != nil || got.Version != tt.wantVersion {
				t.Errorf("tenant afterwards: %v, %v; want version %d", got, err, tt.wantVersion)
			}
			if (got.PostgresURL() == newURL) != (tt.want == 200) {
				t.Errorf("tenant URL afterwards: %s", got)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	mustCreate(t, e.s, "t1.test", pgURL("10.0.0.1/one"))
	w := e.do(request{method: "DELETE", path: "/tenant/t1.test/"})
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"tenant_id":"t1.test","lifecycle_event":"tenant_delete"}` {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if _, err := e.s.Get(context.Background(), "t1.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after DELETE: %v", err)
	}
	for _, c := range []struct {
		path    string
		want    int
		wantErr string
	}{
		{"/tenant/t1.test", 404, `tenant "t1.test" not found`},
		{"/tenant/never.test/", 404, `tenant "never.test" not found`},
		{"/tenant/T1.test/", 400, "invalid tenant_id"},
		{"/tenant/-x/", 400, "invalid tenant_id"},
	} {
		w := e.do(request{method: "DELETE", path: c.path})
		if w.Code != c.want || !strings.Contains(errorOf(t, w), c.wantErr) {
			t.Errorf("DELETE %s: %d %s, want %d %q", c.path, w.Code, w.Body, c.want, c.wantErr)
		}
	}
}

func TestListAndGetAreRedacted(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do(request{method: "GET", path: "/tenant/"})
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"tenants":[]}` {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}
	ctx := context.Background()
	for _, tn := range []store.Tenant{
		{ID: "b.test", DeployInfo: map[string]string{store.KeyPostgresURL: pgURL("10.0.0.1/b?sslpassword=" + secret)}},
		{ID: "a.test", DeployInfo: map[string]string{store.KeyPostgresURL: pgURL("10.0.0.1/a"), "API_TOKEN": secret, "REGION": "eu", "REPLICA": pgURL("10.0.0.3/a")}},
		// URLs that pgx and net/url read differently cannot be stored at
		// all (store.Validate); the store's tests cover their redaction.
	} {
		if _, err := e.s.Create(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	w = e.do(request{method: "GET", path: "/tenant"})
	var list struct{ Tenants []store.Tenant }
	decode(t, w, &list)
	if w.Code != 200 || len(list.Tenants) != 2 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	want := []store.Tenant{
		{ID: "a.test", Version: 1, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:xxxxx@10.0.0.1/a", "API_TOKEN": "xxxxx", "REGION": "eu", "REPLICA": "postgres://app:xxxxx@10.0.0.3/a"}},
		{ID: "b.test", Version: 1, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:xxxxx@10.0.0.1/b?sslpassword=xxxxx"}},
	}
	for i, got := range list.Tenants {
		if got.ID != want[i].ID || got.Version != 1 || got.CreatedAt.IsZero() || !equalMaps(got.DeployInfo, want[i].DeployInfo) {
			t.Errorf("tenant %d: %+v, want %+v", i, got, want[i])
		}
	}
	w = e.do(request{method: "GET", path: "/tenant/a.test/"})
	var one store.Tenant
	decode(t, w, &one)
	if w.Code != 200 || one.ID != "a.test" || !equalMaps(one.DeployInfo, want[0].DeployInfo) {
		t.Errorf("GET a.test: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		path string
		want int
	}{{"/tenant/z.test/", 404}, {"/tenant/Z.test/", 400}, {"/tenant/" + strings.Repeat("z", 200), 400}} {
		if w := e.do(request{method: "GET", path: c.path}); w.Code != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, w.Code, c.want)
		}
	}
}

func equalMaps(a, b map[string]string) bool { return maps.Equal(a, b) }

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, nil, WithMaxBodyBytes(200))
	mustCreate(t, e.s, "t1.test", pgURL("10.0.0.1/one"))
	big := createBody("t2.test", pgURL("10.0.0.1/"+strings.Repeat("x", 200)))
	for _, req := range []request{
		{method: "POST", path: "/tenant/", body: big},
		{method: "PUT", path: "/tenant/t1.test/", body: big},
	} {
		w := e.do(req)
		if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(errorOf(t, w), "larger than 200 bytes") {
			t.Errorf("%s %s with %d bytes: %d %s, want 413", req.method, req.path, len(big), w.Code, w.Body)
		}
	}
	// Just under the limit is fine.
	small := createBody("t3.test", pgURL("10.0.0.1/x"))
	if w := e.do(request{method: "POST", path: "/tenant/", body: small}); w.Code != 201 {
		t.Errorf("POST with %d bytes: %d %s", len(small), w.Code, w.Body)
	}
	// The default is 64 KiB.
	e = newEnv(t, nil)
	huge := `{"tenant_id": "t1.test", "deploy_info": {"X": "` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}}`
	if w := e.do(request{method: "POST", path: "/tenant/", body: huge}); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of %d bytes by default: %d, want 413", len(huge), w.Code)
	}
}

func TestStoreFailures(t *testing.T) {
	failing := failingStore{store.NewMemory()}
	closed := store.NewMemory()
	mustCreate(t, closed, "t1.test", pgURL("10.0.0.1/one"))
	closed.Close()
	put := `{"deploy_info": {"POSTGRES_URL": "` + pgURL("10.0.0.1/one") + `"}}`
	for name, s := range map[string]store.Store{"failing": failing, "closed": closed} {
		e := newEnv(t, s)
		for _, req := range []request{
			{method: "GET", path: "/tenant/"},
			{method: "GET", path: "/tenant/t1.test/"},
			{method: "POST", path: "/tenant/", body: createBody("t2.test", pgURL("10.0.0.1/two"))},
			{method: "PUT", path: "/tenant/t1.test/", body: put},
			{method: "DELETE", path: "/tenant/t1.test/"},
			{method: "GET", path: "/health-check/"},
		} {
			w := e.do(req)
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("%s store, %s %s: %d %s, want 503", name, req.method, req.path, w.Code, w.Body)
			}
			if strings.Contains(w.Body.String(), "10.9.8.7") || strings.Contains(w.Body.String(), "closed") {
				t.Errorf("%s store, %s %s: answer shows the cause: %s", name, req.method, req.path, w.Body)
			}
		}
		// The cause is in the log for the operator.
		want := "10.9.8.7"
		if name == "closed" {
			want = "store closed"
		}
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("%s store: log lacks the cause %q:\n%s", name, want, e.logs)
		}
	}
}

func TestFileStoreWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenFile(context.Background(), filepath.Join(dir, "tenants.json"), store.WithFileCreate(true), store.WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := newEnv(t, s)
	if w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t1.test", pgURL("10.0.0.1/one"))}); w.Code != 201 {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	// Writes need the directory, even as root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w := e.do(request{method: "POST", path: "/tenant/", body: createBody("t2.test", pgURL("10.0.0.1/two"))})
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), dir) {
		t.Errorf("POST after the directory went: %d %s, want 503 without the path", w.Code, w.Body)
	}
	recs := e.logs.records(t, "tenant create")
	if len(recs) != 2 || recs[1]["outcome"] != "failed" || recs[1]["status"] != float64(503) {
		t.Errorf("audit records: %v", recs)
	}
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t, nil)
	steps := []request{
		{method: "POST", path: "/tenant/", body: createBody("t1.test", pgURL("10.0.0.1/one"))},
		{method: "POST", path: "/tenant/", body: createBody("t1.test", pgURL("10.0.0.1/one"))},
		{method: "PUT", path: "/tenant/t1.test/", body: `{"version": 1, "deploy_info": {"POSTGRES_URL": "` + pgURL("10.0.0.2/one") + `"}}`},
		{method: "PUT", path: "/tenant/t1.test/", body: `{"deploy_info": {"POSTGRES_URL": "` + pgURL("10.0.0.2/one?sslkey=/etc/x") + `"}}`},
		{method: "DELETE", path: "/tenant/t1.test/"},
		{method: "DELETE", path: "/tenant/t1.test/"},
		{method: "GET", path: "/tenant/"}, // reads are not audited
	}
	for _, req := range steps {
		e.do(req)
	}
	want := []struct {
		msg, outcome string
		status       float64
		extra        map[string]any
	}{
		{"tenant create", "ok", 201, map[string]any{"version": float64(1), "postgres_url": "postgres://app:xxxxx@10.0.0.1/one"}},
		{"tenant create", "refused", 409, map[string]any{"error": `tenant "t1.test" already exists; use PUT /tenant/t1.test/ to change it`}},
		{"tenant update", "ok", 200, map[string]any{"version": float64(2), "postgres_url": "postgres://app:xxxxx@10.0.0.2/one"}},
		{"tenant update", "refused", 400, nil},
		{"tenant delete", "ok", 200, nil},
		{"tenant delete", "refused", 404, nil},
	}
	recs := e.logs.records(t, "tenant ")
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(recs), len(want), e.logs)
	}
	for i, rec := range recs {
		w := want[i]
		if !strings.HasSuffix(rec["msg"].(string), w.msg) || rec["level"] != "INFO" || rec["tenant"] != "t1.test" ||
			rec["remote_addr"] != "192.0.2.1:1234" || rec["outcome"] != w.outcome || rec["status"] != w.status {
			t.Errorf("record %d: %v, want %s %s %v", i, rec, w.msg, w.outcome, w.status)
		}
		for k, v := range w.extra {
			if rec[k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, rec[k], v)
			}
		}
	}
}
