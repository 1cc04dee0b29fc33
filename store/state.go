package store

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// state is a tenant set at one version: what the memory and file stores
// hold (localStore), and what the Redis store has followed. Its methods
// validate, apply one mutation and describe it as an Event; callers hold
// their store's lock. Tenant values in the map are never modified in
// place, so a shallow clone of the map is a safe snapshot.
type state struct {
	version int64
	tenants map[string]Tenant
}

func newState() state { return state{tenants: make(map[string]Tenant)} }

func (s *state) clone() state {
	return state{version: s.version, tenants: maps.Clone(s.tenants)}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func (s *state) get(id string) (Tenant, error) {
	if err := ValidateID(id); err != nil {
		return Tenant{}, err
	}
	t, ok := s.tenants[id]
	if !ok {
		return Tenant{}, notFound(id)
	}
	return t.Clone(), nil
}

func (s *state) list() []Tenant {
	out := make([]Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t.Clone())
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *state) sync() Event {
	return Event{Type: EventSync, Version: s.version, Tenants: s.list()}
}

func (s *state) create(t Tenant, at time.Time) (Tenant, Event, error) {
	if err := Validate(t); err != nil {
		return Tenant{}, Event{}, err
	}
	if _, ok := s.tenants[t.ID]; ok {
		return Tenant{}, Event{}, exists(t.ID)
	}
	t = t.Clone()
	t.Version, t.CreatedAt, t.UpdatedAt = 1, at, at
	s.version++
	s.tenants[t.ID] = t
	return t.Clone(), Event{Type: EventCreate, Version: s.version, Tenant: t.Clone()}, nil
}

func (s *state) update(t Tenant, at time.Time) (Tenant, Event, error) {
	if err := Validate(t); err != nil {
		return Tenant{}, Event{}, err
	}
	cur, ok := s.tenants[t.ID]
	if !ok {
		return Tenant{}, Event{}, notFound(t.ID)
	}
	if t.Version != 0 && t.Version != cur.Version {
		return Tenant{}, Event{}, conflict(t.ID, t.Version, cur.Version)
	}
	next := Tenant{
		ID:         t.ID,
		DeployInfo: maps.Clone(t.DeployInfo),
		Version:    cur.Version + 1,
		CreatedAt:  cur.CreatedAt,
		UpdatedAt:  at,
	}
	s.version++
	s.tenants[t.ID] = next
	return next.Clone(), Event{Type: EventUpdate, Version: s.version, Tenant: next.Clone()}, nil
}

func (s *state) delete(id string) (Event, bool, error) {
	if err := ValidateID(id); err != nil {
		return Event{}, false, err
	}
	cur, ok := s.tenants[id]
	if !ok {
		return Event{}, false, nil
	}
	delete(s.tenants, id)
	s.version++
	return Event{Type: EventDelete, Version: s.version, Tenant: cur.Clone()}, true, nil
}

// localStore is what the stores that hold their tenant set in this
// process, Memory and File, share: the state, its lock, the watchers, and
// the methods that only read the state.
type localStore struct {
	// mu guards st and closed, and the fields of the embedding store that
	// say so.
	mu     sync.Mutex
	st     state
	closed bool
	// hub has a lock of its own; events are published with mu held, so
	// that they reach watchers in the order of the changes.
	hub hub
}

// lock locks mu, unless the store is closed.
func (s *localStore) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Get implements Store.
func (s *localStore) Get(ctx context.Context, id string) (Tenant, error) {
	if err := s.lock(); err != nil {
		return Tenant{}, err
	}
	defer s.mu.Unlock()
	return s.st.get(id)
}

// List implements Store.
func (s *localStore) List(ctx context.Context) ([]Tenant, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return s.st.list(), nil
}

// Watch implements Store.
func (s *localStore) Watch(ctx context.Context) (<-chan Event, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	ev := s.st.sync()
	return s.hub.add(ctx, &ev, s.snapshot)
}

func (s *localStore) snapshot() (Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.sync(), s.hub.published()
}

// Published implements Sequencer.
func (s *localStore) Published() uint64 { return s.hub.published() }
