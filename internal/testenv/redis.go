package testenv

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPrefix returns a key prefix no other test uses, and deletes its keys
// when the test ends.
func RedisPrefix(t testing.TB) string {
	t.Helper()
	u := RedisURL(t)
	prefix := fmt.Sprintf("tsqltest-%x", rand.Uint64())
	t.Cleanup(func() {
		opts, err := redis.ParseURL(u)
		if err != nil {
			t.Errorf("clean up Redis prefix %s: %v", prefix, err)
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := c.Keys(ctx, "{"+prefix+"}:*").Result()
		if err != nil {
			t.Errorf("clean up Redis prefix %s: list its keys: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("clean up Redis prefix %s: delete its keys: %v", prefix, err)
			}
		}
	})
	return prefix
}

// RedisServer is a private redis-server for tests that kill and restart
// it; the shared one must stay up for everyone else.
type RedisServer struct {
	t       testing.TB
	port    int
	dir     string
	persist bool
	args    []string // more arguments to redis-server (cluster mode, replicaof)
	// password, if not empty, is required of clients and given to a
	// primary (requirepass, masterauth).
	password string
	cmd      *exec.Cmd
}

// StartRedis starts a private redis-server on a free port. With persist,
// it keeps its data across restarts (append-only file, fsync always);
// without, a restart comes back empty.
func StartRedis(t testing.TB, persist bool) *RedisServer {
	t.Helper()
	return startRedis(t, persist)
}

func startRedis(t testing.TB, persist bool, args ...string) *RedisServer {
	t.Helper()
	return startRedisAuth(t, persist, "", args...)
}

func startRedisAuth(t testing.TB, persist bool, password string, args ...string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		CannotRun(t, "no redis-server to start a private Redis: %v", err)
	}
	s := &RedisServer{t: t, port: freePort(t), dir: t.TempDir(), persist: persist, args: args, password: password}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// freePort returns a local TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL returns the server's URL.
func (s *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Addr returns the server's host:port.
func (s *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Client returns a plain client on the server, closed at the test's end.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Start starts the server (again) and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	args := []string{"--port", fmt.Sprint(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--daemonize", "no", "--logfile", ""}
	if s.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.password != "" {
		args = append(args, "--requirepass", s.password, "--masterauth", s.password)
	}
	args = append(args, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) {
			s.t.Fatalf("private redis-server on port %d did not answer", s.port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Running reports whether the server was started and not killed since.
func (s *RedisServer) Running() bool { return s.cmd != nil }

// Kill stops the server at once, as a crash would.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

func (s *RedisServer) answers() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprint(c, "PING\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	// NOAUTH: it answers, and wants a password.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// WithQuery returns u with the query parameters added.
func WithQuery(u string, params ...string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := pu.Query()
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	pu.RawQuery = q.Encode()
	return pu.String()
}
