package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSentinel is a private primary/replica pair of redis-servers and a
// Sentinel that monitors them, on local ports, for tests that fail the
// primary over.
type RedisSentinel struct {
	t testing.TB
	// MasterName is the name the Sentinel monitors the pair under.
	MasterName string
	// Servers are the primary as started, then the replica; which is
	// the primary now is what the Sentinel says (Primary).
	Servers []*RedisServer
	port    int
	cmd     *exec.Cmd
}

// sentinelDownAfter is how long the Sentinel takes a silent primary to be
// down before it fails it over.
const sentinelDownAfter = 1000 // ms

// StartRedisSentinel starts a primary and its replica (without
// persistence) and one Sentinel that monitors them with a quorum of one,
// each in a directory of t.TempDir(). It returns once the replica is in
// sync and the Sentinel knows it, so that a failover can pick it; all
// three are killed at the test's end. The Sentinel is redis-sentinel, or
// redis-server --sentinel (the same program) without it.
func StartRedisSentinel(t testing.TB, opts ...SentinelOption) *RedisSentinel {
	t.Helper()
	var o sentinelOptions
	for _, opt := range opts {
		opt(&o)
	}
	prog, args := "redis-sentinel", []string(nil)
	if _, err := exec.LookPath(prog); err != nil {
		if _, err2 := exec.LookPath("redis-server"); err2 != nil {
			CannotRun(t, "no redis-sentinel (%v) nor redis-server to start a private Sentinel (apt-get install redis-sentinel)", err)
		}
		prog, args = "redis-server", []string{"--sentinel"}
	}
	ctx := context.Background()
	primary := startRedisAuth(t, false, o.password)
	replica := startRedisAuth(t, false, o.password, "--replicaof", "127.0.0.1", fmt.Sprint(primary.port))
	s := &RedisSentinel{t: t, MasterName: "tsqltest", Servers: []*RedisServer{primary, replica}, port: freePort(t)}

	// The Sentinel rewrites its config file as it learns: one of its
	// own, in its own directory.
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 10000
`, s.port, dir, filepath.Join(dir, "sentinel.log"), s.MasterName, primary.port, s.MasterName, sentinelDownAfter, s.MasterName)
	if o.password != "" {
		text += fmt.Sprintf("sentinel auth-pass %s %s\n", s.MasterName, o.password)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(prog, append([]string{conf}, args...)...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", prog, err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		if t.Failed() {
			// What the Sentinel saw and did explains a failover
			// that went wrong.
			b, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Logf("the Sentinel's log:\n%s", b)
		}
	})

	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer sc.Close()
	rc := replica.Client()
	Eventually(t, 20*time.Second, "the Sentinel to see the replica in sync", func() bool {
		repl, err := rc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(repl, "master_link_status:up") {
			return false
		}
		reps, err := sc.Replicas(ctx, s.MasterName).Result()
		if err != nil || len(reps) != 1 {
			return false
		}
		flags := reps[0]["flags"]
		return reps[0]["port"] == fmt.Sprint(replica.port) && flags == "slave"
	})
	return s
}

// A SentinelOption configures StartRedisSentinel.
type SentinelOption func(*sentinelOptions)

type sentinelOptions struct {
	password string
}

// WithPrimaryPassword makes the primary and the replica require password
// of their clients (the Sentinel itself requires none).
func WithPrimaryPassword(password string) SentinelOption {
	return func(o *sentinelOptions) { o.password = password }
}

// Addr returns the Sentinel's host:port.
func (s *RedisSentinel) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL returns the store's URL for the pair: the Sentinel's address and
// the name it monitors them under.
func (s *RedisSentinel) URL() string {
	return fmt.Sprintf("redis://%s/0?master_name=%s", s.Addr(), s.MasterName)
}

// Primary returns the server the Sentinel names as the primary now.
func (s *RedisSentinel) Primary() *RedisServer {
	s.t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(context.Background(), s.MasterName).Result()
	if err != nil || len(addr) != 2 {
		s.t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME %s: %v, %v", s.MasterName, addr, err)
	}
	for _, srv := range s.Servers {
		if fmt.Sprint(srv.port) == addr[1] {
			return srv
		}
	}
	s.t.Fatalf("the Sentinel names %s:%s as the primary, which is none of its servers", addr[0], addr[1])
	return nil
}

// Sentinel returns a client on the Sentinel, closed at the test's end.
func (s *RedisSentinel) Sentinel() *redis.SentinelClient {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { c.Close() })
	return c
}
