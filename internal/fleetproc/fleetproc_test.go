package fleetproc_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/fleetproc"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

func TestMain(m *testing.M) {
	fleetproc.Main()
	os.Exit(m.Run())
}

// A child answers from its tenants' databases, as the server says, and
// its counts reach the parent; the sampler sees its sessions; killed, it
// is gone and its counts stay.
func TestChild(t *testing.T) {
	testenv.EnsureDatabases(t, "tsql_t_0", "tsql_t_1")
	ctx := context.Background()
	storeURL := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
	s, err := store.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var tenants []fleetproc.Tenant
	for i, db := range []string{"tsql_t_0", "tsql_t_1"} {
		tn := fleetproc.Tenant{ID: "fpt-" + string(rune('a'+i)), DB: db}
		tenants = append(tenants, tn)
		if _, err := s.Create(ctx, store.Tenant{ID: tn.ID, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, db)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The child's sessions are named fptc/TENANT, so the server can
	// count them apart from other tests'.
	name := "fptc" + strings.TrimPrefix(testenv.RedisPrefix(t), "tsqltest-")[:6]
	peak, err := fleetproc.SamplePeak(ctx, testenv.PostgresURL(t), name+"/%")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peak.Stop() })
	p, err := fleetproc.Start(fleetproc.Config{Name: name, StoreURL: storeURL, Budget: 2, Tenants: tenants}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	if err := p.Load(2); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor("100 answers", func(c fleetproc.Counts) bool { return c.OK >= 100 || c.Wrong+c.Errors+c.TooMany > 0 }, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c := p.Counts(); c.Wrong+c.Errors+c.TooMany != 0 || c.Open < 1 {
		t.Fatalf("child: %v, %d sessions open; want right answers only, on a session at least", c, c.Open)
	}
	if n, _, samples, err := peak.Stop(); err != nil || n < 1 || n > 2 {
		t.Errorf("the server saw %d of the child's sessions at most (%d samples, %v); want 1 or 2, its budget", n, samples, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	before := p.Counts().OK
	if err := p.Close(time.Minute); err == nil {
		t.Error("Close of a killed child: no error, want one saying it did not close")
	}
	if c := p.Counts(); c.OK != before || c.Closed {
		t.Errorf("after the kill: %v, closed %v; want the counts kept and no clean close", c, c.Closed)
	}
}

// A child that cannot open its store says so before it is ready.
func TestChildBadStore(t *testing.T) {
	_, err := fleetproc.Start(fleetproc.Config{Name: "bad", StoreURL: "nosuchscheme://x", Budget: 1, Tenants: []fleetproc.Tenant{{ID: "a", DB: "b"}}}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "ended before it was ready") {
		t.Fatalf("Start with a bad store URL: %v; want an error saying the child ended before it was ready", err)
	}
}
