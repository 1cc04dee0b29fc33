package store

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantsql/tenantsql/keyring"
)

// RedisOption configures a Redis store.
type RedisOption func(*redisOptions)

type redisOptions struct {
	prefix    string
	check     time.Duration
	resyncAll time.Duration
	maxLen    int64
	log       *slog.Logger
	// sentinelUserinfo: a Sentinel URL with a password before the host
	// and none in password=, which go-redis gives the Sentinel only; if
	// the primary then wants one, say where it goes.
	sentinelUserinfo bool
	keys             *keyring.Keyring
}

// WithRedisKeys makes the store seal the secret values of every tenant it
// writes with kr's primary key, and open those it reads with any of kr's
// keys (see the package documentation, Secrets at rest). Without it
// Redis holds passwords in clear, and a store in which a process with keys
// has written cannot be written.
func WithRedisKeys(kr *keyring.Keyring) RedisOption { return func(o *redisOptions) { o.keys = kr } }

// WithRedisPrefix sets the key prefix (default "tenantsql"), so several
// applications can share one Redis.
func WithRedisPrefix(p string) RedisOption { return func(o *redisOptions) { o.prefix = p } }

// WithRedisCheckInterval sets how often the follower compares the version
// counter with what it has applied, to catch anything pub/sub lost
// (default 5s).
func WithRedisCheckInterval(d time.Duration) RedisOption {
	return func(o *redisOptions) { o.check = d }
}

// WithRedisResyncInterval sets how often the follower rereads the whole
// tenant set even when nothing seems to be missing (default 5m): the last
// line of defence, at about 90 ms for 10,000 tenants (BENCHMARKS.md).
func WithRedisResyncInterval(d time.Duration) RedisOption {
	return func(o *redisOptions) { o.resyncAll = d }
}

// WithRedisStreamLength sets about how many events the stream keeps
// (default 10000). A follower that falls further behind resyncs.
func WithRedisStreamLength(n int64) RedisOption { return func(o *redisOptions) { o.maxLen = n } }

// WithRedisLogger sets the logger (default slog.Default()).
func WithRedisLogger(l *slog.Logger) RedisOption { return func(o *redisOptions) { o.log = l } }

// WithPrefix is the former name of WithRedisPrefix.
//
// Deprecated: Use WithRedisPrefix, which names the store it configures.
func WithPrefix(p string) RedisOption { return WithRedisPrefix(p) }

// WithCheckInterval is the former name of WithRedisCheckInterval.
//
// Deprecated: Use WithRedisCheckInterval, which names the store it
// configures.
func WithCheckInterval(d time.Duration) RedisOption { return WithRedisCheckInterval(d) }

// WithResyncInterval is the former name of WithRedisResyncInterval.
//
// Deprecated: Use WithRedisResyncInterval, which names the store it
// configures.
func WithResyncInterval(d time.Duration) RedisOption { return WithRedisResyncInterval(d) }

// WithStreamLength is the former name of WithRedisStreamLength.
//
// Deprecated: Use WithRedisStreamLength, which names the store it
// configures.
func WithStreamLength(n int64) RedisOption { return WithRedisStreamLength(n) }

func validPrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func defaultRedisOptions() redisOptions {
	return redisOptions{prefix: "tenantsql", check: 5 * time.Second, resyncAll: 5 * time.Minute, maxLen: 10000, log: slog.Default()}
}

// parseRedisURL makes the client that rawURL describes and reads the
// store's own options from it (see OpenRedis); name is rawURL redacted,
// for errors.
func parseRedisURL(rawURL, name string) (redis.UniversalClient, redisOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not %w: url.Error quotes the part it could not read, which may
		// be the password.
		return nil, redisOptions{}, fmt.Errorf("store: redis URL %s: %s", name, urlErrorReason(err))
	}
	q := u.Query()
	o := defaultRedisOptions()
	if v := q.Get("prefix"); q.Has("prefix") {
		o.prefix = v
	}
	if q.Has("check") {
		if o.check, err = parseDuration(q.Get("check")); err != nil || o.check <= 0 {
			return nil, redisOptions{}, fmt.Errorf("store: redis URL %s: option check=%q: want a positive duration", name, q.Get("check"))
		}
	}
	if q.Has("resync") {
		if o.resyncAll, err = parseDuration(q.Get("resync")); err != nil || o.resyncAll <= 0 {
			return nil, redisOptions{}, fmt.Errorf("store: redis URL %s: option resync=%q: want a positive duration", name, q.Get("resync"))
		}
	}
	if q.Has("stream_length") {
		if o.maxLen, err = strconv.ParseInt(q.Get("stream_length"), 10, 64); err != nil || o.maxLen < 100 {
			return nil, redisOptions{}, fmt.Errorf("store: redis URL %s: option stream_length=%q: want a number of at least 100", name, q.Get("stream_length"))
		}
	}
	if o.keys, err = keysFromURL(q.Get("keys"), q.Get("keys_file"), q.Has("keys"), q.Has("keys_file")); err != nil {
		return nil, redisOptions{}, fmt.Errorf("store: redis URL %s: %w", name, err)
	}
	cluster := q.Get("cluster") == "true"
	for _, k := range []string{"prefix", "check", "resync", "stream_length", "cluster", "keys", "keys_file"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()

	var c redis.UniversalClient
	switch {
	case q.Has("master_name"):
		fo, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, redisOptions{}, redisURLError(name, err)
		}
		_, hasPassword := u.User.Password()
		o.sentinelUserinfo = hasPassword && !q.Has("password")
		c = redis.NewFailoverClient(fo)
	case q.Has("addr") || cluster:
		co, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, redisOptions{}, redisURLError(name, err)
		}
		c = redis.NewClusterClient(co)
	default:
		ro, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, redisOptions{}, redisURLError(name, err)
		}
		c = redis.NewClient(ro)
	}
	return c, o, nil
}

func redisURLError(name string, err error) error {
	return fmt.Errorf("store: redis URL %s: %v", name, strings.TrimPrefix(err.Error(), "redis: "))
}
