package store

import (
	"context"
	"strings"
	"testing"
)

// A Redis URL that does not parse is named redacted, and the reason does
// not quote the part net/url stumbled on, which may be the password.
func TestOpenRedisBadURLHidesPassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:s3cr/et@host:6379",
		"redis://:pa%zzs3cr@host:6379",
	} {
		_, err := OpenRedis(context.Background(), u)
		if err == nil {
			t.Fatalf("OpenRedis(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "s3cr") {
			t.Errorf("OpenRedis error shows the password: %v", err)
		}
	}
}
