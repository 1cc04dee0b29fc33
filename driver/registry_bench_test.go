package driver

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

// BenchmarkApplySync measures what a resync of 10,000 tenants costs the
// driver once the store has read them: the tracker's diff against what it
// knows and, if anything changed, one copy of the registry. "unchanged" is
// the periodic or reconnect resync that finds nothing new; "one changed"
// adds one tenant; "all new" is the first sync of a process.
//
//	go test -run '^$' -bench ApplySync -benchmem ./driver
func BenchmarkApplySync(b *testing.B) {
	const n = 10000
	tenants := make([]store.Tenant, n)
	for i := range tenants {
		tenants[i] = store.Tenant{ID: fmt.Sprintf("tenant-%05d.bench.test", i), Version: 1,
			DeployInfo: map[string]string{store.KeyPostgresURL: fmt.Sprintf("postgres://app:pw@db%d.internal/tenant_%d", i%10, i)}}
	}
	sync := store.Event{Type: store.EventSync, Version: 1, Tenants: tenants}
	plusOne := store.Event{Type: store.EventSync, Version: 2, Tenants: append(append([]store.Tenant{}, tenants...),
		store.Tenant{ID: "zz-new.bench.test", Version: 1, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:pw@db/new"}})}

	newConn := func() *Connector { return benchConnector(b) }
	b.Run("all new", func(b *testing.B) {
		for range b.N {
			c, tr := newConn(), store.NewTracker()
			c.apply(tr.Apply(sync))
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		c, tr := newConn(), store.NewTracker()
		c.apply(tr.Apply(sync))
		b.ResetTimer()
		for range b.N {
			c.apply(tr.Apply(sync))
		}
	})
	b.Run("one changed", func(b *testing.B) {
		var c *Connector
		for range b.N {
			b.StopTimer()
			c = newConn()
			tr := store.NewTracker()
			c.apply(tr.Apply(sync))
			b.StartTimer()
			c.apply(tr.Apply(plusOne))
		}
		if c.reg.get("zz-new.bench.test") == nil {
			b.Fatal("the new tenant was not registered")
		}
	})
}

// benchConnector is a Connector with no store and no servers behind it,
// whose registry a benchmark fills with apply.
func benchConnector(b *testing.B) *Connector {
	cfg := defaultConfig()
	cfg.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := cfg.validate(); err != nil {
		b.Fatal(err)
	}
	c := &Connector{cfg: cfg, log: cfg.log, budgets: make(map[string]*budget), targets: make(map[string]*target), applied: newBroadcast()}
	c.reg.init(store.KeyPostgresURL)
	return c
}
