package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Sequencer: when a write returns, Published covers it, and a watcher
// reaches it by the write's event, whose Seq is Published.
func TestSequencerPublished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		seqr, ok := s.(Sequencer)
		if !ok {
			t.Fatalf("%T is not a Sequencer", s)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first := next(t, ch)
		if first.Seq != seqr.Published() {
			t.Errorf("the first sync's Seq = %d, Published = %d; want equal with no write since", first.Seq, seqr.Published())
		}
		last := first.Seq
		for i, write := range []func() error{
			func() error { _, err := s.Create(ctx, newTenant("a", "a")); return err },
			func() error {
				_, err := s.Update(ctx, Tenant{ID: "a", DeployInfo: dbInfo("b"), Version: 1})
				return err
			},
			func() error { _, err := s.Delete(ctx, "a"); return err },
		} {
			if err := write(); err != nil {
				t.Fatal(err)
			}
			p := seqr.Published()
			if p <= last {
				t.Fatalf("write %d returned with Published = %d, not past %d: it does not cover the write", i, p, last)
			}
			ev := next(t, ch)
			if ev.Seq != p {
				t.Errorf("write %d: event %v has Seq %d, Published %d", i, ev.Type, ev.Seq, p)
			}
			last = p
		}
	})
}

// The file store's options under their former names: WithCreate opens a
// missing file as an empty store, WithPollInterval picks up a change made
// by another writer.
func TestFileFormerOptionNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	ctx := context.Background()
	if _, err := OpenFile(ctx, path, WithCreate(false)); err == nil {
		t.Fatal("OpenFile of a missing file with WithCreate(false) succeeded")
	}
	f, err := OpenFile(ctx, path, WithCreate(true), WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if list := mustList(t, f); len(list) != 0 {
		t.Fatalf("a missing file opened with WithCreate(true) lists %v", ids(list))
	}
	other, err := OpenFile(ctx, path, WithCreate(true), WithPollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if _, err := other.Create(ctx, newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the first write did not create the file: %v", err)
	}
	waitPolls(t, f, 2)
	if _, err := f.Get(ctx, "t1"); err != nil {
		t.Errorf("after two polls, the store polled every 10ms lacks a tenant another writer created: %v", err)
	}
}
