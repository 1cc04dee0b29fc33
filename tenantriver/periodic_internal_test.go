package tenantriver

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
)

// cron is a schedule that runs, in UTC, at the given hours of the given
// weekdays (every day if none), on the hour: cron{hours: []int{9, 17}} is
// the cron expression "0 9,17 * * *".
type cron struct {
	hours    []int
	weekdays []time.Weekday
}

func (c cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Hour)
	for {
		t = t.Add(time.Hour)
		if c.has(t) {
			return t
		}
	}
}

func (c cron) has(t time.Time) bool {
	day := len(c.weekdays) == 0
	for _, w := range c.weekdays {
		day = day || t.Weekday() == w
	}
	hour := len(c.hours) == 0
	for _, h := range c.hours {
		hour = hour || t.Hour() == h
	}
	return day && hour
}

// The default unique period is the shortest interval between two runs,
// less a second, whatever the schedule's next interval is at the time
// asked, and the same for every process of the year.
func TestDefaultUniquePeriod(t *testing.T) {
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	for _, tt := range []struct {
		name     string
		schedule river.PeriodicSchedule
		shortest time.Duration
		period   time.Duration
	}{
		{"interval", river.PeriodicInterval(90 * time.Minute), 90 * time.Minute, 90*time.Minute - time.Second},
		{"cron at the hour", cron{}, time.Hour, time.Hour - time.Second},
		{"cron 0 9,17 * * *", cron{hours: []int{9, 17}}, 8 * time.Hour, 8*time.Hour - time.Second},
		{"cron 0 9 * * 1-5", cron{hours: []int{9}, weekdays: weekdays}, 24 * time.Hour, 24*time.Hour - time.Second},
		{"cron 0 9 * * 1", cron{hours: []int{9}, weekdays: []time.Weekday{time.Monday}}, 7 * 24 * time.Hour, 7*24*time.Hour - time.Second},
		{"1.5 s", river.PeriodicInterval(1500 * time.Millisecond), 1500 * time.Millisecond, time.Second},
		{"under a second", river.PeriodicInterval(100 * time.Millisecond), 100 * time.Millisecond, 0},
		{"never", river.NeverSchedule(), 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Processes that start at different times, in the same
			// year: one as the short interval comes, one as the long.
			for _, start := range []time.Time{
				time.Date(2026, 12, 6, 8, 59, 0, 0, time.UTC),  // a Sunday, before 9:00
				time.Date(2026, 12, 11, 17, 1, 0, 0, time.UTC), // a Friday, after 17:00
			} {
				got := shortestInterval(tt.schedule, yearStart(start))
				if got != tt.shortest {
					t.Errorf("started %s: shortestInterval = %v, want %v", start, got, tt.shortest)
				}
				if p := defaultUniquePeriod(got); p != tt.period {
					t.Errorf("started %s: defaultUniquePeriod(%v) = %v, want %v", start, got, p, tt.period)
				}
			}
		})
	}
}
