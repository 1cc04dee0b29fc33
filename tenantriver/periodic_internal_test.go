package tenantriver

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
)

// cron is a schedule that runs at the start of every hour, as the cron
// expression "0 * * * *".
type cron struct{}

func (cron) Next(t time.Time) time.Time { return t.Truncate(time.Hour).Add(time.Hour) }

// The default unique period is the interval between two runs, not the
// time to the next one.
func TestScheduleInterval(t *testing.T) {
	now := time.Date(2026, 12, 6, 20, 17, 3, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		schedule river.PeriodicSchedule
		want     time.Duration
	}{
		{"interval", river.PeriodicInterval(90 * time.Minute), 90 * time.Minute},
		{"cron at the hour", cron{}, time.Hour},
		{"under a second", river.PeriodicInterval(100 * time.Millisecond), 0},
		{"never", river.NeverSchedule(), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := scheduleInterval(tt.schedule, now); got != tt.want {
				t.Errorf("scheduleInterval = %v, want %v", got, tt.want)
			}
		})
	}
}
