package tenantriver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/store"
)

// What the store's answer does to a job, by the job's age against
// WithStoreLag: a store that may be behind makes the job wait; one that
// is clearly ahead of the job, or a job past the grace, decides.
func TestJudge(t *testing.T) {
	created := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	before, after := created.Add(-time.Hour), created.Add(time.Hour)
	down := errors.New("connection refused")
	const (
		run    = "run"
		snooze = "snooze"
		cancel = "cancel"
		retry  = "retry"
	)
	for _, tt := range []struct {
		name   string
		lag    time.Duration
		tenant store.Tenant
		err    error
		want   string
		msg    string // in the error, for cancel and retry
	}{
		{"same incarnation", time.Minute, store.Tenant{CreatedAt: created}, nil, run, ""},
		{"store keeps no CreatedAt", 0, store.Tenant{}, nil, run, ""},
		{"re-created", time.Minute, store.Tenant{CreatedAt: after}, nil, cancel, "deleted and re-created"},
		{"older incarnation, young job", time.Minute, store.Tenant{CreatedAt: before}, nil, snooze, ""},
		{"older incarnation, past the lag", 0, store.Tenant{CreatedAt: before}, nil, retry, "behind"},
		{"not found, young job", time.Minute, store.Tenant{}, store.ErrNotFound, snooze, ""},
		{"not found, past the lag", 0, store.Tenant{}, store.ErrNotFound, cancel, "no longer has"},
		{"unreachable", 0, store.Tenant{}, down, snooze, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &Middleware{lag: tt.lag}
			job := &rivertype.JobRow{ID: 7, Kind: "k", CreatedAt: time.Now().Add(-time.Second)}
			err := m.judge(job, nil, "a.test", created, true, tt.tenant, tt.err)
			var got string
			switch {
			case err == nil:
				got = run
			case errors.As(err, new(*rivertype.JobSnoozeError)):
				got = snooze
			case errors.As(err, new(*rivertype.JobCancelError)):
				got = cancel
			default:
				got = retry
			}
			if got != tt.want {
				t.Fatalf("judge = %v (%s), want %s", err, got, tt.want)
			}
			if tt.msg != "" && (!errors.Is(err, driver.ErrUnknownTenant) || !strings.Contains(err.Error(), tt.msg)) {
				t.Errorf("judge = %v, want driver.ErrUnknownTenant saying %q", err, tt.msg)
			}
		})
	}
}

// The wait for the store doubles from a second with River's count of
// snoozes, up to a minute.
func TestSnoozeBackoff(t *testing.T) {
	for _, tt := range []struct {
		snoozes string
		want    time.Duration
	}{
		{"", time.Second},
		{"0", time.Second},
		{"1", 2 * time.Second},
		{"5", 32 * time.Second},
		{"6", time.Minute},
		{"1000", time.Minute},
		{`"x"`, time.Second},
	} {
		m, _ := decodeMetadata(nil)
		if tt.snoozes != "" {
			m["snoozes"] = []byte(tt.snoozes)
		}
		if got := snoozeBackoff(m); got != tt.want {
			t.Errorf("snoozeBackoff(snoozes %s) = %v, want %v", tt.snoozes, got, tt.want)
		}
	}
}
