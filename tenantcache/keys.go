package tenantcache

import (
	"strconv"
	"strings"
	"time"
)

// A namespace is where the keys of one incarnation of a tenant live:
// "PREFIX:t:ID:CREATED:". The id cannot hold a ':' (store.ValidateID
// allows only [a-z0-9._-]), so the ':' after it ends the id
// unambiguously: tenant "a" owns "p:t:a:..." and tenant "ab" owns
// "p:t:ab:...", and neither string starts with the other. CREATED (see
// incarnation) holds no ':' either, and the one after it ends the
// namespace. The prefix holds none (New refuses it), so no prefix and
// tenant name a namespace inside another's. The ":t:" leaves room beside
// the tenants for keys of the cache's own, should it ever need any.
type namespace string

func newNamespace(prefix, id string, created time.Time) namespace {
	return namespace(prefix + ":t:" + id + ":" + incarnation(created) + ":")
}

// incarnation tells one life of a tenant from another: a tenant deleted
// and created again under the same id is a new tenant, and must not read
// the keys of the old one, which stay in Redis unless they were dropped
// (or a drop failed, or the delete and the create reached this cache as
// one update). It is the tenant's creation time (store.Tenant.CreatedAt)
// in microseconds since 1970, the precision of the stores' timestamps,
// in base 36: 10 bytes of [0-9a-z] per key for today's dates, and it
// holds no glob character nor ':'. A tenant whose store records no
// creation time has "0", the same in every process and every life.
func incarnation(created time.Time) string {
	if created.IsZero() {
		return "0"
	}
	return strconv.FormatInt(created.UnixMicro(), 36)
}

// key returns the Redis key of the tenant's key k. k is taken as it is:
// GET and SET read no pattern in it.
func (ns namespace) key(k string) string { return string(ns) + k }

// match returns the SCAN MATCH pattern for the tenant's keys that match
// the glob pattern. The namespace is escaped, so that nothing in the
// prefix widens the match, and pattern follows it: whatever pattern holds,
// a key matches only if it starts with the namespace, since Redis anchors
// the match at the start of the key and the escaped namespace matches
// only itself.
func (ns namespace) match(pattern string) string { return escapeGlob(string(ns)) + pattern }

// trim returns the tenant's key of the Redis key rk, and whether rk is in
// the namespace at all. SCAN MATCH already guarantees it; the check makes
// the promise not depend on the pattern escaping alone.
func (ns namespace) trim(rk string) (string, bool) { return strings.CutPrefix(rk, string(ns)) }

// escapeGlob makes s match only itself in a Redis glob pattern, whose
// special characters are *, ?, [, ] and \ (stringmatchlen in Redis's
// util.c: a backslash makes the next character literal).
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
