package testenv

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
)

// LogBuffer collects log output that several goroutines write (a slog
// handler's, under a connector's or a hooks registry's goroutines), for a
// test to read.
type LogBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Records decodes the JSON records (slog.NewJSONHandler's) written so far,
// and fails the test on output that is not JSON.
func (b *LogBuffer) Records(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.b.Bytes()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log output: %v", err)
		}
		out = append(out, m)
	}
	return out
}
