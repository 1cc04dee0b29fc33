package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// The command on the porting example, run both ways the README shows:
// it must find exactly the calls that the port changed in before/main.go,
// and nothing in after (its test file included).
func TestPortingExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and runs go vet")
	}
	bin := filepath.Join(t.TempDir(), "tenantsql-vet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Every call in before/main.go that has no context, by line:column.
	before := []string{
		"main.go:23:12: db.Ping has no context",
		"main.go:36:17: db.Begin has no context",
		"main.go:43:15: tx.Exec has no context",
		"main.go:45:13: tx.QueryRow has no context",
		"main.go:54:16: db.QueryRow has no context",
		"main.go:58:19: db.Query has no context",
	}
	tests := []struct {
		name     string
		args     []string
		exitCode int // 0: success
		want     []string
	}{
		{"direct, before", []string{bin, "./before"}, 3, before},
		{"go vet -vettool, before", []string{"go", "vet", "-vettool=" + bin, "./before"}, 1, before},
		{"direct, after", []string{bin, "./after"}, 0, nil},
		{"go vet -vettool, after", []string{"go", "vet", "-vettool=" + bin, "./after"}, 0, nil},
	}
	finding := regexp.MustCompile(`(?m)^\S*?(\w+\.go:\d+:\d+: \S+ has no context)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.args[0], tt.args[1:]...)
			cmd.Dir = filepath.Join("..", "..", "examples", "porting")
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.exitCode {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.exitCode, out)
			}
			var got []string
			for _, m := range finding.FindAllStringSubmatch(string(out), -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%q\nwant:\n%q\noutput:\n%s", got, tt.want, out)
			}
		})
	}
}
