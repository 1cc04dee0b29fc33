//go:build !unix

package store

import "context"

// lockFile is a no-op where flock is not available: writers in one process
// are still serialized by File.writeMu, but not across processes.
func lockFile(ctx context.Context, path string) (func(), error) { return func() {}, nil }
