package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisRecord is a tenant as stored in the tenants hash, under its id.
//
// It encodes as a tenant of the file format does, but is a type of its
// own: records are read by every process that shares the Redis, whatever
// tenantsql version it runs, so their encoding must not change as a side
// effect of a change to the file format. Unknown fields are ignored when
// decoding, so that a newer tenantsql may add some.
type redisRecord struct {
	DeployInfo map[string]string `json:"deploy_info"`
	Version    int64             `json:"version,omitempty"`
	CreatedAt  time.Time         `json:"created_at,omitzero"`
	UpdatedAt  time.Time         `json:"updated_at,omitzero"`
}

// encodeRecord returns t's record.
func encodeRecord(t Tenant) (string, error) {
	b, err := json.Marshal(redisRecord{DeployInfo: t.DeployInfo, Version: t.Version, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt})
	return string(b), err
}

// decodeRecord returns the tenant whose record raw is, its times in UTC.
func decodeRecord(id, raw string) (Tenant, error) {
	var rec redisRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: malformed record: %w", shorten(id), err)
	}
	return Tenant{ID: id, DeployInfo: rec.DeployInfo, Version: rec.Version, CreatedAt: rec.CreatedAt.UTC(), UpdatedAt: rec.UpdatedAt.UTC()}, nil
}

// decodeAll decodes the tenants hash. A record that does not decode or is
// not a valid tenant (edited by hand, or by a newer tenantsql) is logged
// and left out, or kept as prev knew it: one bad record must neither stop
// every process from following the others nor make them drop a tenant
// nobody deleted.
func (r *Redis) decodeAll(all map[string]string, version int64, prev map[string]Tenant) state {
	st := state{version: version, tenants: make(map[string]Tenant, len(all))}
	var unopened []error
	defer func() { logUnopened(r.log, r.name, unopened) }()
	for id, raw := range all {
		t, openErr, err := r.decodeValidRecord(id, raw)
		if openErr != nil {
			unopened = append(unopened, openErr)
		}
		if err != nil {
			r.logBadRecord(err)
			if old, ok := prev[id]; ok {
				st.tenants[id] = old
			}
			continue
		}
		st.tenants[id] = t
	}
	return st
}

// decodeValidRecord decodes a record, refuses a secret in clear once the
// store is sealed all through (checkPlaintext), opens its sealed values,
// and checks what a reader relies on: the id and a postgres URL. Writes ran the full
// Validate already; running it again on every resync would add about 8 µs
// a record, and the driver reports a URL it cannot use when it dials. A
// record whose values cannot be opened is logged and kept, its values
// sealed, and unopened says why, for the caller to log: the tenant is
// unusable (the driver says why), the others are not affected.
func (r *Redis) decodeValidRecord(id, raw string) (t Tenant, unopened, err error) {
	t, err = decodeRecord(id, raw)
	if err != nil {
		return Tenant{}, nil, err
	}
	if err := r.checkPlaintext(t); err != nil {
		return Tenant{}, nil, err
	}
	t.DeployInfo, unopened = openInfo(r.kr, id, t.DeployInfo)
	err = ValidateID(id)
	if err == nil && unopened == nil && !isPostgresURL(t.PostgresURL()) {
		err = &ValidationError{Field: "deploy_info." + KeyPostgresURL, Reason: "missing, or not a postgres:// URL"}
	}
	if err != nil {
		return Tenant{}, nil, fmt.Errorf("tenant %q: invalid record: %w", shorten(id), err)
	}
	return t, unopened, nil
}

// logBadRecord logs a record that decodeValidRecord refused, and that is
// left out, or kept as it was known.
func (r *Redis) logBadRecord(err error) {
	msg := "tenantsql: store: skipping a malformed tenant record"
	if errors.Is(err, ErrPlaintext) {
		msg = "tenantsql: store: skipping a tenant record with a secret in clear in a sealed store"
	}
	r.log.Error(msg, "store", r.name, "err", err)
}

// streamEntry is one event read from the stream, as bump writes it.
type streamEntry struct {
	v   int64  // the version it made ("v")
	typ string // "create", "update", "delete" or "resync" ("t")
	id  string // the tenant's id, empty for a resync ("id")
	sid string // the entry's stream id ("ms-seq")
}

func parseEntry(m redis.XMessage) streamEntry {
	v, _ := strconv.ParseInt(str(m.Values["v"]), 10, 64)
	return streamEntry{v: v, typ: str(m.Values["t"]), id: str(m.Values["id"]), sid: m.ID}
}

// key is what the entry did: its type and tenant id.
func (e streamEntry) key() string { return e.typ + "\x00" + e.id }

func str(v any) string {
	s, _ := v.(string)
	return s
}
