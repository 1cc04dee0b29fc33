package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

// fuzzSecret is the password the seeds use. An answer must never show it
// when it is, unambiguously, the password of the URL sent.
const fuzzSecret = "Fz9Secret"

var fuzzSeeds = []string{
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@10.0.0.1:5432/two"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@db.internal/two", "REGION": "eu"}}`,
	`{"tenant_id": "t1.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@10.0.0.1/one"}, "version": 1}`,
	`{"tenant_id": "t2.test", "should_migrate": true, "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/two"}}`,
	`{"deploy_info": {"POSTGRES_URL": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}`,
	`{"x": ` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat("}", 200) + `}`,
	`{"version": 1e999999, "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/x"}}`,
	`{"version": -9223372036854775809, "deploy_info": {}}`,
	`{"version": 9223372036854775807, "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/x"}}`,
	"{\"tenant_id\": \"t\xff\xfe.test\", \"deploy_info\": {\"POSTGRES_URL\": \"postgres://app:\xff@10.0.0.1/x\"}}",
	`{"tenant_id": "Tenänt/../x", "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/x"}}`,
	`{"tenant_id": "a..b", "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/x"}}`,
	`{"tenant_id": "\u0000", "deploy_info": {"POSTGRES_URL": "postgres://10.0.0.1/x"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@10.0.0.1/two?sslkey=/etc/shadow"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@10.0.0.1/two?a=b#&SERVICEFILE=/x&service=y"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@x@10.0.0.1/two"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@10.0.0.1,127.0.0.1:1/two?host=/tmp"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app:` + fuzzSecret + `@[::1]:99999/two?target_session_attrs=x"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "POSTGRES://app:` + fuzzSecret + `@10.0.0.1/two sslkey=/x"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app@10.0.0.1/two?password=` + fuzzSecret + `&sslpassword=%zz"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app@10.0.0.1/two?a=b#&password=` + fuzzSecret + `"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app@10.0.0.1/two?pass%77ord=` + fuzzSecret + `"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app@10.0.0.1:99999/two?sslmode=disable&PASS%57ORD=` + fuzzSecret + `"}}`,
	`{"tenant_id": "t2.test", "deploy_info": {"POSTGRES_URL": "postgres://app@10.0.0.1/two?a=1;%70assword=` + fuzzSecret + ` x"}}`,
	`{"tenant_id": "0", "deploy_info": {"POSTGRES_URL": "postgres:/pass%77ord=` + fuzzSecret + `"}}`,
	`{"tenant_id": "t2.test"} {}`,
	`[1, 2, 3]`,
	``,
	`null`,
	`{"tenant_id": "t2.test", "tenant_id": "t3.test"}`,
}

// fuzzHandler is a handler with an allow-list that needs no DNS.
func fuzzHandler(t *testing.T) http.Handler {
	mem := store.NewMemory()
	mustCreate(t, mem, "t1.test", pgURL("10.0.0.1/one"))
	h, err := New(mem, WithToken(testToken), WithLogger(discard()), WithMaxBodyBytes(8<<10),
		withLookup(fakeDNS(map[string][]string{"db.internal": {"10.0.0.5"}, "localhost": {"127.0.0.1"}})),
		WithAllowedHosts("10.0.0.0/8", "::1"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func FuzzCreateTenant(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := fuzzHandler(t)
		r := httptest.NewRequest("POST", "/tenant/", strings.NewReader(string(body)))
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", "application/json")
		checkFuzzAnswer(t, body, recordServe(h, r))
		checkFuzzAnswer(t, body, listAll(h))
	})
}

func FuzzUpdateTenant(f *testing.F) {
	ids := []string{"t1.test", "T1.test", "t1.test/x", "a..b", "ténant", "", ".", "..", strings.Repeat("a", 129), "t1.test?x=1", "%2F"}
	for i, s := range fuzzSeeds {
		f.Add(ids[i%len(ids)], []byte(s))
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		r := httptest.NewRequest("PUT", "/", strings.NewReader(string(body)))
		r.URL.Path = "/tenant/" + id + "/" // as the server unescaped it
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", "application/json")
		h := fuzzHandler(t)
		w := recordServe(h, r)
		checkFuzzAnswer(t, body, w)
		checkFuzzAnswer(t, body, listAll(h))
		if w.Code == http.StatusOK && id != "t1.test" {
			t.Errorf("PUT of tenant %q succeeded; only t1.test exists", id)
		}
	})
}

// listAll answers GET /tenant/, where what was stored is shown.
func listAll(h http.Handler) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/tenant/", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	return recordServe(h, r)
}

func checkFuzzAnswer(t *testing.T, body []byte, w *httptest.ResponseRecorder) {
	t.Helper()
	// A memory store never fails, so nothing is the server's fault.
	if w.Code >= 500 {
		t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
	}
	var ans map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatalf("answer is not JSON: %q", w.Body)
	}
	if msg, _ := ans["error"].(string); w.Code >= 400 && msg == "" {
		t.Fatalf("status %d without an error message: %s", w.Code, w.Body)
	}
	if passwordOnly(body) && strings.Contains(w.Body.String(), fuzzSecret) {
		t.Fatalf("answer shows the password of %q: %s", body, w.Body)
	}
}

// passwordOnly reports whether fuzzSecret appears in body once, and there
// as part of the password of POSTGRES_URL. Elsewhere (in a host, a
// database name, an id) an answer may rightly echo it.
func passwordOnly(body []byte) bool {
	var v struct {
		DeployInfo map[string]string `json:"deploy_info"`
	}
	if json.Unmarshal(body, &v) != nil || strings.Count(string(body), fuzzSecret) != 1 {
		return false
	}
	var all any
	json.Unmarshal(body, &all)
	if countIn(all) != 1 {
		return false // also spelt with escapes somewhere
	}
	raw := v.DeployInfo[store.KeyPostgresURL]
	if before, _, ok := strings.Cut(raw, fuzzSecret); ok {
		// A password parameter, its key escaped or not: pgx decodes keys.
		key, isValue := strings.CutSuffix(before, "=")
		key = key[strings.LastIndexAny(key, "?&;#")+1:]
		if name, err := url.QueryUnescape(key); isValue && err == nil && strings.HasSuffix(strings.ToLower(name), "password") {
			return true
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	pw, _ := u.User.Password()
	return strings.Contains(pw, fuzzSecret)
}

// countIn counts fuzzSecret in the keys and strings of a decoded value.
func countIn(v any) int {
	switch v := v.(type) {
	case string:
		return strings.Count(v, fuzzSecret)
	case []any:
		n := 0
		for _, x := range v {
			n += countIn(x)
		}
		return n
	case map[string]any:
		n := 0
		for k, x := range v {
			n += strings.Count(k, fuzzSecret) + countIn(x)
		}
		return n
	}
	return 0
}

// TestFuzzSeeds makes sure the leak check is not vacuous: it applies to
// the seeds that carry the password.
func TestFuzzSeeds(t *testing.T) {
	n := 0
	for _, s := range fuzzSeeds {
		if passwordOnly([]byte(s)) {
			n++
		}
	}
	if n < 14 {
		t.Errorf("only %d seeds are checked for leaks", n)
	}
}
