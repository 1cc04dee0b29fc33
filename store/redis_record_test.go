package store

import (
	"testing"
	"time"
)

// Processes of different tenantsql versions share one Redis: the record
// format is fixed here, and a record from a newer version, with fields
// this one does not know, still decodes.
func TestRedisRecordFormat(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 0, 123000, time.UTC)
	tn := Tenant{ID: "t1", DeployInfo: map[string]string{"POSTGRES_URL": "postgres://db/one"}, Version: 2, CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	const want = `{"deploy_info":{"POSTGRES_URL":"postgres://db/one"},"version":2,"created_at":"2025-03-01T12:30:00.000123Z","updated_at":"2025-03-01T13:30:00.000123Z"}`
	rec, err := encodeRecord(tn)
	if err != nil || rec != want {
		t.Fatalf("encodeRecord = %s, %v\nwant %s", rec, err, want)
	}
	got, err := decodeRecord("t1", rec)
	if err != nil || !sameTenant(got, tn) {
		t.Errorf("decodeRecord(encodeRecord(t)) = %+v, %v; want %+v", got, err, tn)
	}
	newer := `{"deploy_info":{"POSTGRES_URL":"postgres://db/one"},"version":3,"created_at":"2025-03-01T14:30:00+02:00","labels":["a"]}`
	got, err = decodeRecord("t1", newer)
	if err != nil || got.Version != 3 || !got.CreatedAt.Equal(time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)) || got.CreatedAt.Location() != time.UTC || !got.UpdatedAt.IsZero() {
		t.Errorf("decodeRecord(a newer record) = %+v, %v", got, err)
	}
}
