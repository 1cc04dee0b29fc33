package store

import "context"

// Memory is a Store that keeps tenants in this process only. It suits tests
// and programs that load tenants from their own configuration.
type Memory struct {
	localStore
}

var (
	_ Store     = (*Memory)(nil)
	_ Sequencer = (*Memory)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := new(Memory)
	m.st = newState()
	return m
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, t Tenant) (Tenant, error) {
	if err := m.lock(); err != nil {
		return Tenant{}, err
	}
	defer m.mu.Unlock()
	out, ev, err := m.st.create(t, now())
	if err != nil {
		return Tenant{}, err
	}
	m.hub.publish(ev)
	return out, nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, t Tenant) (Tenant, error) {
	if err := m.lock(); err != nil {
		return Tenant{}, err
	}
	defer m.mu.Unlock()
	out, ev, err := m.st.update(t, now())
	if err != nil {
		return Tenant{}, err
	}
	m.hub.publish(ev)
	return out, nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, id string) (bool, error) {
	if err := m.lock(); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	ev, ok, err := m.st.delete(id)
	if ok {
		m.hub.publish(ev)
	}
	return ok, err
}

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.lock(); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

// Close implements Store. Watch channels are closed.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.hub.close()
	return nil
}
