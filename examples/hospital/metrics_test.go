package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// sample is one line of the Prometheus text format: a series and its
// value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape fetches s's /metrics, without a token, and parses it.
func (s *server) scrape() (string, []sample) {
	s.t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET /metrics: reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		s.t.Fatalf("GET /metrics: %d %s, want 200 text/plain:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			s.t.Fatalf("GET /metrics: a line that is not Prometheus text format: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			s.t.Fatalf("GET /metrics: value of %q: %v", line, err)
		}
		smp := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			smp.labels[l[1]] = l[2]
		}
		out = append(out, smp)
	}
	return string(raw), out
}

// sum adds the values of the samples named name whose labels include
// want's.
func sum(samples []sample, name string, want map[string]string) (total float64, n int) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		n++
	}
	return total, n
}

// serverSessions counts the test server's sessions of application_name
// app: all of them, and those not idle (running a statement, or in a
// transaction).
func serverSessions(t *testing.T, app string) (all, busy int) {
	t.Helper()
	err := testenv.Admin(t).QueryRow(`SELECT count(*), count(*) FILTER (WHERE state IS DISTINCT FROM 'idle')
		FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&all, &busy)
	if err != nil {
		t.Fatal(err)
	}
	return all, busy
}

// The example's /metrics under a known load of two tenants, checked
// against what the server itself counts: the sessions open (in use and
// idle) are pg_stat_activity's for the example's application_name, the
// statements' histogram grows by at least the queries sent, the budget is
// --max-conns; and the text names no tenant and no password.
func TestMetricsAgainstTheServer(t *testing.T) {
	testenv.PostgresURL(t)
	app := testenv.Unique("hosp_metrics")
	dbs := []string{testenv.Unique("tsql_hosp_met1"), testenv.Unique("tsql_hosp_met2")}
	tenants := map[string]string{
		"tenant-m1.test.com": testenv.DatabaseURL(t, dbs[0], "application_name", app),
		"tenant-m2.test.com": testenv.DatabaseURL(t, dbs[1], "application_name", app),
	}
	const budget = 7
	s := start(t, writeConfig(t, tenants), "--max-conns", strconv.Itoa(budget))
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pool := u.Host // how Stats, and so the metrics, name the server
	if u.Port() == "" {
		pool = net.JoinHostPort(u.Hostname(), "5432")
	}
	onPool := map[string]string{"db_client_connection_pool_name": pool}

	_, before := s.scrape()
	statementsBefore, _ := sum(before, "db_client_operation_duration_seconds_count", onPool)

	// K requests per tenant, a statement each (and a few concurrently, so
	// that more than one session may open).
	const K = 25
	var wg sync.WaitGroup
	for id := range tenants {
		for range 4 {
			wg.Go(func() {
				for range K / 4 {
					if code, body := s.do("GET", "/hospital/", id, nil, false); code != http.StatusOK {
						t.Errorf("GET /hospital/ for %s: %d %v", id, code, body)
					}
				}
			})
		}
		for range K - 4*(K/4) {
			if code, body := s.do("GET", "/hospital/", id, nil, false); code != http.StatusOK {
				t.Fatalf("GET /hospital/ for %s: %d %v", id, code, body)
			}
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	raw, after := s.scrape()
	statementsAfter, series := sum(after, "db_client_operation_duration_seconds_count", onPool)
	if series == 0 {
		t.Fatalf("no db_client_operation_duration_seconds_count series for pool %s in:\n%s", pool, raw)
	}
	if got := statementsAfter - statementsBefore; got < 2*K {
		t.Errorf("db_client_operation_duration_seconds_count grew by %v over %d SELECTs", got, 2*K)
	}
	for _, db := range dbs {
		if selects, _ := sum(after, "db_client_operation_duration_seconds_count", map[string]string{"db_namespace": db, "db_operation_name": "SELECT"}); selects < K {
			t.Errorf("db_client_operation_duration_seconds_count{db_namespace=%q, SELECT} = %v, want at least %d", db, selects, K)
		}
	}
	if got, n := sum(after, "db_client_connection_max", onPool); n != 1 || got != budget {
		t.Errorf("db_client_connection_max for %s: %v in %d series, want %d (--max-conns) in one", pool, got, n, budget)
	}

	// The sessions: the example's own are those with its
	// application_name (the test server has others'). A session may
	// close (or a hook's open) between the scrape and the count, so
	// compare until both sides agree twice in a row around one scrape;
	// the deadline only catches a metric that never matches.
	var last string
	testenv.Eventually(t, 30*time.Second, "the scraped sessions to match pg_stat_activity", func() bool {
		all0, busy0 := serverSessions(t, app)
		_, now := s.scrape()
		used, _ := sum(now, "db_client_connection_count", map[string]string{"db_client_connection_pool_name": pool, "db_client_connection_state": "used"})
		idle, _ := sum(now, "db_client_connection_count", map[string]string{"db_client_connection_pool_name": pool, "db_client_connection_state": "idle"})
		all1, busy1 := serverSessions(t, app)
		last = fmt.Sprintf("scraped used %v, idle %v; pg_stat_activity %d sessions, %d not idle (then %d, %d)", used, idle, all0, busy0, all1, busy1)
		return all0 == all1 && busy0 == busy1 && all0 > 0 &&
			int(used+idle) == all0 && int(used) == busy0
	})
	t.Log(last)
	if all, _ := serverSessions(t, app); all > budget {
		t.Errorf("the server has %d sessions of the example, over its budget of %d", all, budget)
	}

	// Nothing secret, and no tenant (not an attribute by default).
	secrets := []string{token}
	if pw, ok := u.User.Password(); ok && pw != "" {
		secrets = append(secrets, ":"+pw+"@")
	}
	for id, tu := range tenants {
		secrets = append(secrets, id, tu)
	}
	for _, sec := range secrets {
		if strings.Contains(raw, sec) {
			t.Errorf("/metrics shows %q", sec)
		}
	}
}

// otlpCollector is a minimal OTLP/HTTP receiver: it keeps the metrics
// exports that arrive.
type otlpCollector struct {
	mu       sync.Mutex
	requests []*colmetrics.ExportMetricsServiceRequest
	errs     []string
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		c.errs = append(c.errs, fmt.Sprintf("%s %s (%s), want POST /v1/metrics (application/x-protobuf)", r.Method, r.URL.Path, r.Header.Get("Content-Type")))
		http.Error(w, "unexpected", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.errs = append(c.errs, "gzip: "+err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	req := &colmetrics.ExportMetricsServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(raw, req)
	}
	if err != nil {
		c.errs = append(c.errs, "body: "+err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.requests = append(c.requests, req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
	w.Write(out)
}

// budgetExported returns the db.client.connection.max value an export
// carried, if one did.
func (c *otlpCollector) budgetExported() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.requests {
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					if m.GetName() != "db.client.connection.max" {
						continue
					}
					for _, dp := range m.GetSum().GetDataPoints() {
						return dp.GetAsInt(), true
					}
				}
			}
		}
	}
	return 0, false
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the example pushes its metrics
// over OTLP/HTTP: a real exporter, to a real HTTP server, whose protobuf
// body decodes and carries the budget given.
func TestOTLPExport(t *testing.T) {
	testenv.PostgresURL(t)
	c := &otlpCollector{}
	col := httptest.NewServer(c)
	defer col.Close()
	db := testenv.Unique("tsql_hosp_met1")
	s := startWith(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.URL, "OTEL_METRIC_EXPORT_INTERVAL=200"},
		"--store", writeConfig(t, map[string]string{"tenant-o.test.com": tenantURL(t, db)}),
		"--addr", "127.0.0.1:0", "--max-conns", "9")
	if code, body := s.do("GET", "/hospital/", "tenant-o.test.com", nil, false); code != http.StatusOK {
		t.Fatalf("GET /hospital/: %d %v", code, body)
	}
	testenv.Eventually(t, 30*time.Second, "an OTLP export with db.client.connection.max", func() bool {
		_, ok := c.budgetExported()
		return ok
	})
	if v, _ := c.budgetExported(); v != 9 {
		t.Errorf("exported db.client.connection.max = %d, want 9 (--max-conns)", v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Errorf("collector: %s", e)
	}
}

// An OTLP protocol the example does not speak stops it at start, with a
// message that says what to set; without any OTLP variable it starts
// (and TestMetricsAgainstTheServer scrapes it).
func TestOTLPProtocolRefused(t *testing.T) {
	testenv.PostgresURL(t)
	for _, env := range [][]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://127.0.0.1:1/v1/metrics", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/json"},
	} {
		t.Run(env[1], func(t *testing.T) {
			// The deadline only catches an example that starts anyway
			// and serves.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, build(t), "--store", writeConfig(t, map[string]string{}), "--addr", "127.0.0.1:0")
			cmd.Env = append(append(cmd.Environ(), "TENANTSQL_ADMIN_TOKEN="+token), env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the example started with %s:\n%s", env, out)
			}
			name, _, _ := strings.Cut(env[1], "=")
			if !strings.Contains(string(out), name) || !strings.Contains(string(out), "http/protobuf") {
				t.Errorf("the error does not name %s and what to set it to:\n%s", name, out)
			}
		})
	}
}

// The exporters are the example's dependencies: a program that imports
// the library's driver or telemetry package does not compile them.
func TestExportersStayInTheExample(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./driver", "./telemetry")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./driver ./telemetry: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "prometheus") || strings.Contains(pkg, "otlp") {
			t.Errorf("the library imports %s: keep the exporters in examples/hospital", pkg)
		}
	}
}
