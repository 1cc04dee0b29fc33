package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// globals are the flags every command takes: --store and -v.
type globals struct {
	store   *string // nil: not given
	verbose bool
}

// splitGlobal takes the global flags out of args wherever they stand:
// "tenantsql --store X tenants list" and "tenantsql tenants list --store X"
// mean the same, as they do for migrate. Each command then parses the
// rest with its own flags. A "--" ends the flags: what follows it is left
// as it is.
func splitGlobal(args []string) (globals, []string, error) {
	var g globals
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") {
			name = ""
		}
		switch name {
		case "store":
			if !hasValue {
				if i+1 == len(args) {
					return g, nil, fmt.Errorf("flag needs an argument: %s", a)
				}
				i++
				value = args[i]
			}
			g.store = &value
		case "v", "verbose":
			if hasValue {
				return g, nil, fmt.Errorf("%s takes no value", strings.SplitN(a, "=", 2)[0])
			}
			g.verbose = true
		default:
			rest = append(rest, a)
		}
	}
	return g, rest, nil
}

// quietRedis silences go-redis's own logger, which otherwise prints raw
// lines to stderr (a failed dial, a retry) before the command's one
// message about the same failure; with -v or TENANTSQL_DEBUG=1 they are
// shown, as go-redis prints them. The logger is go-redis's global one,
// stored atomically, so setting it on every run is safe.
func quietRedis(quiet bool) {
	if quiet {
		redis.SetLogger(discardLogger{})
		return
	}
	// go-redis prefixes its messages with "redis: " itself.
	redis.SetLogger(stderrLogger{log.New(os.Stderr, "", log.LstdFlags)})
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

type stderrLogger struct{ l *log.Logger }

func (s stderrLogger) Printf(_ context.Context, format string, v ...any) {
	s.l.Output(2, fmt.Sprintf(format, v...))
}
